#!/usr/bin/env python
"""Batch scoring throughput: ``python run.py infer`` on 5 million rows against one bare ``model.predict``.

Why: ``run.py infer`` validates every row against the data contract, scores
in chunks so memory stays bounded, stamps every row with the model version
and bundle id, writes the output atomically, and runs as a ZenML pipeline.
The goal (issue 4) is that all of that keeps at least 0.9 of the rows per
second of the simplest possible alternative, with a peak memory well below
it. This script measures three cases on the same Parquet file and model:

* ``bare model.predict``: a small script that reads the file with pandas
  (only the contract's feature columns, so the baseline does not pay for
  columns it does not need), calls ``model.predict`` ONCE on all rows and
  writes the predictions to Parquet. No validation, no chunks, no ZenML. It
  is the baseline of the table.
* ``run.py infer (end to end)``: ``python run.py infer --data F --out O
  --version 1``, exactly as a user runs it (ZenML start-up, the
  batch-inference pipeline, loading the model version from the store, the
  run's metadata, the summary).
* ``score_file only (no ZenML)``: ``collabops.production.scoring.score_file`` with its
  defaults in a plain Python process, the library call the pipeline's step
  makes. Its own time is what the step costs; the gap to the end-to-end case
  is ZenML's overhead. Its "s" column is the ``score_file`` call alone; the
  process's wall time is printed below the table.

Preparation (untimed): a copy of the repository as a clone has it, with its
own ``ZENML_CONFIG_PATH``; ``python run.py train`` there (``configs/training.yaml``
by default, the project's real model: HistGradientBoosting, 200 iterations;
``--config fast`` uses tests/configs/fast.yaml, 60 iterations); the fitted
model exported from the ZenML store with joblib for the bare script; and
``--rows`` rows of contract-valid data from the example generator: the same 20
car parks the model was trained on (seed 7), hourly, over as many months from
2025 on as the row count needs, the first ``--rows`` rows, without the target
column (scoring data has no target), personal columns kept (as in the
operator's export). Every (car_park_id, timestamp) pair is unique. (With
``--config fast`` the model knows only 8 of the 20 car parks; the others are
one-hot encoded as all zeros, with a warning.) Last, one untimed ``run.py
infer`` on 1,000 rows: the first pipeline run in a store registers the
pipeline and the industry stack, which a partner's store did long ago; its
time and peak memory are printed as ZenML's fixed cost.

Every timed run is a subprocess run under ``/usr/bin/time`` (GNU time; on
Debian ``apt-get install time``), which reports its wall time, CPU time and
peak resident memory (maximum RSS of the process; ZenML's local orchestrator
runs the step in the same process). Interpreter start-up and imports count.
The cases take turns within each repeat, so a drift in the machine's load
affects all alike; the table shows the median, minimum and maximum of
``--repeats`` runs. The first infer output is checked against the bare
predictions (same rows, same values, every row stamped).

Run it by hand from the project root, serialised with other benchmarks::

    flock /tmp/collabops-bench.lock python bench/batch_scoring.py --repeats 3

It takes ~10 minutes with ``--repeats 3`` on a 2-core machine (preparation
~2.5 minutes: training ~50 s, data ~40 s; each repeat ~2 minutes). It never
touches the project's own ``.zen`` or the user's ZenML config, deletes its
temporary directory (data, outputs, store) at the end, and makes no
assertions on times.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_timing import (  # noqa: E402  (bench/ is not a package)
    ANSI_ESCAPE,
    BenchError,
    copy_repository,
    load_average,
    machine_lines,
    run_environment,
)

ROOT = Path(__file__).resolve().parents[1]
GNU_TIME = Path("/usr/bin/time")
MODEL_NAME = "parking-occupancy"
STDERR_TAIL_LINES = 40
ROWS_PER_CAR_PARK_MONTH = 24 * 365.25 / 12 * 0.995  # the generator drops ~0.5 % of the hours

EXPORT_MODEL = '''\
import sys

import joblib
from zenml.client import Client

model = Client().get_model_version(sys.argv[1], 1).get_model_artifact("trained_model").load()
joblib.dump(model, sys.argv[2])
'''

GENERATE_DATA = '''\
import sys

from collabops.data.contract import load_contract
from collabops.data.generator import GeneratorSettings, generate

rows, months, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
contract = load_contract("configs/contract.yaml")
frame = generate(GeneratorSettings(months=months, car_parks=20, seed=7, start="2025-01-01"))
if len(frame) < rows:
    sys.exit(f"the generator made {len(frame)} rows, fewer than {rows}")
frame = frame.iloc[:rows].drop(columns=[contract.target])
assert not frame.duplicated([contract.entity_column, contract.time_column]).any()
contract.validate(frame, source="bench data", columns=contract.feature_columns)
frame.to_parquet(out, index=False)
print(f"{len(frame)} rows, {frame[contract.entity_column].nunique()} car parks, "
      f"{frame[contract.time_column].min()} to {frame[contract.time_column].max()}")
'''

BARE = '''\
"""The baseline: read, one model.predict on all rows, write. Nothing else."""
import sys

import joblib
import pandas as pd

from collabops.data.contract import load_contract

features = load_contract("configs/contract.yaml").feature_columns
model = joblib.load(sys.argv[1])
frame = pd.read_parquet(sys.argv[2], columns=features)
prediction = model.predict(frame[features])
pd.DataFrame({"prediction": prediction}).to_parquet(sys.argv[3], index=False)
'''

SCORE_FILE = '''\
"""The library call of the pipeline's step (steps/inference.py), without ZenML."""
import logging
import sys
import time
from pathlib import Path

