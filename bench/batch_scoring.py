#!/usr/bin/env python
"""Batch scoring: ``run.py infer`` and ``score_file`` against the chunked predict loop a data scientist would write.

Why: ``run.py infer`` validates every row against the data contract
(including (entity, time) keys unique over the whole file), scores in chunks
so memory stays bounded, stamps every row with the model version and bundle
id, writes the output atomically, and runs as a ZenML pipeline. The goal is
that all of that keeps at least 0.95x the per-row throughput of what a user
would otherwise write, at no more than 1.5x its peak memory. This script
measures three cases on the same Parquet file and model:

* ``chunked loop``: the baseline, the ~15 lines a data scientist writes
  (:data:`LOOP`): read the Parquet file in batches with pyarrow (the feature
  columns only; pyarrow's default batch of 65,536 rows, ``--loop-batch-rows``),
  ``model.predict`` each batch, write the key columns, the prediction, the
  model version and the bundle id (the same output columns as ``infer``) with
  pyarrow's ``ParquetWriter``. No validation, no ZenML; the model's own
  OpenMP threads on every core.
* ``run.py infer (end to end)``: ``python run.py infer --data F --out O
  --version 1``, exactly as a user runs it (ZenML start-up, the
  batch-inference pipeline and its run, loading the model version from the
  store, the run's metadata, the summary).
* ``score_file (no ZenML)``: ``collabops.production.scoring.score_file`` with
  its defaults in a plain Python process, the library call the pipeline's
  step makes.

``--single-call`` adds the former baseline, one ``model.predict`` over the
whole file (pandas reads it, one call, the predictions written), as an extra
row: nobody scores 5 million rows that way, and it needs ~4.7 GB.

Fixed cost and per-row throughput are measured apart: every case runs on two
files, a small one (the first ``--small-rows`` rows, default 1,000) and the
full one (``--rows``). The small file's wall time is the case's fixed cost
(interpreter start-up, imports, model loading, and for ``infer`` ZenML's
start-up, the pipeline run's creation and its metadata); the per-row
throughput is (full rows - small rows) / (full time - small time), per
repeat, the median shown. Peak memory is the process's peak resident set
(VmHWM, from GNU time; ZenML's local orchestrator runs the step in the same
process), on the full file. ``score_file``'s own call is timed inside its
process too (rows / call time: no fixed cost at all).

Preparation (untimed): a copy of the repository as a clone has it, with its
own ``ZENML_CONFIG_PATH``; ``python run.py train`` there (``configs/training.yaml``
by default, the project's real model: HistGradientBoosting, 200 iterations;
``--config fast`` uses tests/configs/fast.yaml, 60 iterations); the fitted
model exported from the ZenML store with joblib for the plain scripts; and
``--rows`` rows of contract-valid data from the example generator: the same 20
car parks the model was trained on (seed 7), hourly, over as many months from
2025 on as the row count needs, the first ``--rows`` rows, without the target
column (scoring data has no target), personal columns kept (as in the
operator's export). Every (car_park_id, timestamp) pair is unique. (With
``--config fast`` the model knows only 8 of the 20 car parks; the others are
one-hot encoded as all zeros, with a warning.) Last, one untimed ``run.py
infer`` on the small file: the first pipeline run in a store registers the
pipeline and the industry stack, which a partner's store did long ago.

Every timed run is a subprocess run under ``/usr/bin/time`` (GNU time; on
Debian ``apt-get install time``), which reports its wall time, CPU time and
peak resident memory. Interpreter start-up and imports count. Within each
repeat the cases take turns (the order rotates from repeat to repeat), each
on the small then the full file, so a drift in the machine's load affects all
alike; every run prints the load average (1, 5, 15 min) at its start and how
many CPUs other processes kept busy while it ran (from /proc/stat): the
loop's OpenMP teams slow down several times over when another process takes
a core, so a run with other work beside it says little. The
first infer output is checked against the loop's (same rows, same columns,
same predictions, every row stamped).

Run it by hand from the project root, serialised with other benchmarks, on an
idle machine (``--max-load`` waits for the 1-minute load to drop first)::

    flock /tmp/collabops-bench.lock python bench/batch_scoring.py --repeats 3 --max-load 1.2

It takes ~8 minutes with ``--repeats 3`` on an idle 2-core machine
(preparation ~3 minutes, training most of it; each repeat ~1.5 minutes, ~2.5
with ``--single-call``), several times that on a loaded one. It never
touches the project's own ``.zen`` or the user's ZenML config, deletes its
temporary directory (data, outputs, store) at the end unless ``--work-dir``
is given, and makes no assertions on times.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_timing import (  # bench/ is not a package
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
CODE = ("collabops", "steps", "pipelines", "orchestration", "cli", "components", "run.py")
"""Refreshed from the project in a reused ``--work-dir`` copy, so that the code measured is the current one."""

EXPORT_MODEL = '''\
import sys

import joblib
from zenml.client import Client

model = Client().get_model_version(sys.argv[1], 1).get_model_artifact("trained_model").load()
joblib.dump(model, sys.argv[2])
'''

GENERATE_DATA = '''\
import sys

import pyarrow.parquet as pq

from collabops.data.contract import load_contract
from collabops.data.generator import GeneratorSettings, generate

rows, months, out, small_rows, small = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
contract = load_contract("configs/contract.yaml")
frame = generate(GeneratorSettings(months=months, car_parks=20, seed=7, start="2025-01-01"))
if len(frame) < rows:
    sys.exit(f"the generator made {len(frame)} rows, fewer than {rows}")
frame = frame.iloc[:rows].drop(columns=[contract.target])
assert not frame.duplicated([contract.entity_column, contract.time_column]).any()
contract.validate(frame, source="bench data", columns=contract.feature_columns)
frame.to_parquet(out, index=False)
pq.write_table(pq.read_table(out).slice(0, small_rows), small)
print(f"{len(frame)} rows, {frame[contract.entity_column].nunique()} car parks, "
      f"{frame[contract.time_column].min()} to {frame[contract.time_column].max()}")
'''

LOOP = '''\
"""The baseline: the chunked predict loop a data scientist writes. No validation, no ZenML."""
import sys

import joblib
import pyarrow as pa
import pyarrow.parquet as pq

FEATURES = {features!r}
KEYS = {keys!r}
model = joblib.load(sys.argv[1])
writer = None
for batch in pq.ParquetFile(sys.argv[2]).iter_batches(batch_size={batch_rows}, columns=FEATURES):
    frame = batch.to_pandas()
    scored = frame[KEYS].assign(prediction=model.predict(frame), model_version="1", bundle_id="local")
    table = pa.Table.from_pandas(scored, preserve_index=False)
    writer = writer or pq.ParquetWriter(sys.argv[3], table.schema)
    writer.write_table(table)
writer.close()
'''

SINGLE_CALL = '''\
"""The former baseline: read the whole file, one model.predict on all rows, write."""
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

loop = pd.read_parquet(sys.argv[1])
scored = pd.read_parquet(sys.argv[2])
rows = int(sys.argv[3])
problems = []
if len(scored) != rows or len(loop) != rows:
    problems.append(f"{len(scored)} rows scored, {len(loop)} by the loop, expected {rows}")
if list(scored.columns) != list(loop.columns):
    problems.append(f"columns {list(scored.columns)}, the loop's {list(loop.columns)}")
if set(scored["model_version"].astype(str)) != {"1"} or scored["bundle_id"].isna().any():
    problems.append("not every row carries model_version 1 and a bundle id")
keys = [c for c in loop.columns if c not in ("prediction", "model_version", "bundle_id")]
if len(scored) == len(loop) and not scored[keys].equals(loop[keys]):
    problems.append("the key columns differ from the loop's")
difference = (float(np.max(np.abs(scored["prediction"].to_numpy() - loop["prediction"].to_numpy())))
              if len(scored) == len(loop) else float("nan"))
print(f"infer output: {len(scored):,} rows, columns {', '.join(scored.columns)} (the loop's: the same: "
      f"{list(scored.columns) == list(loop.columns)}); max |prediction - loop prediction| = {difference:.3g}; "
      f"bundle ids {sorted(set(scored['bundle_id']))}")
if problems or not difference <= 1e-9:
    sys.exit("infer output check failed: " + "; ".join(problems or ["predictions differ from the loop's"]))
'''


@dataclass(frozen=True)
class Run:
    seconds: float          # the whole process's wall time
    cpu_seconds: float
    peak_rss_mib: float
    load: tuple[float, float, float]
    others_cores: float     # CPUs busy with other processes during the run, on average (from /proc/stat)
    inner_seconds: float | None = None  # score_file's own call, or infer's score_batch step as ZenML reports it


@dataclass
class Case:
    name: str
    small: list[Run] = field(default_factory=list)
    full: list[Run] = field(default_factory=list)

    def throughputs(self, rows: int, small_rows: int) -> list[float]:
        """Per repeat: (full rows - small rows) / (full time - small time)."""
        pairs = zip(self.small, self.full, strict=True)
        return [(rows - small_rows) / max(f.seconds - s.seconds, 1e-9) for s, f in pairs]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def busy_cpu_seconds() -> float:
    """CPU time all processes of the machine have used since boot (/proc/stat), NaN where there is none."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def timed(command: Sequence[str], cwd: Path, env: dict[str, str], label: str, work: Path) -> tuple[Run, str]:
    """Run ``command`` under GNU time; return its figures and its output (stdout + stderr).

    Besides the load average at the start, the run's ``others_cores`` says
    how much CPU other processes used while it ran (the machine's busy CPU
    time minus the run's own, over its wall time): ~0 on an idle machine,
    1.0 when other work kept a whole core busy.
    """
    report = work / "time-report.txt"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    busy = busy_cpu_seconds()
    started = time.perf_counter()
    completed = subprocess.run([str(GNU_TIME), "-o", str(report), "-f", "%e %U %S %M", *command], cwd=cwd,
                               env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    busy = busy_cpu_seconds() - busy
    output = ANSI_ESCAPE.sub("", completed.stdout + completed.stderr)
    if completed.returncode != 0:
        tail = "\n".join(output.splitlines()[-STDERR_TAIL_LINES:])
        raise BenchError(f"{label} failed with exit code {completed.returncode} after {wall:.1f} s; "
                         f"last lines of its output:\n{tail}")
    fields = report.read_text().split()[-4:]
    _elapsed, user, system, max_rss_kib = (float(x) for x in fields)
    return Run(seconds=wall, cpu_seconds=user + system, peak_rss_mib=max_rss_kib / 1024,
               load=tuple(round(x, 2) for x in load), others_cores=max(0.0, busy - user - system) / wall), output


def untimed(command: Sequence[str], cwd: Path, env: dict[str, str], label: str) -> str:
    completed = subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True,
                               stdin=subprocess.DEVNULL)
    output = ANSI_ESCAPE.sub("", completed.stdout + completed.stderr)
    if completed.returncode != 0:
        tail = "\n".join(output.splitlines()[-STDERR_TAIL_LINES:])
        raise BenchError(f"{label} failed with exit code {completed.returncode}; last lines:\n{tail}")
    return output


