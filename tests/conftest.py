"""Shared fixtures: throw-away ZenML worlds, never the user's own, and the two test tiers.

Before ZenML can be imported anywhere in the test process, its global
configuration is pointed at a temporary folder (``ZENML_CONFIG_PATH``) and
its repository at another (``ZENML_REPOSITORY_PATH``); the default private
key location is in the session's folder too, and the projects the tests
write name their own key folders and pseudonymisation key files.

Two tiers (``python -m pytest`` runs both; ``-m "not slow"`` only the first):

* fast: the library, and every refusal ``run.py`` decides before it touches
  ZenML, called in this process through :func:`cli.main.main` with the
  :func:`cli` fixture, which also fails the test if the command reached the
  ZenML layer or left a store behind;
* ``slow``: real ZenML stores, the two partner worlds, real servers. Where one
  store is enough, commands still run in this process (:func:`run_cli`)
  against the session's store, each test under its own model name (see
  :func:`write_project`); only what needs a separate store (a fresh clone, the
  two partners' worlds) runs ``python run.py`` as a subprocess
  (:class:`Workspace`).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "configs" / "parking.yaml"
CONTRACT = ROOT / "configs" / "contract.yaml"
FAST_CONFIG = ROOT / "tests" / "configs" / "fast.yaml"
"""Two months of eight car parks and a two-point grid: a real model in well under a minute."""

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="collabops-tests-"))
ZENML_CONFIG = _SESSION_DIR / "zenml-config"
"""The session's ZenML configuration and store (created by the first slow test that needs it)."""
REPOSITORY = _SESSION_DIR / "repository"
"""The session's ZenML repository folder (in-process commands; the code itself is read from ROOT)."""
REPOSITORY.mkdir()
os.environ.update(
    ZENML_ANALYTICS_OPT_IN="false",
    ZENML_CONFIG_PATH=str(ZENML_CONFIG),
    ZENML_REPOSITORY_PATH=str(REPOSITORY),
    ZENML_ENABLE_RICH_TRACEBACK="false",
    ZENML_AUTO_OPEN_DASHBOARD="false",
    GIT_PYTHON_REFRESH="quiet",
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    # scikit-learn runs its array-API estimator check only with this set before SciPy loads (test_estimators).
    SCIPY_ARRAY_API="1",
    XDG_CONFIG_HOME=str(_SESSION_DIR / "config-home"),  # default private key location: never the user's
)
for _name in ("ZENML_ACTIVE_STACK_ID", "COLLABOPS_PSEUDONYMISATION_KEY", "COLLABOPS_PRIVATE_KEY_FILE"):
    os.environ.pop(_name, None)
_OUTER_PYTHONPATH = os.environ.get("PYTHONPATH")
# Processes this one starts (prediction-service daemons) import this checkout's code from any working folder.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), _OUTER_PYTHONPATH]))

_LOCAL_STATE = {".git", ".zen", ".collabops", "data", ".venv", ".ruff_cache"}  # top level only: a clone has none
_CACHES = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc")


# --- running run.py in this process -------------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    """What ``python run.py ...`` would have shown: exit code, standard output, standard error."""

    code: int
    out: str
    err: str

    def __str__(self) -> str:  # shown by pytest when an assertion on the result fails
        return f"exit {self.code}\n--- stdout (end) ---\n{self.out[-3000:]}\n--- stderr (end) ---\n{self.err[-3000:]}"


