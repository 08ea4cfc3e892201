"""The main job: the whole collaboration loop, end to end, each partner on its own stack.

``python run.py`` with no command runs it on the embedded default (see
``docs/loop.md``): industry export -> university train -> handover ->
industry import -> gate and deploy -> live requests from a later normal month
-> monitor (``ok``) -> live requests from a drifted month -> monitor
(``drift``, a signed retraining bundle) -> university retrains on it ->
handover -> import -> gate against production and deploy -> live requests ->
monitor again. Every stage is one of the existing commands, called in this
process through :func:`cli.main.main` with ``--partner`` given explicitly, so
each partner runs on its own stack; its output goes to a log file and the
console gets one line per stage, then a summary.

Demonstration material lives outside the repository and is created only when
missing, never replaced: key pairs for both partners and a pseudonymisation
key under ``$XDG_CONFIG_HOME/collabops/demo/`` (``~/.config`` by default), with
a project file pointing at them; generated data, exchange bundles, logs and
the loop's state under ``$XDG_DATA_HOME/collabops/demo/`` (``~/.local/share``).

A second run does nothing twice that it need not: the keys and data files are
reused, and the loop resumes after the last stage whose result still exists
in the same ZenML store (``loop-state.json``). After a complete loop whose
service still runs, it only checks and prints the summary; when the service
has stopped, it deploys the production version again and serves and monitors
the last month again.

The pure parts (paths, key creation, stage lines, request batches, the state's
resume rule) are plain functions, tested in ``tests/unit/test_loop_parts.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from cli.common import project_path
from collabops.errors import CollabopsError, ConfigError
from collabops.settings import DEFAULT_PROJECT

PARTNERS = ("industry", "university")
DEMO_MARKER = "README.txt"
DEMO_NOTICE = """\
DEMONSTRATION KEYS - NOT FOR REAL DATA

`python run.py` (the collabops main job) created the files in this folder for its
demonstration of the collaboration loop on generated example data:

  keys/industry.key, keys/industry.pub       the industry partner's Ed25519 signing key pair
  keys/university.key, keys/university.pub   the university partner's Ed25519 signing key pair
  pseudonymisation.key                       the industry's HMAC key for personal columns
  parking.yaml                               the demo project file that points at them (rewritten each run)

Both partners' private keys sit side by side here, which a real collaboration
never does. Never use these keys for real data; create real ones with
`python run.py keys init --partner NAME` on each partner's own machine.
The main job never replaces a file here; delete the folder to start afresh.
"""
TAIL_LINES = 30
"""Lines of a failed stage's log shown on the console."""
BATCH_RECORDS = 1_000
"""Records per request of a live burst."""
STATE_FILE = "loop-state.json"


# --- pure parts: paths, demonstration material, lines, batches, the state ------------------------------------


