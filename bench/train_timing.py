#!/usr/bin/env python
"""How much does ZenML add to a training run? Wall time of ``python run.py train``, measured by hand.

Why: ``python run.py train`` on the example data takes tens of seconds on a
small machine, and it is not obvious how much of that is the training itself
(data generation, validation, the grid search, evaluation, plots) and how
much is ZenML and MLflow (store set-up, stack registration, artifact
materialisation, tracking, model versions). This script answers that with
three cases, all on the default data (the example generator, configs/training.yaml):

* ``plain script``: the same library calls as the pipeline's steps, from the
  plain ``collabops`` package in a subprocess, with no ZenML and no MLflow
  logging. It is the baseline of the table.
* ``zenml cold``: ``python run.py train`` in a fresh copy of the repository
  with a fresh, empty ZenML store (``ZENML_CONFIG_PATH``) for every run: what a
  partner's first run on a fresh clone costs.
* ``zenml cached``: ``python run.py train`` again in one such copy after a
  warm-up run; every step is served from cache except ``load_data_contract``
  and ``promote_model``, which always run by design.

Every run is a subprocess timed with ``time.perf_counter`` (interpreter start
and imports included; copying the repository is not). "Cold" means a cold
ZenML store, not a cold OS file cache. The plain and cold runs are
interleaved, so a slow drift of the machine affects both alike.

Run it by hand, from the project root, with the project's environment::

    python bench/train_timing.py --repeats 3

It never touches the project's own ``.zen`` or the user's ZenML config: every
run gets its own temporary ``ZENML_CONFIG_PATH`` and repository copy, deleted
afterwards. It makes no assertion on the times and is not part of the test
suite. A cold run takes about 40 s on a 2-core machine, so ``--repeats 3``
takes a few minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Local state and data that a fresh clone does not have.
EXCLUDED_AT_ROOT = {".git", ".zen", ".collabops", "data"}
EXCLUDED_ANYWHERE = {"__pycache__", ".pytest_cache"}
STDERR_TAIL_LINES = 40
PLAIN_SCRIPT_NAME = "_bench_plain_train.py"

# The work of pipelines/training.py (steps/data.py, steps/training.py,
# steps/evaluation.py) without ZenML, parameters from configs/training.yaml.
# Not done here: MLflow logging (log_experiment) and the model version and
# promotion (promote_model).
PLAIN_SCRIPT = '''\
"""The training pipeline's work with the plain collabops library: no ZenML, no MLflow."""

import sys

import pandas as pd
import yaml

from collabops.training import plots
from collabops.data.contract import load_contract
from collabops.training.evaluation import feature_importance, scores
from collabops.data.generator import GeneratorSettings, generate
from collabops.training.search import SearchSettings, search
from collabops.data.split import SplitSettings, time_split
from collabops.training.tasks import get_task

with open("configs/training.yaml", encoding="utf-8") as handle:
    parameters = yaml.safe_load(handle)["parameters"]
source = "example data (generator)"

contract = load_contract(parameters["contract_path"])
task = get_task(parameters["task"])
data = contract.validate(generate(GeneratorSettings(**parameters["generator"])), source=source)
contract.check_trainable(data, source=source)
parts = time_split(data, contract.time_column, SplitSettings.from_dict(parameters["split"]), source=source)

both = pd.concat([parts.train, parts.validation], ignore_index=True)
baseline = task.make_baseline(contract).fit(both[contract.feature_columns], both[contract.target])
result = search(task, contract, parts.train, parts.validation, SearchSettings.from_dict(parameters["search"]))

test = parts.test
features = test[contract.feature_columns]
pred, baseline_pred = result.model.predict(features), baseline.predict(features)
model_scores = scores(task, contract, test, pred)
baseline_scores = scores(task, contract, test, baseline_pred)
importance = feature_importance(task, contract, result.model, test)
images = [
    plots.forecast_week(contract, test, pred, baseline_pred),
    plots.error_by_hour(contract, test, pred, baseline_pred, task),
    plots.feature_importance(importance, task.primary_metric),
]

if "zenml" in sys.modules or "mlflow" in sys.modules:
    sys.exit("the plain script imported zenml or mlflow; it must not")
print(f"test period: MAE {model_scores['overall']['mae']:.4f} "
      f"(baseline MAE {baseline_scores['overall']['mae']:.4f})")