@contextlib.contextmanager
def environment(changes: Mapping[str, str | None] | None = None) -> Iterator[None]:
    """Apply ``changes`` to the environment (None removes a variable); restore all of it afterwards.

    Restoring everything also drops ``ZENML_ACTIVE_STACK_ID``, which a
    command sets for its own process to run on the chosen stack.
    """
    saved = dict(os.environ)
    for name, value in (changes or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _main(argv: tuple[Any, ...]) -> int:
    from cli.main import main

    try:
        return main([str(arg) for arg in argv])
    except SystemExit as exit_:  # argparse: usage errors and --help
        return exit_.code if isinstance(exit_.code, int) else 1


def run_cli(*argv: Any, env: Mapping[str, str | None] | None = None) -> CliResult:
    """``python run.py ARGV`` in this process, against the session's store; usable from any fixture scope."""
    out, err = io.StringIO(), io.StringIO()
    with environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _main(argv)
    return CliResult(code, out.getvalue(), err.getvalue())


class StoreTouched(AssertionError):
    """A command that should have refused its input reached the ZenML layer."""


def _store_files() -> set[str]:
    found = set()
    for folder in (ZENML_CONFIG, REPOSITORY):
        if folder.exists():
            found |= {str(p.relative_to(_SESSION_DIR)) for p in folder.rglob("*")}
    return found


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., CliResult]]:
    """``python run.py ARGV`` in this process, for refusals decided before ZenML (the fast tier).

    What touches ZenML in the ZenML-facing layer (setting the repository
    and stacks up, choosing a stack, running a pipeline) is replaced by a
    tripwire for the duration of the test, so a command that gets as far as
    the store fails the test instead of quietly creating one; and the test
    fails too if any file appeared in the session's ZenML configuration or
    repository folders.
    """
    from orchestration import runs, workspace

    def tripwire(*_args: Any, **_kwargs: Any) -> Any:
        raise StoreTouched("the command reached the ZenML store before refusing")

    for name in ("setup", "select_stack", "ensure_repository", "register_stacks"):
        monkeypatch.setattr(workspace, name, tripwire)
    monkeypatch.setattr(runs, "run_pipeline", tripwire)
    before = _store_files()

    def call(*argv: Any, env: Mapping[str, str | None] | None = None) -> CliResult:
        capsys.readouterr()
        with environment(env):
            code = _main(argv)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    yield call
    assert _store_files() == before, "a ZenML store or repository file appeared"


def assert_refused(result: CliResult, *fragments: str) -> None:
    """Exit code 1, each fragment in the one-line error on stderr, and no traceback."""
    assert result.code == 1, result
    assert result.err.startswith("error: ") or "\nerror: " in result.err, result
    for fragment in fragments:
        assert fragment in result.err, f"{fragment!r} not in:\n{result}"
    assert "Traceback" not in result.err + result.out, result


# --- projects -------------------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    """A name no other test uses in the session's store."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, Mapping) and isinstance(
            merged.get(key), dict) else value
    return merged


def write_project(folder: Path, model_name: str | None = None, training: Path = FAST_CONFIG,
                  contract: Path = CONTRACT, keys_dir: Path | None = None, name: str = "project.yaml",
                  **changes: Any) -> Path:
    """A copy of the parking project in ``folder``: its own model name, keys folder and pseudonymisation key file.

    Paths are absolute, so the project works from anywhere; ``changes`` are
    merged into the file (``deployment={"require_approval": True}``). The
    keys folder (default ``folder/keys``) is created empty; the key file is
    named but not created.
    """
    folder.mkdir(parents=True, exist_ok=True)
    keys = keys_dir or folder / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load(PROJECT.read_text(encoding="utf-8"))
    raw.update(model_name=model_name or unique("test-model"), contract=str(contract), training=str(training))
    raw["exchange"].update(keys_dir=str(keys), pseudonymisation_key_file=str(folder / "pseudonymisation.key"))
    path = folder / name
    path.write_text(yaml.safe_dump(_merge(raw, changes), sort_keys=False), encoding="utf-8")
    return path


def training_config(folder: Path, name: str = "training.yaml", **search_base: Any) -> Path:
    """The fast training config, with ``search.base`` parameters changed (``max_iter=1`` cripples the model)."""
    config = yaml.safe_load(FAST_CONFIG.read_text(encoding="utf-8"))
    config["parameters"]["search"]["base"].update(search_base)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