def demo_config_dir(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/collabops/demo`` (``~/.config`` by default): the demonstration keys and project file."""
    env = os.environ if environ is None else environ
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "collabops" / "demo"


def demo_data_dir(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/collabops/demo`` (``~/.local/share`` by default): data, bundles, logs, the loop's state."""
    env = os.environ if environ is None else environ
    return Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "collabops" / "demo"


@dataclass(frozen=True)
class DemoKeys:
    """Where the demonstration keys are, and which files this call created (empty: all existed)."""

    folder: Path
    keys_dir: Path
    pseudonymisation_key: Path
    created: tuple[Path, ...]

    def private_key(self, partner: str) -> Path:
        return self.keys_dir / f"{partner}.key"


def ensure_demo_keys(folder: Path, partners: Sequence[str] = PARTNERS) -> DemoKeys:
    """Create the demonstration keys in ``folder`` where missing; never replace a file that exists.

    A key pair per partner (``keys/<partner>.key`` mode 0600, ``keys/<partner>.pub``), a
    ``pseudonymisation.key`` (32 random bytes as hex, mode 0600) and the
    marker file saying these are demonstration keys. A partner whose key
    pair is half there (one of the two files) is refused with a one-line
    ``ConfigError``: completing it would make a pair that does not match.
    """
    from collabops.exchange.signing import generate_key_pair

    keys_dir = folder / "keys"
    created: list[Path] = []
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / DEMO_MARKER
    if not marker.exists():
        marker.write_text(DEMO_NOTICE, encoding="utf-8")
        created.append(marker)
    for partner in partners:
        private, public = keys_dir / f"{partner}.key", keys_dir / f"{partner}.pub"
        if private.exists() and public.exists():
            continue
        if private.exists() or public.exists():
            present, missing = (private, public) if private.exists() else (public, private)
            raise ConfigError(f"{present}: the demonstration key pair of '{partner}' is incomplete ({missing} is "
                              f"missing); delete {present} too and run again to create a new pair")
        generate_key_pair(private, public, partner)
        created += [private, public]
    pseudonymisation = folder / "pseudonymisation.key"
    if not pseudonymisation.exists():
        fd = os.open(pseudonymisation, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        os.chmod(pseudonymisation, 0o600)
        created.append(pseudonymisation)
    return DemoKeys(folder, keys_dir, pseudonymisation, tuple(created))


def demo_project_text(template: Path, keys: DemoKeys, exchange_dir: Path) -> str:
    """The demo project file: ``template`` with absolute contract and training paths, the demo keys, and
    ``exchange_dir`` for the bundles monitoring writes."""
    from collabops.settings import read_yaml_mapping

    raw = read_yaml_mapping(template, "project file")
    folder = template.resolve().parent
    raw["contract"] = str((folder / Path(raw["contract"]).expanduser()).resolve())
    raw["training"] = str((folder / Path(raw["training"]).expanduser()).resolve())
    exchange = dict(raw.get("exchange") or {})
    exchange.update(keys_dir=str(keys.keys_dir), pseudonymisation_key_file=str(keys.pseudonymisation_key))
    raw["exchange"] = exchange
    from collabops.settings import ProjectSettings

    if "monitoring" in ProjectSettings.model_fields:  # retraining bundles go beside the others
        raw["monitoring"] = {**(raw.get("monitoring") or {}), "exchange_dir": str(exchange_dir)}
    header = (f"# The demonstration project of `python run.py` (the main job), made from {template.resolve()}.\n"
              "# Rewritten by every run of the main job: edit the template, not this copy.\n"
              "# Its keys are DEMONSTRATION KEYS, not for real data (see README.txt next to it).\n")
    return header + yaml.safe_dump(raw, sort_keys=False)


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds exactly that; True if written."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def stage_line(index: int, total: int, label: str, seconds: float, result: str, failed: bool = False) -> str:
    """``[ 3/17] university train      41.2 s  version 2 staged (test MAE 0.0377)``; a failure says FAILED."""
    width = len(str(total))
    return (f"[{index:>{width}}/{total}] {label:<22} {seconds:>6.1f} s  "
            + (f"FAILED: {result}" if failed else result))


def request_batches(frame: Any, columns: Sequence[str], size: int = BATCH_RECORDS) -> Iterator[bytes]:
    """``{"records": [...]}`` bodies of at most ``size`` rows of ``columns``: times as ISO text, missing as null."""
    import math

    part = frame[list(columns)]
    for start in range(0, len(part), size):
        chunk = part.iloc[start:start + size]
        records = []
        for row in chunk.itertuples(index=False, name=None):
            record = {}
            for name, value in zip(columns, row, strict=True):
                if hasattr(value, "isoformat"):
                    value = value.isoformat()
                elif hasattr(value, "item"):  # numpy scalars
                    value = value.item()
                if isinstance(value, float) and math.isnan(value):
                    value = None
                record[name] = value
            records.append(record)
        yield json.dumps({"records": records}).encode("utf-8")


@dataclass
class LoopState:
    """What a run of the loop left behind, stage by stage, in one ZenML store (``loop-state.json``).

    ``stages`` maps a stage's key to what it produced (``result`` and the
    values later stages read). A stage counts as done only when every stage
    before it was done too (:meth:`done`); running a stage forgets it and
    every later stage (:meth:`forget_from`).
    """

    store: str
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, store: str, order: Sequence[str]) -> LoopState:
        """The state in ``path`` if it belongs to ``store``; else an empty one (another store knows nothing of it)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raw = {}
        stages = raw.get("stages") if isinstance(raw, dict) and raw.get("store") == store else None
        return cls(store, dict(stages) if isinstance(stages, dict) else {}, list(order))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps({"store": self.store, "stages": self.stages}, indent=2), encoding="utf-8")
        partial.replace(path)

    def done(self, key: str) -> dict[str, Any] | None:
        """What ``key`` produced, if it and every stage before it are recorded; else None."""
        for earlier in self.order:
            if earlier not in self.stages:
                return None
            if earlier == key:
                return self.stages[key]
        return None

    def forget_from(self, key: str) -> None:
        """Forget ``key`` and every stage after it (they are run again)."""
        for later in self.order[self.order.index(key):]:
            self.stages.pop(later, None)

    def record(self, key: str, values: dict[str, Any]) -> None:
        self.stages[key] = values


# --- running stages -------------------------------------------------------------------------------------------


class StageFailed(CollabopsError):
    """A stage did not give what the loop needs; the message says what, the log has the details."""


class _Tee(io.TextIOBase):
    """Writes to the log file and keeps the text, for the stage's result and the tail shown on failure."""

    def __init__(self, log: IO[str]) -> None:
        self.log, self.buffer_ = log, io.StringIO()

    def write(self, text: str) -> int:
        self.log.write(text)
        self.buffer_.write(text)
        return len(text)

    def flush(self) -> None:
        self.log.flush()

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        return self.buffer_.getvalue()


@contextlib.contextmanager
def _captured(tee: _Tee) -> Iterator[None]:
    """Everything the stage prints, and ZenML's console logging, go to ``tee`` (not the console)."""
    import logging

    from zenml import logger as zenml_logger

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)
                and not isinstance(h, logging.FileHandler)]
    streams = [h.setStream(tee) for h in handlers]  # type: ignore[func-returns-value]
    original = zenml_logger._original_stdout_write  # ZenML's console handler writes here, around sys.stdout
    zenml_logger._original_stdout_write = tee.write
    try:
        with contextlib.redirect_stdout(tee), contextlib.redirect_stderr(tee):
            yield
    finally:
        zenml_logger._original_stdout_write = original
        for handler, stream in zip(handlers, streams, strict=True):
            handler.setStream(stream)