'''

MAE_PATTERN = re.compile(r"MAE (\d+\.\d+)")
CACHED_STEP_PATTERN = re.compile(r"Using cached version of step\W+(\w+)")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class RunResult:
    seconds: float
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Case:
    name: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


class BenchError(RuntimeError):
    """A timed subprocess failed; the message carries its stderr tail."""


def copy_repository(destination: Path) -> Path:
    """Copy the project as a fresh clone would have it (no .git, no ZenML or collabops state, no data)."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        excluded = {n for n in names if n in EXCLUDED_ANYWHERE}
        if Path(directory).resolve() == ROOT:
            excluded |= {n for n in names if n in EXCLUDED_AT_ROOT}
        return excluded

    target = destination / "collabops-copy"
    shutil.copytree(ROOT, target, ignore=ignore)
    return target


def run_environment(repository: Path, zenml_config: Path) -> dict[str, str]:
    """The caller's environment without its ZenML settings, pointed at a private store and repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENML_") and k != "MLFLOW_TRACKING_URI"}
    env.update({
        "ZENML_CONFIG_PATH": str(zenml_config),
        "ZENML_REPOSITORY_PATH": str(repository),
        "ZENML_ANALYTICS_OPT_IN": "false",
    })
    return env


def timed_run(command: Sequence[str], cwd: Path, env: dict[str, str], label: str) -> RunResult:
    """Run ``command`` and time it; raise ``BenchError`` with its stderr tail if it fails."""
    started = time.perf_counter()
    completed = subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        tail = "\n".join((completed.stderr or completed.stdout).splitlines()[-STDERR_TAIL_LINES:])
        raise BenchError(f"{label} failed with exit code {completed.returncode} after {seconds:.1f} s; "
                         f"last lines of its output:\n{tail}")
    return RunResult(seconds=seconds, stdout=completed.stdout, stderr=completed.stderr)


def train_command() -> list[str]:
    return [sys.executable, "run.py", "train"]


def run_plain(label: str) -> RunResult:
    """The plain script in a fresh copy (it reads configs/ from the copy, as run.py does)."""
    with tempfile.TemporaryDirectory(prefix="bench-plain-") as tmp:
        repository = copy_repository(Path(tmp))
        script = repository / PLAIN_SCRIPT_NAME
        script.write_text(PLAIN_SCRIPT, encoding="utf-8")
        zenml_config = Path(tmp) / "zenml-config"  # unused, so nothing can reach the user's config
        return timed_run([sys.executable, str(script)], repository,
                         run_environment(repository, zenml_config), label)


def run_cold(label: str) -> RunResult:
    """``run.py train`` in a fresh copy with a fresh ZenML store."""
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        repository = copy_repository(Path(tmp))
        zenml_config = Path(tmp) / "zenml-config"
        zenml_config.mkdir()
        return timed_run(train_command(), repository, run_environment(repository, zenml_config), label)


def run_cached(repeats: int) -> tuple[list[RunResult], RunResult]:
    """A warm-up ``run.py train``, then ``repeats`` timed ones in the same copy and store."""
    with tempfile.TemporaryDirectory(prefix="bench-cached-") as tmp:
        repository = copy_repository(Path(tmp))
        zenml_config = Path(tmp) / "zenml-config"
        zenml_config.mkdir()
        env = run_environment(repository, zenml_config)
        print("  zenml cached: warm-up run ...", flush=True)
        warm_up = timed_run(train_command(), repository, env, "zenml cached (warm-up)")
        print(f"  zenml cached: warm-up {warm_up.seconds:.1f} s", flush=True)
        results = []
        for i in range(1, repeats + 1):
            result = timed_run(train_command(), repository, env, f"zenml cached run {i}")
            print(f"  zenml cached {i}/{repeats}: {result.seconds:.1f} s", flush=True)
            results.append(result)
        return results, warm_up


def first_mae(output: str) -> str | None:
    match = MAE_PATTERN.search(output)
    return match.group(1) if match else None


def cached_steps(result: RunResult) -> list[str]:
    """Steps that ZenML's log says it served from cache."""
    log = ANSI_ESCAPE.sub("", result.stdout + result.stderr)
    return sorted(set(CACHED_STEP_PATTERN.findall(log)))


def load_average() -> str:
    """Other work on the machine skews every time in the table; this shows whether there was any."""
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_lines() -> list[str]:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        zenml_version = metadata.version("zenml")
    except metadata.PackageNotFoundError:
        zenml_version = "not installed"
    return [
        f"date:    {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {platform.machine()}, {cpus} CPU(s) available (nproc), {platform.platform()}",
        f"python:  {platform.python_version()} ({sys.executable}); zenml {zenml_version}",
        f"load:    {load_average()} (1, 5, 15 min) before the first run",
    ]


def format_table(cases: list[Case], baseline: Case) -> str:
    header = ("case", "runs", "median s", "min s", "max s", "ratio to plain script")
    rows = [header] + [
        (c.name, str(len(c.seconds)), f"{c.median:.1f}", f"{min(c.seconds):.1f}", f"{max(c.seconds):.1f}",
         f"{c.median / baseline.median:.2f}x")
        for c in cases
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per case; the table shows their median (default 3)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print("\n".join(machine_lines()))
    print(f"project: {ROOT}; {args.repeats} timed run(s) per case, plain and cold interleaved\n", flush=True)
    try:
        plain: list[RunResult] = []
        cold: list[RunResult] = []
        for i in range(1, args.repeats + 1):
            plain.append(run_plain(f"plain script run {i}"))
            print(f"  plain script {i}/{args.repeats}: {plain[-1].seconds:.1f} s", flush=True)
            cold.append(run_cold(f"zenml cold run {i}"))
            print(f"  zenml cold   {i}/{args.repeats}: {cold[-1].seconds:.1f} s", flush=True)
        cached, warm_up = run_cached(args.repeats)
    except BenchError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1

    baseline = Case("plain script (no ZenML, no MLflow)", [r.seconds for r in plain])
    cases = [
        baseline,
        Case("zenml cold (fresh store + copy)", [r.seconds for r in cold]),
        Case("zenml cached (all steps cached)", [r.seconds for r in cached]),
    ]
    print()
    print(format_table(cases, baseline))
    print()
    print(f"load average after the last run: {load_average()} (1, 5, 15 min)")
    print("The plain script does no MLflow logging and creates no model version: the ZenML times also")
    print("include experiment tracking, artifact storage and the promotion step.")
    print(f"Same work? test MAE, plain script {first_mae(plain[0].stdout)}, "
          f"zenml cold {first_mae(cold[0].stdout)}, zenml cached {first_mae(cached[0].stdout)}.")
    reused = cached_steps(cached[0])
    print(f"Cached run 1 reused {len(reused)} step(s): {', '.join(reused) or 'none found in its log'}"
          f" (warm-up took {warm_up.seconds:.1f} s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