# --- the session's store, read in this process ----------------------------------------------------------------


def model_version(model_name: str, number: int | str) -> Any:
    """A version of ``model_name`` in the session's store, with its metadata."""
    from zenml.client import Client

    return Client().get_model_version(model_name, int(number) if str(number).isdigit() else number)


def version_numbers(model_name: str) -> list[int]:
    """The version numbers of ``model_name`` in the session's store ([] if the model does not exist)."""
    from zenml.client import Client

    try:
        return sorted(int(v.number) for v in Client().list_model_versions(model_name_or_id=model_name,
                                                                           size=1000).items)
    except KeyError:
        return []


def model_exists(model_name: str) -> bool:
    from zenml.client import Client

    try:
        Client().get_model(model_name)
    except KeyError:
        return False
    return True


def run_names(pipeline: str) -> set[str]:
    """Names of every run of ``pipeline`` in the session's store."""
    from zenml.client import Client

    try:
        return {r.name for r in Client().list_pipeline_runs(pipeline_name=pipeline, size=1000).items}
    except KeyError:
        return set()


# --- data and bundles made by the library (what the other partner would send) -------------------------------


def example_data(months: int = 4, car_parks: int = 8, seed: int = 7, **settings: Any) -> Any:
    from collabops.data.generator import GeneratorSettings, generate

    return generate(GeneratorSettings(months=months, car_parks=car_parks, seed=seed, **settings))


def key_pair(keys_dir: Path, home: Path, partner: str) -> Path:
    """A partner's key pair: the public key in ``keys_dir``, the private key under ``home``; returns its path."""
    from collabops.exchange.signing import generate_key_pair

    private = home / f"{partner}.key"
    generate_key_pair(private, keys_dir / f"{partner}.pub", partner)
    return private


def data_bundle(frame: Any, private_key: Path, out: Path, contract: Path = CONTRACT) -> Path:
    """What export-data writes, without the export's run: ``frame`` pseudonymised and signed by the industry."""
    from collabops.data.contract import load_contract
    from collabops.data.profile import profile
    from collabops.exchange.bundle import Producer
    from collabops.exchange.data_bundle import write_data_bundle
    from collabops.exchange.pseudonymise import pseudonymise
    from collabops.exchange.signing import load_signer

    spec = load_contract(contract)
    exported = pseudonymise(frame, spec.personal_columns, b"test-pseudonymisation-key-0123")
    path, _ = write_data_bundle(exported, spec, profile(exported, spec), Producer(partner="industry"),
                                load_signer("industry", private_key), out)
    return path


def model_bundle(data_bundle_dir: Path, private_key: Path, out: Path, max_iter: int = 60,
                 model_name: str = "parking-occupancy", trained_on: str | None = None,
                 promised_mae: float = 0.03, with_reference: bool = True) -> Path:
    """What ``run.py handover`` sends: a model fitted on a data bundle's data, signed by the university.

    ``trained_on`` is the data bundle id the manifest records (the gate's
    lineage to the holdout); ``max_iter=3`` makes a model the gate refuses.
    ``promised_mae`` is the test error its metrics promise; ``with_reference``
    False leaves out the monitoring reference (a bundle from before it existed).
    """
    import json

    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor

    from collabops.data.contract import load_contract
    from collabops.data.profile import profile
    from collabops.exchange.bundle import Producer
    from collabops.exchange.model_bundle import write_model_bundle
    from collabops.exchange.signing import load_signer
    from collabops.training.features import build_model

    contract = load_contract(data_bundle_dir / "contract.yaml")
    manifest = json.loads((data_bundle_dir / "manifest.json").read_text(encoding="utf-8"))
    frame = pd.read_parquet(data_bundle_dir / manifest["data_file"])
    model = build_model(contract, HistGradientBoostingRegressor(max_iter=max_iter, random_state=0))
    model.fit(frame[contract.feature_columns], frame[contract.target])
    reference = frame.drop(columns=contract.personal_columns)
    metrics = {"test": {"overall": {"mae": promised_mae}, "by_segment": {}}}
    path, _ = write_model_bundle(model, contract, metrics, profile(frame, contract), reference.head(500),
                                 "# test model\n", Producer(partner="university", stack="university-local"),
                                 load_signer("university", private_key), out,
                                 extra={"model": {"name": model_name, "version": str(max_iter),
                                                  "training_data_bundle_id": trained_on or manifest["bundle_id"]}},
                                 monitoring_reference=reference if with_reference else None)
    return path