import joblib

from collabops.data.contract import load_contract
from collabops.production.scoring import score_file

logging.basicConfig(level=logging.INFO, format="%(message)s")
model = joblib.load(sys.argv[1])
contract = load_contract("configs/contract.yaml")
started = time.perf_counter()
rows = score_file(model, contract, Path(sys.argv[2]), Path(sys.argv[3]), model_version="1", bundle_id="local")
print(f"SCORE_FILE_SECONDS {time.perf_counter() - started:.3f} rows {rows}")
'''

CHECK = '''\
import sys

import numpy as np
import pandas as pd

bare = pd.read_parquet(sys.argv[1])["prediction"].to_numpy()
scored = pd.read_parquet(sys.argv[2])
rows = int(sys.argv[3])
problems = []
if len(scored) != rows:
    problems.append(f"{len(scored)} rows, expected {rows}")
if set(scored["model_version"].astype(str)) != {"1"} or scored["bundle_id"].isna().any():
    problems.append("not every row carries model_version 1 and a bundle id")
difference = float(np.max(np.abs(scored["prediction"].to_numpy() - bare))) if len(scored) == len(bare) else float("nan")
print(f"infer output: {len(scored):,} rows, columns {', '.join(scored.columns)}; "
      f"max |prediction - bare prediction| = {difference:.3g}; bundle ids {sorted(set(scored['bundle_id']))}")
if problems or not difference <= 1e-9:
    sys.exit("infer output check failed: " + "; ".join(problems or ["predictions differ from the bare call's"]))
