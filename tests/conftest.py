"""Shared fixtures: a throw-away ZenML world, never the user's own.

Before ZenML can be imported anywhere in the test process, the global
configuration is pointed at a temporary directory. Pipelines run as
``python run.py`` subprocesses in a copy of the repository, exactly as a user
runs them; the test process then reads the same throw-away store to check
what they recorded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="collabops-tests-"))
os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
os.environ["ZENML_CONFIG_PATH"] = str(_SESSION_DIR / "zenml-config")
os.environ["ZENML_REPOSITORY_PATH"] = str(_SESSION_DIR / "workspace")
os.environ["ZENML_ENABLE_RICH_TRACEBACK"] = "false"
os.environ["GIT_PYTHON_REFRESH"] = "quiet"
os.environ.pop("ZENML_ACTIVE_STACK_ID", None)

_LOCAL_STATE = {".git", ".zen", ".collabops", "data"}  # at the top level only: a clone has none of them
_CACHES = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc")


def _ignored(directory: str, names: list[str]) -> set[str]:
    ignored = set(_CACHES(directory, names))
    if Path(directory) == ROOT:
        ignored |= _LOCAL_STATE & set(names)
    return ignored


def copy_project(destination: Path) -> Path:
    """A fresh copy of the repository, as a clone would have it."""
    shutil.copytree(ROOT, destination, ignore=_ignored)
    return destination


class Workspace:
    """A copy of the project bound to one ZenML configuration directory."""

    def __init__(self, root: Path, zenml_config: Path, extra_env: dict[str, str] | None = None) -> None:
        self.root = root
        self.zenml_config = zenml_config
        self.extra_env = dict(extra_env or {})

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "ZENML_ACTIVE_STACK_ID"}
        env.update(ZENML_CONFIG_PATH=str(self.zenml_config), ZENML_REPOSITORY_PATH=str(self.root),
                   ZENML_ANALYTICS_OPT_IN="false", PYTHONUNBUFFERED="1", NO_COLOR="1")
        env.update(self.extra_env)
        return env

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """``python run.py ARGS`` in the copy; never reads stdin."""
        return subprocess.run([sys.executable, "run.py", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def query(self, code: str) -> object:
        """Run Python ``code`` against this workspace's ZenML store; it must print one JSON value."""
        import json

        result = subprocess.run([sys.executable, "-c", code], cwd=self.root, env=self.env, capture_output=True,
                                text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    def zenml(self, *args: str) -> subprocess.CompletedProcess:
        zenml = str(Path(sys.executable).with_name("zenml"))
        return subprocess.run([zenml, *args], cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)

    def training_config(self, model_name: str | None = None, **search_base: object) -> Path:
        """A fast training config (two months, eight car parks) with a unique model name."""
        config = yaml.safe_load((ROOT / "tests" / "configs" / "fast.yaml").read_text())
        config["parameters"]["model_name"] = model_name or f"test-model-{uuid.uuid4().hex[:8]}"
        config["parameters"]["search"]["base"].update(search_base)
        path = self.root / f"config-{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path


@pytest.fixture(scope="session")
def workspace() -> Workspace:
    """The session's shared project copy and ZenML store (tests use unique model names)."""
    root = copy_project(_SESSION_DIR / "workspace")
    return Workspace(root, Path(os.environ["ZENML_CONFIG_PATH"]))


@pytest.fixture
def fresh_workspace(tmp_path: Path) -> Workspace:
    """A brand-new clone with a brand-new ZenML store, for first-run behaviour."""
    return Workspace(copy_project(tmp_path / "clone"), tmp_path / "zenml-config")


def model_versions(model_name: str) -> list:
    """Versions of ``model_name`` in the session store (empty if the model does not exist)."""
    from zenml.client import Client

    try:
        return list(Client().list_model_versions(model_name_or_id=model_name, size=100).items)
    except KeyError:
        return []


def all_model_version_count() -> int:
    from zenml.client import Client

    client = Client()
    return sum(len(client.list_model_versions(model_name_or_id=m.id, size=1000).items)
               for m in client.list_models(size=1000).items)