@contextlib.contextmanager
def _environment(changes: dict[str, str | None]) -> Iterator[None]:
    """Apply ``changes`` (None removes); restore every variable afterwards (commands set the active stack's id)."""
    saved = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class StageRecord:
    """One line of the summary."""

    index: int
    label: str
    seconds: float
    result: str
    reused: bool = False


@dataclass
class Stage:
    key: str
    label: str
    run: Callable[[], dict[str, Any]]
    still_there: Callable[[dict[str, Any]], bool] = lambda _values: True
    """Whether what the stage made before still exists (then a second run reuses it)."""
    always: bool = False
    """Runs on every run (cheap, and reuses what it finds itself), without making the later stages run again."""


class Loop:
    """One run of the main job: the demonstration material, the stages, the console lines and the summary."""

    def __init__(self, template: Path, console: IO[str]) -> None:
        self.template = template
        self.console = console
        self.config_dir, self.data_dir = demo_config_dir(), demo_data_dir()
        self.exchange_dir = self.data_dir / "exchange"
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.log_path = self.data_dir / "logs" / f"loop-{stamp}.log"
        self.records: list[StageRecord] = []
        self.notes: list[str] = []
        self.keys: DemoKeys | None = None
        self.project_file = self.config_dir / "parking.yaml"
        self.files: dict[str, Path] = {}
        self.state: LoopState | None = None
        self.production_before: str | None = None
        self._tee: _Tee | None = None

    # -- console and log --

    def say(self, text: str) -> None:
        print(text, file=self.console, flush=True)

    def command(self, tee: _Tee, partner: str | None, *argv: str) -> str:
        """``python run.py --project <demo> ARGV [--partner P]`` in this process; its output; StageFailed if not 0."""
        from cli.main import main

        full = ["--project", str(self.project_file), *argv] + (["--partner", partner] if partner else [])
        assert self.keys is not None
        env: dict[str, str | None] = {"ZENML_ACTIVE_STACK_ID": None, "COLLABOPS_PSEUDONYMISATION_KEY": None,
                                      "COLLABOPS_PRIVATE_KEY_FILE": str(self.keys.private_key(partner))
                                      if partner else None}
        start = len(tee.getvalue())
        print(f"\n$ python run.py {' '.join(full)}", file=tee)
        with _environment(env):
            try:
                code = main(full)
            except SystemExit as exit_:  # argparse
                code = exit_.code if isinstance(exit_.code, int) else 1
        output = tee.getvalue()[start:]
        if code != 0:
            error = next((line[len("error: "):] for line in reversed(output.splitlines())
                          if line.startswith("error: ")), f"exit code {code}")
            raise StageFailed(f"`{argv[0]}` failed: {error}")
        return output

    def run_stages(self, stages: Sequence[Stage]) -> None:
        """Run (or reuse) every stage in order; print its line; on failure print the log's tail and raise."""
        assert self.state is not None
        total = len(stages)
        state_path = self.data_dir / STATE_FILE
        resuming = True
        with self.log_path.open("a", encoding="utf-8") as log:
            for index, stage in enumerate(stages, start=1):
                previous = self.state.done(stage.key) if resuming and not stage.always else None
                if previous is not None and stage.still_there(previous):
                    self.records.append(StageRecord(index, stage.label, 0.0, previous["result"], reused=True))
                    self.say(stage_line(index, total, stage.label, 0.0, f"done before: {previous['result']}"))
                    continue
                if not stage.always:
                    resuming = False
                    self.state.forget_from(stage.key)
                    self.state.save(state_path)
                print(f"\n===== [{index}/{total}] {stage.label} ({dt.datetime.now().isoformat(timespec='seconds')})",
                      file=log, flush=True)
                tee = self._tee = _Tee(log)
                started = time.perf_counter()
                try:
                    with _captured(tee):
                        values = stage.run()
                except KeyboardInterrupt:
                    self.say(stage_line(index, total, stage.label, time.perf_counter() - started, "interrupted",
                                        failed=True))
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure: its line, the log's tail, exit 1
                    seconds = time.perf_counter() - started
                    if not isinstance(exc, CollabopsError):  # unexpected: the traceback goes to the log
                        import traceback

                        tee.write("".join(traceback.format_exception(exc)))
                    log.flush()
                    message = str(exc) if isinstance(exc, CollabopsError) else f"{type(exc).__name__}: {exc}"
                    self.say(stage_line(index, total, stage.label, seconds, message, failed=True))
                    tail = tee.getvalue().rstrip().splitlines()[-TAIL_LINES:]
                    self.say("  " + "\n  ".join(tail) if tail else "  (the stage printed nothing)")
                    self.say(f"the whole log: {self.log_path}")
                    raise StageFailed(f"stage {index}/{total} '{stage.label}' failed") from None
                seconds = time.perf_counter() - started
                log.flush()
                self.state.record(stage.key, values)
                self.state.save(state_path)
                self.records.append(StageRecord(index, stage.label, seconds, values["result"]))
                self.say(stage_line(index, total, stage.label, seconds, values["result"]))