def zenml_seconds(text: str) -> float:
    """ZenML's durations: ``0.287s``, ``1m12s``, ``1h2m3s``."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?([\d.]+)s", text)
    if match is None:
        return math.nan
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds)


@dataclass(frozen=True)
class Prepared:
    repository: Path
    env: dict[str, str]
    model: Path
    data: Path
    small: Path
    scripts: Path


def prepare(work: Path, rows: int, small_rows: int, config: str, loop_batch_rows: int) -> Prepared:
    """Repository copy + store, a trained model version 1, the model exported, the data (all untimed)."""
    repository = work / "collabops-copy"
    if not repository.exists():
        moved = copy_repository(work)
        assert moved == repository
    else:  # a reused --work-dir: measure the project's current code, keep the store and the model
        for name in CODE:
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, repository / name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
            elif (ROOT / name).is_file():
                shutil.copy2(ROOT / name, repository / name)
    zenml_config = work / "zenml-config"
    zenml_config.mkdir(exist_ok=True)
    env = run_environment(repository, zenml_config)
    env.update(PYTHONUNBUFFERED="1", NO_COLOR="1", PYTHONPATH=str(repository))
    scripts = work / "scripts"
    scripts.mkdir(exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from collabops.data.contract import load_contract

    contract = load_contract(ROOT / "configs" / "contract.yaml")
    keys = list(dict.fromkeys(c for c in (contract.time_column, contract.entity_column, contract.segment_column)
                              if c))  # the key columns score_file writes, in its order
    loop = LOOP.format(features=list(contract.feature_columns), keys=keys, batch_rows=f"{loop_batch_rows:_}")
    for name, text in {"export_model.py": EXPORT_MODEL, "generate_data.py": GENERATE_DATA, "loop.py": loop,
                       "single_call.py": SINGLE_CALL, "score_file.py": SCORE_FILE, "check.py": CHECK}.items():
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

    data, small = work / f"data-{rows}.parquet", work / f"data-{rows}-first-{small_rows}.parquet"
    if not (data.exists() and small.exists()):
        months = math.ceil(rows / (20 * ROWS_PER_CAR_PARK_MONTH)) + 1
        print(f"  generating {rows:,} rows (20 car parks x {months} months) ...", flush=True)
        output = untimed([sys.executable, str(scripts / "generate_data.py"), str(rows), str(months), str(data),
                          str(small_rows), str(small)], repository, env, "data generation")
        print(f"  data: {output.strip().splitlines()[-1]}; {data.stat().st_size / 2**20:.0f} MiB Parquet",
              flush=True)
    # One untimed infer on the small file: the first pipeline run in a store registers the pipeline and
    # sets up the industry stack; a partner's production store has done that long ago.
    warm_out = work / "warm-up-out.parquet"
    warm_out.unlink(missing_ok=True)
    untimed([sys.executable, "run.py", "infer", "--data", str(small), "--out", str(warm_out), "--version", "1"],
            repository, env, "warm-up infer")
    warm_out.unlink(missing_ok=True)
    return Prepared(repository, env, model, data, small, scripts)


def wait_for_load(max_load: float | None, max_wait: float) -> None:
    if max_load is None or not hasattr(os, "getloadavg"):
        return
    started = time.monotonic()
    while os.getloadavg()[0] > max_load and time.monotonic() - started < max_wait:
        print(f"  waiting for the 1-min load to drop below {max_load} (now {load_average()}) ...", flush=True)
        time.sleep(30)


def run_cases(prepared: Prepared, rows: int, small_rows: int, repeats: int, work: Path,
              single_call: bool) -> tuple[list[Case], list[str]]:
    loop = Case("chunked loop (baseline)")
    infer = Case("run.py infer (end to end)")
    direct = Case("score_file (no ZenML)")
    single = Case("one model.predict call (old baseline)")
    cases = [loop, infer, direct] + ([single] if single_call else [])
    notes: list[str] = []
    outputs = work / "outputs"
    outputs.mkdir(exist_ok=True)
    repository, env, scripts = prepared.repository, prepared.env, prepared.scripts
    python = sys.executable

    def command(case: Case, data: Path, out: Path) -> list[str]:
        if case is loop:
            return [python, str(scripts / "loop.py"), str(prepared.model), str(data), str(out)]
        if case is infer:
            return [python, "run.py", "infer", "--data", str(data), "--out", str(out), "--version", "1"]
        if case is direct:
            return [python, str(scripts / "score_file.py"), str(prepared.model), str(data), str(out)]
        return [python, str(scripts / "single_call.py"), str(prepared.model), str(data), str(out)]

    for i in range(1, repeats + 1):
        shift = (i - 1) % len(cases)
        for case in cases[shift:] + cases[:shift]:
            for size, data, runs in (("small", prepared.small, case.small), ("full", prepared.data, case.full)):
                out = outputs / f"{cases.index(case)}-{size}.parquet"
                out.unlink(missing_ok=True)
                run, output = timed(command(case, data, out), repository, env, f"{case.name} {size} run {i}", work)
                inner = None
                if case is direct:
                    inner = next(float(line.split()[1]) for line in output.splitlines()
                                 if line.startswith("SCORE_FILE_SECONDS"))
                elif case is infer:
                    step = re.search(r"score_batch has finished in (\S+?)\.?$", output, re.MULTILINE)
                    inner = zenml_seconds(step.group(1)) if step else None
                runs.append(Run(run.seconds, run.cpu_seconds, run.peak_rss_mib, run.load, run.others_cores, inner))
                extra = f", inner {inner:.1f} s" if inner is not None else ""
                print(f"  {case.name:38s} {size:5s} {i}/{repeats}: {run.seconds:6.1f} s, cpu {run.cpu_seconds:5.1f} s, "
                      f"peak RSS {run.peak_rss_mib:6.0f} MiB{extra}; load {run.load}, other processes "
                      f"{run.others_cores:.2f} CPUs", flush=True)
                if i == 1 and size == "full" and case is infer:
                    progress = [line.strip() for line in output.splitlines() if "scored " in line and " rows (" in line]
                    if progress:
                        notes.append(f"infer progress lines: {len(progress)}, e.g. '{progress[0]}' ... "
                                     f"'{progress[-1]}'")
        if i == 1:
            notes.append(untimed([python, str(scripts / "check.py"), str(outputs / "0-full.parquet"),
                                  str(outputs / "1-full.parquet"), str(rows)], repository, env,
                                 "output check").strip())
        for path in outputs.glob("*.parquet"):
            path.unlink()
    return cases, notes


def format_table(cases: list[Case], rows: int, small_rows: int) -> str:
    loop = cases[0]
    base_throughput = median(loop.throughputs(rows, small_rows))
    base_rss = median([r.peak_rss_mib for r in loop.full])
    header = ("case", "runs", "fixed cost s (small file)", f"{rows / 1e6:g}M rows s (min-max)", "rows/s per row",
              "ratio to loop", "rows/s end to end", "peak RSS MiB", "ratio to loop", "cpu s", "other CPUs")
    lines = [header]
    for case in cases:
        full = [r.seconds for r in case.full]
        rss = median([r.peak_rss_mib for r in case.full])
        throughput = median(case.throughputs(rows, small_rows))
        lines.append((case.name, str(len(case.full)), f"{median([r.seconds for r in case.small]):.1f}",
                      f"{median(full):.1f} ({min(full):.1f}-{max(full):.1f})", f"{throughput:,.0f}",
                      f"{throughput / base_throughput:.2f}x", f"{rows / median(full):,.0f}", f"{rss:,.0f}",
                      f"{rss / base_rss:.2f}x", f"{median([r.cpu_seconds for r in case.full]):.0f}",
                      f"{median([r.others_cores for r in case.full]):.2f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [" | ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(line, widths, strict=True))) for line in lines]
    text.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(text)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows of the full file (default 5,000,000)")
    parser.add_argument("--small-rows", type=int, default=1_000,
                        help="rows of the small file that measures the fixed cost (default 1,000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case and file (default 3; median)")
    parser.add_argument("--loop-batch-rows", type=int, default=65_536,
                        help="the loop's batch (default 65,536: pyarrow's iter_batches default)")
    parser.add_argument("--single-call", action="store_true",
                        help="add the former baseline, one model.predict over the whole file (~4.7 GB)")
    parser.add_argument("--config", choices=("default", "fast"), default="default",
                        help="training config: configs/training.yaml (default) or tests/configs/fast.yaml")
    parser.add_argument("--max-load", type=float, default=None,
                        help="before the timed runs, wait (up to --max-wait s) until the 1-min load is below this")
    parser.add_argument("--max-wait", type=float, default=1800, help="longest wait for --max-load (default 1800 s)")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where the temporary directory goes")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="use (and keep) this directory instead of a temporary one; what it already "
                             "holds (repository copy, store, model, data) is reused, the code refreshed")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.rows < 1 or not 1 <= args.small_rows < args.rows:
        parser.error("--repeats and --rows must be at least 1, and --small-rows between 1 and --rows")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not GNU_TIME.exists():
        print("error: /usr/bin/time (GNU time) is needed for peak memory; on Debian: apt-get install time",
              file=sys.stderr)
        return 1
    print("\n".join(machine_lines()))
    print(f"project: {ROOT}; {args.rows:,} and {args.small_rows:,} rows, {args.repeats} timed run(s) per case "
          f"and file, cases interleaved; the loop reads batches of {args.loop_batch_rows:,} rows\n", flush=True)
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        work = args.work_dir.resolve()
    else:
        work = Path(tempfile.mkdtemp(prefix="bench-scoring-", dir=args.tmp_dir))
    try:
        prepared = prepare(work, args.rows, args.small_rows, args.config, args.loop_batch_rows)
        wait_for_load(args.max_load, args.max_wait)
        print(f"  load before the timed runs: {load_average()} (1, 5, 15 min)", flush=True)
        cases, notes = run_cases(prepared, args.rows, args.small_rows, args.repeats, work, args.single_call)
    except BenchError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(format_table(cases, args.rows, args.small_rows))
    print()
    loads = [r.load[0] for case in cases for r in case.small + case.full]
    print(f"1-min load at the start of the runs: {min(loads):.2f}-{max(loads):.2f} (median {median(loads):.2f})")
    print("CPUs used by other processes during the full-file runs (median, max): " +
          ", ".join(f"{case.name} {median([r.others_cores for r in case.full]):.2f}, "
                    f"{max(r.others_cores for r in case.full):.2f}" for case in cases))
    infer, direct = cases[1], cases[2]
    inner = [r.inner_seconds for r in direct.full if r.inner_seconds]
    print(f"score_file's own call on the full file: {median(inner):.1f} s (median), "
          f"{args.rows / median(inner):,.0f} rows/s; its process's fixed cost (imports, model loading) is the "
          f"small file's {median([r.seconds for r in direct.small]):.1f} s")
    steps = [r.inner_seconds for r in infer.full if r.inner_seconds]
    if steps:
        print(f"infer's score_batch step (as ZenML reports it) on the full file: {median(steps):.1f} s (median); "
              f"ZenML around it: {median([r.seconds for r in infer.full]) - median(steps):.1f} s")
    rss_small = {case.name: median([r.peak_rss_mib for r in case.small]) for case in cases}
    print("peak RSS on the small file (imports, model, ZenML): " +
          ", ".join(f"{name} {value:,.0f} MiB" for name, value in rss_small.items()))
    for note in notes:
        print(note)
    print(f"load average after the last run: {load_average()} (1, 5, 15 min)")
    print(textwrap.fill("Goal: score_file's and infer's per-row throughput >= 0.95x the chunked loop's, peak RSS "
                        "<= 1.5x. Every case is CPU-bound on all cores: other work on the machine slows each run "
                        "by however much of it overlaps that run (the loop's OpenMP teams most of all), so check "
                        "the load figures per run and the spread; the CPU seconds are less sensitive to it.", 100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
