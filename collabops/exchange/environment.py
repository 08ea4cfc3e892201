"""The exact package versions a model was trained with."""

from __future__ import annotations

import platform
from importlib import metadata

# What loading and serving the model needs.
MODEL_PACKAGES = ("scikit-learn", "skops", "pandas", "numpy", "scipy")


def pinned_requirements(packages: tuple[str, ...] = MODEL_PACKAGES) -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in packages]


def environment_text() -> str:
    """A requirements file, headed by the Python version, for the model bundle."""
    return f"# python {platform.python_version()}\n" + "\n".join(pinned_requirements()) + "\n"