# --- separate worlds: python run.py in a copy of the repository ----------------------------------------------


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
    """A copy of the project bound to its own ZenML configuration folder: a world of its own, run as a user would."""

    def __init__(self, root: Path, zenml_config: Path, extra_env: dict[str, str] | None = None) -> None:
        self.root = root
        self.zenml_config = zenml_config
        self.extra_env = dict(extra_env or {})

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("ZENML_ACTIVE_STACK_ID", "PYTHONPATH")}
        if _OUTER_PYTHONPATH:  # the copy runs its own code, not this checkout's
            env["PYTHONPATH"] = _OUTER_PYTHONPATH
        env.update(ZENML_CONFIG_PATH=str(self.zenml_config), ZENML_REPOSITORY_PATH=str(self.root),
                   ZENML_ANALYTICS_OPT_IN="false", PYTHONUNBUFFERED="1", NO_COLOR="1")
        env.update(self.extra_env)
        return env

    def run(self, *args: str, timeout: float = 900, env: Mapping[str, str] | None = None) -> CliResult:
        """``python run.py ARGS`` in the copy; never reads stdin."""
        result = subprocess.run([sys.executable, "run.py", *map(str, args)], cwd=self.root,
                                env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL)
        return CliResult(result.returncode, result.stdout, result.stderr)

    def query(self, code: str) -> Any:
        """Run Python ``code`` against this world's ZenML store; it must print one JSON value last."""
        import json

        result = subprocess.run([sys.executable, "-c", code], cwd=self.root, env=self.env, capture_output=True,
                                text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    def zenml(self, *args: str) -> CliResult:
        zenml = str(Path(sys.executable).with_name("zenml"))
        result = subprocess.run([zenml, *args], cwd=self.root, env=self.env, capture_output=True, text=True,
                                timeout=300, stdin=subprocess.DEVNULL)
        return CliResult(result.returncode, result.stdout, result.stderr)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The session's store goes with the session (the module fixtures have stopped their services by now)."""
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture
def fresh_workspace(tmp_path: Path) -> Workspace:
    """A brand-new clone with a brand-new ZenML store, for first-run behaviour."""
    return Workspace(copy_project(tmp_path / "clone"), tmp_path / "zenml-config",
                     {"XDG_CONFIG_HOME": str(tmp_path / "home")})


# --- session-wide worlds in this process -----------------------------------------------------------------------


@dataclass(frozen=True)
class TrainedOnFile:
    """A model of its own project, trained in the session's store on a generated drift file."""

    project: Path
    model_name: str
    data: Path
    generated: CliResult
    trained: CliResult


@pytest.fixture(scope="session")
def drift_model(tmp_path_factory: pytest.TempPathFactory) -> TrainedOnFile:
    """``generate-data --drift`` then ``train --data`` on it: one training shared by the tests that need a version."""
    base = tmp_path_factory.mktemp("drift-model")
    data = base / "drift.csv"
    generated = run_cli("generate-data", "--out", data, "--months", "2", "--car-parks", "6", "--drift")
    assert generated.code == 0, generated
    name = unique("drift-model")
    project = write_project(base, model_name=name)
    trained = run_cli("train", "--project", project, "--data", data, "--partner", "university")
    assert trained.code == 0, trained
    return TrainedOnFile(project, name, data, generated, trained)
