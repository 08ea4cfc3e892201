"""What a model was made with: the exact package versions and a digest of the library code.

A model bundle carries both, so the receiver can say what differs when its
re-prediction of the bundle's reference sample does not match the producer's
(:func:`collabops.exchange.model_bundle.check_reference_predictions`), and the
training steps put the digest in their cache key, so a change to the
library's code is never answered from a cache made by the old code.
"""

from __future__ import annotations

import hashlib
import platform
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

MODEL_PACKAGES = ("scikit-learn", "skops", "pandas", "numpy", "scipy")
"""What loading and serving the model needs."""

LIBRARY_ROOT = Path(__file__).resolve().parents[1]
"""The ``collabops`` package: the code a fitted model's pipeline runs (features, baseline, contract rules)."""


def pinned_requirements(packages: tuple[str, ...] = MODEL_PACKAGES) -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in packages]


def package_versions(packages: tuple[str, ...] = MODEL_PACKAGES) -> dict[str, str]:
    """``{distribution name: installed version}`` of ``packages`` (``"not installed"`` for a missing one)."""
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def environment_text() -> str:
    """A requirements file, headed by the Python version, for the model bundle."""
    return f"# python {platform.python_version()}\n" + "\n".join(pinned_requirements()) + "\n"


@lru_cache(maxsize=1)
def library_digest() -> str:
    """SHA-256 over every ``.py`` file of the ``collabops`` package: relative path and bytes, in path order.

    Any edit to the library's code (a feature function, a rule, the
    baseline) changes it; comments and docstrings count too, which errs on
    the side of retraining. Computed once per process (~5 ms).
    """
    digest = hashlib.sha256()
    for path in sorted(LIBRARY_ROOT.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(LIBRARY_ROOT).as_posix().encode("utf-8") + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def library_cache_key() -> str:
    """The training steps' cache key addition (ZenML ``CachePolicy.cache_func``): library digest and packages."""
    return library_digest() + ";" + ";".join(pinned_requirements())


def producer_environment(code_revision: str | None) -> dict[str, Any]:
    """What a model bundle records about the code that made its reference predictions."""
    return {"code_revision": code_revision, "library_digest": library_digest(),
            "python": platform.python_version(), "packages": package_versions()}