'''


@dataclass(frozen=True)
class Run:
    seconds: float          # the case's time (the whole process, or score_file's own call)
    process_seconds: float  # the whole process's wall time
    cpu_seconds: float
    peak_rss_mib: float
    load_1min: float


@dataclass
class Case:
    name: str
    runs: list[Run] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(r, attribute) for r in self.runs)

    def spread(self, attribute: str) -> tuple[float, float]:
        values = [getattr(r, attribute) for r in self.runs]
        return min(values), max(values)


def timed(command: Sequence[str], cwd: Path, env: dict[str, str], label: str, work: Path) -> tuple[Run, str]:
    """Run ``command`` under GNU time; return its figures and its output (stdout + stderr)."""
    report = work / "time-report.txt"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    started = time.perf_counter()
    completed = subprocess.run([str(GNU_TIME), "-o", str(report), "-f", "%e %U %S %M", *command], cwd=cwd,
                               env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    output = ANSI_ESCAPE.sub("", completed.stdout + completed.stderr)
    if completed.returncode != 0:
        tail = "\n".join(output.splitlines()[-STDERR_TAIL_LINES:])
        raise BenchError(f"{label} failed with exit code {completed.returncode} after {wall:.1f} s; "
                         f"last lines of its output:\n{tail}")
    fields = report.read_text().split()[-4:]
    _elapsed, user, system, max_rss_kib = (float(x) for x in fields)
    return Run(seconds=wall, process_seconds=wall, cpu_seconds=user + system, peak_rss_mib=max_rss_kib / 1024,
               load_1min=load), output


def untimed(command: Sequence[str], cwd: Path, env: dict[str, str], label: str) -> str:
    completed = subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True,
                               stdin=subprocess.DEVNULL)
    output = ANSI_ESCAPE.sub("", completed.stdout + completed.stderr)
    if completed.returncode != 0:
        tail = "\n".join(output.splitlines()[-STDERR_TAIL_LINES:])
        raise BenchError(f"{label} failed with exit code {completed.returncode}; last lines:\n{tail}")
    return output


@dataclass(frozen=True)
class Prepared:
    repository: Path
    env: dict[str, str]
    model: Path
    data: Path
    scripts: Path


def prepare(work: Path, rows: int, config: str) -> Prepared:
    """Repository copy + store, a trained model version 1, the model exported, the data (all untimed)."""
    repository = work / "collabops-copy"
    if not repository.exists():
        moved = copy_repository(work)
        assert moved == repository
    zenml_config = work / "zenml-config"
    zenml_config.mkdir(exist_ok=True)
    env = run_environment(repository, zenml_config)
    env.update(PYTHONUNBUFFERED="1", NO_COLOR="1", PYTHONPATH=str(repository))
    scripts = work / "scripts"
    scripts.mkdir(exist_ok=True)
    for name, text in {"export_model.py": EXPORT_MODEL, "generate_data.py": GENERATE_DATA, "bare.py": BARE,
                       "score_file.py": SCORE_FILE, "check.py": CHECK}.items():
        (scripts / name).write_text(text, encoding="utf-8")

    model = work / "model.joblib"
    if not model.exists():
        command = [sys.executable, "run.py", "train"]
        if config == "fast":
            fast = repository / "bench-fast.yaml"
            text = (repository / "tests" / "configs" / "fast.yaml").read_text(encoding="utf-8")
            fast.write_text(text.replace("model_name: test-model", f"model_name: {MODEL_NAME}"), encoding="utf-8")
            command += ["--config", str(fast)]
        print(f"  training ({' '.join(command[1:])}) ...", flush=True)
        started = time.perf_counter()
        untimed(command, repository, env, "run.py train")
        print(f"  trained {MODEL_NAME} version 1 in {time.perf_counter() - started:.0f} s", flush=True)
        untimed([sys.executable, str(scripts / "export_model.py"), MODEL_NAME, str(model)], repository, env,
                "model export")

    data = work / "data.parquet"
    if not data.exists():
        months = math.ceil(rows / (20 * ROWS_PER_CAR_PARK_MONTH)) + 1
        print(f"  generating {rows:,} rows (20 car parks x {months} months) ...", flush=True)
        output = untimed([sys.executable, str(scripts / "generate_data.py"), str(rows), str(months), str(data)],
                         repository, env, "data generation")
        print(f"  data: {output.strip().splitlines()[-1]}; {data.stat().st_size / 2**20:.0f} MiB Parquet",
              flush=True)
    # One untimed infer on a small file: the first pipeline run in a store registers the pipeline and
    # sets up the industry stack; a partner's production store has done that long ago.
    small = work / "warm-up.parquet"
    warm_out = work / "warm-up-out.parquet"
    warm_out.unlink(missing_ok=True)
    pq.write_table(pq.ParquetFile(data).read_row_group(0).slice(0, 1000), small)
    run, _ = timed([sys.executable, "run.py", "infer", "--data", str(small), "--out", str(warm_out), "--version",
                    "1"], repository, env, "warm-up infer", work)
    print(f"  warm-up infer on 1,000 rows (not in the table): {run.seconds:.1f} s, peak RSS "
          f"{run.peak_rss_mib:.0f} MiB: ZenML's fixed cost in time and memory", flush=True)
    return Prepared(repository, env, model, data, scripts)


def run_cases(prepared: Prepared, rows: int, repeats: int, work: Path) -> tuple[list[Case], list[str]]:
    bare = Case("bare model.predict (1 call)")
    infer = Case("run.py infer (end to end)")
    direct = Case("score_file only (no ZenML)")
    notes: list[str] = []
    outputs = work / "outputs"
    outputs.mkdir(exist_ok=True)
    repository, env, scripts = prepared.repository, prepared.env, prepared.scripts
    python = sys.executable
    for i in range(1, repeats + 1):
        bare_out, infer_out, direct_out = (outputs / f"{name}.parquet" for name in ("bare", "infer", "direct"))
        run, _ = timed([python, str(scripts / "bare.py"), str(prepared.model), str(prepared.data), str(bare_out)],
                       repository, env, f"bare run {i}", work)
        bare.runs.append(run)
        print(f"  bare   {i}/{repeats}: {run.seconds:6.1f} s, peak RSS {run.peak_rss_mib:6.0f} MiB, "
              f"cpu {run.cpu_seconds:.0f} s, load {run.load_1min:.2f}", flush=True)

        run, output = timed([python, "run.py", "infer", "--data", str(prepared.data), "--out", str(infer_out),
                             "--version", "1"], repository, env, f"infer run {i}", work)
        infer.runs.append(run)
        step = next((line.strip() for line in output.splitlines() if "score_batch has finished" in line), "")
        print(f"  infer  {i}/{repeats}: {run.seconds:6.1f} s, peak RSS {run.peak_rss_mib:6.0f} MiB, "
              f"cpu {run.cpu_seconds:.0f} s, load {run.load_1min:.2f} (ZenML: '{step}')", flush=True)
        if i == 1:
            notes.append(untimed([python, str(scripts / "check.py"), str(bare_out), str(infer_out), str(rows)],
                                 repository, env, "output check").strip())
            progress = [line.strip() for line in output.splitlines() if "scored " in line and " rows (" in line]
            if progress:
                notes.append(f"infer progress lines: {len(progress)}, e.g. '{progress[0]}' ... '{progress[-1]}'")

        run, output = timed([python, str(scripts / "score_file.py"), str(prepared.model), str(prepared.data),
                             str(direct_out)], repository, env, f"score_file run {i}", work)
        inner = next(float(line.split()[1]) for line in output.splitlines() if line.startswith("SCORE_FILE_SECONDS"))
        direct.runs.append(Run(seconds=inner, process_seconds=run.seconds, cpu_seconds=run.cpu_seconds,
                               peak_rss_mib=run.peak_rss_mib, load_1min=run.load_1min))
        print(f"  direct {i}/{repeats}: {inner:6.1f} s in score_file ({run.seconds:.1f} s process), peak RSS "
              f"{run.peak_rss_mib:6.0f} MiB, cpu {run.cpu_seconds:.0f} s, load {run.load_1min:.2f}", flush=True)
        for path in (bare_out, infer_out, direct_out):
            path.unlink(missing_ok=True)
    return [bare, infer, direct], notes


def format_table(cases: list[Case], rows: int) -> str:
    baseline = cases[0].median("seconds")
    header = ("case", "runs", "median s", "min s", "max s", "rows/s (median)", "ratio to bare",
              "peak RSS MiB (median)", "RSS min-max", "cpu s (median)")
    lines = [header]
    for case in cases:
        low, high = case.spread("seconds")
        rss_low, rss_high = case.spread("peak_rss_mib")
        median = case.median("seconds")
        lines.append((case.name, str(len(case.runs)), f"{median:.1f}", f"{low:.1f}", f"{high:.1f}",
                      f"{rows / median:,.0f}", f"{baseline / median:.2f}x", f"{case.median('peak_rss_mib'):,.0f}",
                      f"{rss_low:,.0f}-{rss_high:,.0f}", f"{case.median('cpu_seconds'):.0f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [" | ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
            for line in lines]
    text.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(text)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows to score (default 5,000,000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (default 3; median shown)")
    parser.add_argument("--config", choices=("default", "fast"), default="default",
                        help="training config: configs/training.yaml (default) or tests/configs/fast.yaml")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where the temporary directory goes")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="use (and keep) this directory instead of a temporary one; what it already "
                             "holds (repository copy, store, model, data) is reused")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.rows < 1:
        parser.error("--repeats and --rows must be at least 1")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not GNU_TIME.exists():
        print("error: /usr/bin/time (GNU time) is needed for peak memory; on Debian: apt-get install time",
              file=sys.stderr)
        return 1
    print("\n".join(machine_lines()))
    print(f"project: {ROOT}; {args.rows:,} rows, {args.repeats} timed run(s) per case, cases interleaved\n",
          flush=True)
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        work = args.work_dir.resolve()
    else:
        work = Path(tempfile.mkdtemp(prefix="bench-scoring-", dir=args.tmp_dir))
    try:
        prepared = prepare(work, args.rows, args.config)
        print(f"  load before the timed runs: {load_average()} (1, 5, 15 min)", flush=True)
        cases, notes = run_cases(prepared, args.rows, args.repeats, work)
    except BenchError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(format_table(cases, args.rows))
    print()
    direct = cases[2]
    print(f"score_file only: the 's' columns are the score_file call; its whole process took "
          f"{direct.median('process_seconds'):.1f} s (median), model loading and imports included.")
    print(f"ZenML overhead (infer end to end minus score_file's own time, medians): "
          f"{cases[1].median('seconds') - direct.median('seconds'):.1f} s")
    for note in notes:
        print(note)
    print(f"load average after the last run: {load_average()} (1, 5, 15 min)")
    print(textwrap.fill("Goal: infer's rows/s >= 0.9x the bare call's, with a peak RSS well below it. Every case "
                        "is CPU-bound on all cores: other work on the machine slows each run by however much of "
                        "it overlaps that run, so check the load figures per run and the spread; the CPU "
                        "seconds are less sensitive to it.", 100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