def _accepted(expected: str | list[str]) -> list[str]:
    """The verdicts a stage expected (older state files recorded one as text)."""
    return [expected] if isinstance(expected, str) else list(expected)


# --- the stages -----------------------------------------------------------------------------------------------


MONTHS = {"history": ("2024-01-01", 12, False), "normal": ("2025-01-01", 1, False),
          "drifted": ("2025-02-01", 1, True)}
"""The generated files: a year of history (its months: the training config's ``generator.months``, 12 by
default), a later normal month, a drifted month (February).

February is served in two halves: the first two weeks are monitored (``drift``)
and exported for retraining; the retrained model then serves the last two
weeks, in the same season. (A model retrained on two weeks of a new regime,
asked to serve the next month, is extrapolating: measured on the example
data, its error in March grows from 1.2 to 2 times its promise week by week,
as the warmer weather takes it where it never saw this regime.)"""
DRIFT_HALVES = {"drift-early": ("2025-02-01", "2025-02-15"), "drift-late": ("2025-02-15", "2025-03-01")}
"""The two halves of the drifted month: [first day, day after the last) in local days."""


class CollaborationLoop(Loop):
    """The collaboration's stages over :class:`Loop`'s machinery."""

    def __init__(self, template: Path, console: IO[str]) -> None:
        super().__init__(template, console)
        from collabops.settings import load_project, load_training_config

        project = load_project(template)
        generator = load_training_config(project.training_path)["parameters"].get("generator") or {}
        self.seed = int(generator.get("seed", 7))
        self.car_parks = int(generator.get("car_parks", 20))
        self.history_months = int(generator.get("months", 12))
        self.model_name = project.model_name

    # -- helpers --

    def run(self, partner: str | None, *argv: str) -> str:
        assert self._tee is not None
        return self.command(self._tee, partner, *argv)

    def value(self, key: str, name: str) -> Any:
        assert self.state is not None
        return self.state.stages[key][name]

    @contextlib.contextmanager
    def on_stack(self, partner: str) -> Iterator[Any]:
        """The project, with ``partner``'s stack active in this process (the user's active stack never changes)."""
        from collabops.settings import load_project
        from orchestration import workspace

        project = load_project(self.project_file)
        with _environment({"ZENML_ACTIVE_STACK_ID": None}), contextlib.redirect_stdout(io.StringIO()):
            workspace.choose(project, partner, None)
            yield project

    # -- stage 1: demonstration material --

    def material(self) -> dict[str, Any]:
        """Keys (only when missing), the demo project file, the data files (each generated once)."""
        assert self.keys is not None
        made = []
        for name, (start, months, drift) in MONTHS.items():
            path = self.files[name]
            if path.exists():
                continue
            months = self.history_months if name == "history" else months
            argv = ["generate-data", "--out", str(path), "--months", str(months), "--start", start,
                    "--seed", str(self.seed), "--car-parks", str(self.car_parks)] + (["--drift"] if drift else [])
            self.run(None, *argv)
            made.append(path.name)
        for name, (first, end) in DRIFT_HALVES.items():
            if not self.files[name].exists():
                self._days_of(self.files["drifted"], first, end, self.files[name])
                made.append(self.files[name].name)
        keys = (f"created {len(self.keys.created)} demo key files" if self.keys.created else "reused the demo keys")
        data = (f"generated {len(made)} data files" if made else f"reused {len(self.files)} data files")
        return {"result": f"{keys}; {data}", "created": [str(p) for p in self.keys.created], "generated": made}

    @staticmethod
    def _days_of(source: Path, first: str, end: str, out: Path) -> None:
        """The rows of ``source`` from local day ``first`` up to (not including) local day ``end``."""
        import pandas as pd

        from collabops.data.dataset import write_table

        frame = pd.read_parquet(source)
        times = frame["timestamp"]
        inside = (times >= pd.Timestamp(first, tz=times.dt.tz)) & (times < pd.Timestamp(end, tz=times.dt.tz))
        write_table(frame[inside].reset_index(drop=True), out)
        print(f"wrote {first} to {end} (exclusive) of {source.name} to {out}")

    # -- exchange stages --

    def export(self) -> dict[str, Any]:
        out = self.run("industry", "export-data", "--data", str(self.files["history"]), "--out",
                       str(self.exchange_dir))
        found = re.search(r"data bundle (\S+): ([\d,]+) pseudonymised rows -> (\S+)", out)
        if not found:
            raise StageFailed("export-data did not name the bundle it wrote")
        holdout = re.search(r"acceptance holdout kept on this side: ([\d,]+) rows", out)
        return {"result": f"data bundle {found.group(1)[:8]}: {found.group(2)} rows"
                          + (f", {holdout.group(1)} held out" if holdout else ""),
                "bundle": found.group(3), "bundle_id": found.group(1)}

    def train(self, bundle_from: str) -> dict[str, Any]:
        bundle = self.value(bundle_from, "bundle")
        out = self.run("university", "train", "--data-bundle", bundle)
        version = re.search(r"model version: \S+ version (\d+) \(stage: (\w+)\)", out)
        mae = re.search(r"test period:\s+(\S+) ([0-9.]+)", out)
        if not version:
            raise StageFailed("train did not name the model version it made")
        number, stage = version.groups()
        figures = f" (test {mae.group(1)} {mae.group(2)})" if mae else ""
        result = (f"version {number} staged{figures}" if stage == "staging" else
                  f"version {number}, stage {stage}{figures}")
        return {"result": result, "version": number, "stage": stage}

    def handover(self, trained: str) -> dict[str, Any]:
        number = self.value(trained, "version")
        out = self.run("university", "handover", "--version", str(number), "--out", str(self.exchange_dir))
        found = re.search(r"model bundle (\S+) -> (\S+)", out)
        if not found:
            raise StageFailed("handover did not name the bundle it wrote")
        return {"result": f"version {number} as model bundle {found.group(1)[:8]}", "bundle": found.group(2),
                "bundle_id": found.group(1)}

    def import_model(self, handed: str) -> dict[str, Any]:
        out = self.run("industry", "import-model", self.value(handed, "bundle"))
        found = re.search(r"as \S+ version (\d+) on stack", out)
        if not found:
            raise StageFailed("import-model did not name the version it registered")
        again = "already imported" in out
        return {"result": f"{'already imported as' if again else 'imported as'} version {found.group(1)} "
                          "(verified, reference predictions replayed)", "version": found.group(1)}

    def deploy(self, imported: str) -> dict[str, Any]:
        number = self.value(imported, "version")
        out = self.run("industry", "deploy", "--version", str(number))
        gate = re.search(r"gate passed: \S+ on our holdout: candidate ([0-9.]+), seasonal baseline ([0-9.-]+), "
                         r"production (.+)", out)
        url = re.search(r"is in production, serving at (\S+)", out)
        if not url:
            raise StageFailed("deploy did not say where it serves")
        figures = (f"gate passed (holdout MAE {gate.group(1)}, baseline {gate.group(2)}, production "
                   f"{gate.group(3)})" if gate else "gate passed")
        return {"result": f"version {number} in production at {url.group(1)}; {figures}", "version": number,
                "url": url.group(1)}

    def deployed(self, values: dict[str, Any]) -> bool:
        """The version deployed is still production and its service still runs (else the stage runs again)."""
        from orchestration import models, services

        with self.on_stack("industry"):
            production = models.production(self.model_name)
            running = [s for s in services.services(self.model_name)
                       if s.running and s.model_version == str(values["version"])]
        return production is not None and production.number == str(values["version"]) and bool(running)

    def first_deploy_kept(self, values: dict[str, Any]) -> bool:
        """The first deployment still serves, or the loop went on to the second one (which replaced it)."""
        return (self.state is not None and "deploy-2" in self.state.stages) or self.deployed(values)

    def version_exists(self, values: dict[str, Any]) -> bool:
        from orchestration import models

        with self.on_stack("industry"):
            try:
                models.resolve(self.model_name, str(values["version"]), "-")
            except ConfigError:
                return False
        return True

    # -- live traffic and monitoring --

    def burst(self, month: str) -> dict[str, Any]:
        """POST the month's feature rows to the production service, ~1,000 records a request."""
        import httpx
        import pandas as pd

        from collabops.data.contract import load_contract
        from orchestration import models, services

        with self.on_stack("industry") as project:
            production = models.production(self.model_name)
            running = [s for s in services.services(self.model_name) if s.running and production is not None
                       and s.model_version == production.number]
        if not running:
            raise StageFailed("no running prediction service of the production version")
        url = running[0].url
        contract = load_contract(project.contract_path)
        logged_before = self._logged(contract, production.number, running[0].inference_log)
        frame = pd.read_parquet(self.files[month])
        rows = requests = 0
        started = time.perf_counter()
        with httpx.Client(timeout=60) as client:
            for body in request_batches(frame, contract.feature_columns):
                answer = client.post(f"{url}/predict", content=body, headers={"Content-Type": "application/json"})
                if answer.status_code != 200:
                    raise StageFailed(f"{url}/predict answered {answer.status_code}: {answer.text[:300]}")
                rows += len(answer.json()["predictions"])
                requests += 1
        seconds = time.perf_counter() - started
        print(f"{rows:,} predictions from {url} in {requests} requests, {seconds:.1f} s")
        self._wait_for_log(contract, production.number, logged_before + rows,
                           project.deployment.serving.log_flush_seconds, running[0].inference_log)
        return {"result": f"{rows:,} rows of {self.files[month].stem} in {requests} requests to version "
                          f"{production.number} ({rows / max(seconds, 1e-9):,.0f} rows/s)", "rows": rows}

    @staticmethod
    def _logged(contract: Any, version: str, folder: str | None) -> int:
        from collabops.monitoring.current import count_log_rows

        return count_log_rows(Path(folder), contract, version) if folder else 0

    def _wait_for_log(self, contract: Any, version: str, expected: int, flush_seconds: float,
                      folder: str | None) -> None:
        """Wait until the service's inference log holds the burst's rows (it writes every ``flush_seconds``), so
        the monitoring that follows sees them; at most ten flushes."""
        deadline = time.monotonic() + 10 * flush_seconds + 5
        while self._logged(contract, version, folder) < expected:
            if time.monotonic() > deadline:
                raise StageFailed(f"the service's inference log {folder} did not receive the burst's rows within "
                                  f"{10 * flush_seconds + 5:.0f} s")
            time.sleep(min(0.5, flush_seconds))

    def monitor(self, month: str, expected: str | tuple[str, ...]) -> dict[str, Any]:
        """Monitor the log since the last monitoring with ``month``'s outcomes; ``expected``: the verdict(s) the
        demonstration expects (another is shown with its first reason, not a failure)."""
        from cli.main import COMMANDS

        if "monitor" not in COMMANDS:
            raise StageFailed("this checkout has no `monitor` command yet; the loop stops here")
        out = self.run("industry", "monitor", "--outcomes", str(self.files[month]))
        verdict = self._last_verdict(out)
        text = verdict["verdict"]
        reasons = [str(r) for r in verdict.get("reasons") or []]
        live = verdict.get("live_error")
        if isinstance(live, dict) and live.get("value") is not None:
            text += f", live {str(live.get('metric') or 'error').upper()} {live['value']:.4f}"
            if live.get("promised"):
                text += f" = {live['value'] / live['promised']:.2f} x the promised {live['promised']:.4f}"
            if any("within the promise" in reason for reason in reasons):
                text += " (within the promise)"
        accepted = (expected,) if isinstance(expected, str) else expected
        if verdict["verdict"] not in accepted:
            first = reasons[0] if reasons else "no reason given"
            text += f" (expected {' or '.join(accepted)}; {first[:160]})"
        elif verdict["verdict"] != "ok" and expected != "drift":
            text += f" ({reasons[0][:160]})" if reasons else ""
        report = re.search(r"^report:\s+(\S+)", out, re.MULTILINE)
        values = {"result": text, "verdict": verdict["verdict"], "expected": list(accepted),
                  "run": verdict.get("run"), "report": report.group(1) if report else verdict.get("report"),
                  "retraining_bundle": verdict.get("retraining_bundle"), "live_error": live}
        if expected == "drift" and not verdict.get("retraining_bundle"):
            raise StageFailed(f"monitor gave '{verdict['verdict']}' and no retraining bundle; the loop needs drift "
                              "here to retrain")
        if verdict.get("retraining_bundle"):
            values["result"] += f"; retraining bundle {Path(verdict['retraining_bundle']).name}"
            values["bundle"] = verdict["retraining_bundle"]
        return values

    def _last_verdict(self, out: str) -> dict[str, Any]:
        try:
            from orchestration.monitoring import last_verdict
        except ImportError:
            last_verdict = None
        if last_verdict is not None:
            with self.on_stack("industry"):
                found = last_verdict(self.model_name)
            if found:
                return dict(found)
        verdict = re.search(r"^verdict: (\w+)", out, re.MULTILINE)
        bundle = re.search(r"^retraining bundle: (\S+)", out, re.MULTILINE)
        if not verdict:
            raise StageFailed("monitor printed no verdict")
        return {"verdict": verdict.group(1), "reasons": [], "retraining_bundle": bundle.group(1) if bundle else None}

    def status(self) -> dict[str, Any]:
        out = self.run("industry", "status")
        running = re.search(r"service \S+: running\n\s+url:\s+(\S+)\n\s+model version: (\d+) \(production\)", out)
        if not running:
            raise StageFailed("no running service of the production version")
        return {"result": f"version {running.group(2)} keeps serving at {running.group(1)}",
                "url": running.group(1), "version": running.group(2)}

    # -- the loop --

    def stages(self) -> list[Stage]:
        def keep(values: dict[str, Any]) -> bool:
            return True

        def exists(values: dict[str, Any]) -> bool:
            return Path(values["bundle"]).exists()

        return [
            Stage("material", "demo keys and data", self.material, always=True),
            Stage("export", "industry export", self.export, exists),
            Stage("train", "university train", lambda: self.train("export"), self.version_exists),
            Stage("handover", "university handover", lambda: self.handover("train"), exists),
            Stage("import", "industry import", lambda: self.import_model("handover"), self.version_exists),
            Stage("deploy", "industry gate+deploy", lambda: self.deploy("import"), self.first_deploy_kept),
            Stage("burst-normal", "live: January", lambda: self.burst("normal"), keep),
            Stage("monitor-normal", "industry monitor", lambda: self.monitor("normal", "ok"), keep),
            Stage("burst-drift", "live: Feb 1-14 (drift)", lambda: self.burst("drift-early"), keep),
            Stage("monitor-drift", "industry monitor", lambda: self.monitor("drift-early", "drift"), exists),
            Stage("retrain", "university retrain", lambda: self.train("monitor-drift"), self.version_exists),
            Stage("handover-2", "university handover", lambda: self.handover("retrain"), exists),
            Stage("import-2", "industry import", lambda: self.import_model("handover-2"), self.version_exists),
            Stage("deploy-2", "industry gate+deploy", lambda: self.deploy("import-2"), self.deployed),
            Stage("burst-after", "live: Feb 15-28", lambda: self.burst("drift-late"), keep),
            Stage("monitor-after", "industry monitor", lambda: self.monitor("drift-late", ("ok", "warning")), keep),
            Stage("status", "industry status", self.status, always=True),
        ]

    def prepare(self) -> None:
        """Demonstration keys and project file, the data file names, the state of this store."""
        from orchestration import models, workspace

        self.keys = ensure_demo_keys(self.config_dir)
        write_if_changed(self.project_file, demo_project_text(self.template, self.keys, self.exchange_dir))
        data = self.data_dir / "data"
        self.files = {"history": data / "history-2024.parquet", "normal": data / "live-2025-01.parquet",
                      "drifted": data / "drift-2025-02.parquet",
                      "drift-early": data / "live-2025-02-01-to-14.parquet",
                      "drift-late": data / "live-2025-02-15-to-28.parquet"}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.exchange_dir.mkdir(parents=True, exist_ok=True)
        from collabops.settings import load_project

        with self.log_path.open("a", encoding="utf-8") as log:
            tee = _Tee(log)
            with _captured(tee):
                for line in workspace.setup(load_project(self.project_file)):
                    print(line)
                from zenml.client import Client

                store = str(Client().zen_store.get_store_info().id)
                with self.on_stack("industry"):
                    before = models.production(self.model_name)
        self.production_before = before.number if before else None
        self.state = LoopState.load(self.data_dir / STATE_FILE, store, [s.key for s in self.stages()])

    def summary(self, completed: bool) -> str:
        from orchestration import models, workspace

        assert self.state is not None
        with contextlib.redirect_stdout(io.StringIO()):
            with self.on_stack("industry"):
                after = models.production(self.model_name)
                dashboard = workspace.dashboard_hint()
                industry_mlflow = workspace.tracking_uri()
            with self.on_stack("university"):
                university_mlflow = workspace.tracking_uri()
        lines = ["", "Summary" + ("" if completed else " (the loop stopped early)")]
        total = len(self.stages())
        lines += ["  " + stage_line(r.index, total, r.label, r.seconds, r.result + (" (done before)" if r.reused
                                                                                     else "")) for r in self.records]
        verdicts = [(key, self.state.stages[key]) for key in ("monitor-normal", "monitor-drift", "monitor-after")
                    if key in self.state.stages]
        if verdicts:
            lines.append("  verdicts:      " + ", ".join(
                f"{v['verdict']}" + ("" if v["verdict"] in _accepted(v["expected"]) else
                                      f" (expected {' or '.join(_accepted(v['expected']))})")
                for _, v in verdicts))
        lines.append(f"  production:    before this run version {self.production_before or 'none'}, "
                     f"now version {after.number if after else 'none'}")
        lines.append(f"  dashboard:     {dashboard}")
        for partner, uri in (("university", university_mlflow), ("industry", industry_mlflow)):
            if uri:
                lines.append(f"  MLflow UI ({partner}): mlflow ui --backend-store-uri {uri}")
        reports = [f"{v.get('run')}: {v.get('report')}" for _, v in verdicts if v.get("report")]
        if reports:
            lines.append("  Evidently:     " + "\n                 ".join(reports))
        lines.append(f"  bundles:       {self.exchange_dir}")
        lines.append(f"  data:          {self.data_dir / 'data'}")
        lines.append(f"  demo keys:     {self.config_dir} (demonstration keys, not for real data)")
        lines.append(f"  log:           {self.log_path}")
        service = self.state.stages.get("status")
        if service:
            lines.append(f"  the prediction service keeps running at {service['url']}; stop it with "
                         f"`python run.py --project {self.project_file} undeploy --partner industry`")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def main_job(args: argparse.Namespace) -> int:
    """The default command: the whole collaboration loop on the embedded default (see ``docs/loop.md``)."""
    template = project_path(args) or DEFAULT_PROJECT
    console = sys.stdout
    loop = CollaborationLoop(Path(template), console)  # the project and its training config, checked before ZenML
    os.environ.setdefault("ZENML_LOGGING_COLORS_DISABLED", "true")  # the stages' logs are files: no colour codes
    import zenml  # noqa: F401  # ZenML sets its console logging up now, on the real console, not on a stage's log

    loop.prepare()
    loop.say(f"collabops main job: the collaboration loop on the example data (log: {loop.log_path})")
    loop.say(f"demo project {loop.project_file}; data and bundles in {loop.data_dir}")
    completed = True
    try:
        loop.run_stages(loop.stages())
    except StageFailed as exc:
        completed = False
        failure = str(exc)
    loop.say(loop.summary(completed))
    if not completed:
        print(f"error: {failure}; see {loop.log_path}", file=sys.stderr)
        return 1
    return 0
