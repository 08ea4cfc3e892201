#!/usr/bin/env python
"""The drift stage of monitoring against Evidently's plain report, on 100 thousand and 5 million current rows.

Why: the monitoring pipeline compares a period with the production model's
reference through Evidently. On millions of current rows Evidently's report
on every row is slow and large, so ``collabops.monitoring.drift.detect_drift``
gives Evidently a seeded stratified sample of 200,000 rows and measures again
on every row only the columns the sample cannot decide (every categorical
column, and a numerical one whose sampled distance lies within the sampling
bound of its threshold). The goal: at 5 million rows, at most a fifth of
plain Evidently's time, the same decisions, peak memory under 1.5 GiB.

Data (generated once per size and kind, cached as Parquet under ``--cache``):

* reference: the example generator's year (``GeneratorSettings(months=12,
  seed=7)``, 20 car parks), the rows before 2024-10-01, as a model's training
  data;
* current: January-February 2025 from the generator (``drift=True`` for the
  ``drift`` kind, ``start="2025-01-01"`` without drift for ``normal``), as
  many car parks as ``--rows`` needs (1,416 hours each), seed 8, then a
  seeded random ``--rows`` of them kept in time order;
* ``prediction``: a scikit-learn ``HistGradientBoostingRegressor``
  (``max_iter=50``, ``random_state=0``) fitted once on the reference's
  features (hour, weekday, car-park kind, capacity, weather, holiday, event,
  price), predicting both reference and current rows.

Both cases get the same rows: the reference's season for the current period
(``select_season(reference, current.timestamp, "timestamp", 21, 1000)``, the
parking project's ``monitoring:`` settings) and every current row. Monitored
columns as ``steps/monitoring.py`` makes them: the contract's features minus
time and entity, numerical for int/float, categorical otherwise, plus
``prediction`` (numerical).

* ``collabops``: ``detect_drift(season, current,
  kinds, project thresholds, sample_rows=200_000, strata=["car_park_kind",
  local day], seed=0, error_probability=1e-3, prediction_column="prediction")``
  and its ``.html()`` (the report the dashboard shows), as ``monitor_period``
  calls it;
* ``evidently plain``: ``evidently_report(evidently_frame(season),
  evidently_frame(current), kinds, methods=False)``: Evidently's
  ``DataDriftPreset`` with no options on every current row, and its
  ``get_html_str``: what a user would run. The report alone (without the
  HTML) is shown as its own row, timed within the same runs.

Each case runs in its own subprocess (this script with ``--case``), which
prints one JSON line; the cases take turns within each repeat. Times are
measured inside the child with ``time.perf_counter`` around the stage (season
selection, frames, report, HTML), after the Parquet files are read; the
child's whole wall time is shown too. Memory is the child's peak resident set
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the kernel's high-water mark,
not sampling), its resident set after reading the data (``VmRSS``), and the
high-water mark before the HTML (``VmHWM`` from /proc/self/status).

Decisions: a column drifted when its distance >= its threshold. Evidently
plain uses its default threshold (0.1) for every column; the project uses 0.3
for ``temperature_c`` and ``rain_mm``. "Same decisions" is about the same
thresholds: plain Evidently's values judged at the project's thresholds,
column by column against ``detect_drift``'s ``drifted``; the decisions at
Evidently's own default thresholds are printed too. The verdict compared is
drift when at least half of the features drifted (``drift_share: 0.5``) or
the prediction drifted.

Run it by hand from the project root, serialised with other benchmarks::

    flock /tmp/collabops-bench.lock python bench/monitoring.py --rows 100000 5000000 --kind both --repeats 3

Generating the 5 million-row currents takes a few minutes the first time
(cached in ``--cache``, default /tmp/collabops-bench-monitoring). No assertion
on times; not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from batch_scoring import busy_cpu_seconds  # noqa: E402  (bench/ is not a package)
from train_timing import load_average, machine_lines  # noqa: E402

CASES = ("collabops", "evidently plain")
CASE_KEYS = {"collabops": "A", "evidently plain": "B"}
HOURS = 1416  # January-February 2025 on the Stockholm clock (23-hour spring night is in March)
KEPT = 0.995  # the generator drops ~0.5 % of the rows (sensor gaps)
REFERENCE_END = "2024-10-01"
CURRENT_SEED = 8
DEFAULT_CACHE = Path("/tmp/collabops-bench-monitoring")
STDERR_TAIL_LINES = 30


# --------------------------------------------------------------------------------------------------- data

def project():
    import yaml

    from collabops.data.contract import load_contract
    from collabops.settings import MonitoringSettings

    contract = load_contract(ROOT / "configs" / "contract.yaml")
    settings = MonitoringSettings.model_validate(
        yaml.safe_load((ROOT / "configs" / "parking.yaml").read_text(encoding="utf-8"))["monitoring"])
    monitored = [c for c in contract.feature_columns if c not in (contract.time_column, contract.entity_column)]
    kinds = {c: "numerical" if contract.column(c).type in ("int", "float") else "categorical" for c in monitored}
    kinds["prediction"] = "numerical"
    return contract, settings, kinds


def model_features(frame):
    import numpy as np
    import pandas as pd

    from collabops.data.generator import KINDS

    wall = frame["timestamp"].dt.tz_localize(None)
    return pd.DataFrame({
        "hour": wall.dt.hour.to_numpy(), "weekday": wall.dt.dayofweek.to_numpy(),
        "kind": pd.Categorical(frame["car_park_kind"], categories=KINDS).codes.astype(np.int64),
        "capacity": frame["capacity"].to_numpy(dtype=float),
        "temperature_c": frame["temperature_c"].to_numpy(dtype=float),
        "rain_mm": frame["rain_mm"].to_numpy(dtype=float),
        "is_holiday": frame["is_holiday"].to_numpy(dtype=float),
        "event_nearby": frame["event_nearby"].to_numpy(dtype=float),
        "price_per_hour": frame["price_per_hour"].to_numpy(dtype=float)})


def reference_path(cache: Path) -> Path:
    return cache / "reference.parquet"


def current_path(cache: Path, kind: str, rows: int) -> Path:
    return cache / f"current-{kind}-{rows}.parquet"


def prepare_reference(cache: Path) -> None:
    """The reference rows with predictions, and the fitted model (joblib), in ``cache``."""
    import joblib
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor

    from collabops.data.generator import GeneratorSettings, generate

    contract, _settings, _kinds = project()
    frame = generate(GeneratorSettings(months=12, seed=7))
    frame = frame.loc[frame["timestamp"] < pd.Timestamp(REFERENCE_END, tz=contract.time_zone)].reset_index(drop=True)
    model = HistGradientBoostingRegressor(max_iter=50, random_state=0, categorical_features=[2])
    model.fit(model_features(frame), frame[contract.target])
    frame["prediction"] = model.predict(model_features(frame))
    joblib.dump(model, cache / "model.joblib")
    frame.to_parquet(reference_path(cache), index=False)
    print(f"reference: {len(frame):,} rows, {frame['timestamp'].min()} to {frame['timestamp'].max()}")


def prepare_current(cache: Path, kind: str, rows: int) -> None:
    """``rows`` current rows of Jan-Feb 2025 with predictions, in time order, in ``cache``."""
    import joblib
    import numpy as np

    from collabops.data.generator import GeneratorSettings, generate

    car_parks = math.ceil(rows / (HOURS * KEPT)) + 1
    settings = GeneratorSettings(months=2, seed=CURRENT_SEED, car_parks=car_parks, drift=kind == "drift",
                                 start="2025-01-01")
    frame = generate(settings)
    if len(frame) < rows:
        raise SystemExit(f"the generator made {len(frame):,} rows with {car_parks} car parks, fewer than {rows:,}")
    keep = np.sort(np.random.default_rng(0).choice(len(frame), size=rows, replace=False))
    frame = frame.iloc[keep].reset_index(drop=True)
    model = joblib.load(cache / "model.joblib")
    frame["prediction"] = model.predict(model_features(frame))
    frame.to_parquet(current_path(cache, kind, rows), index=False)
    print(f"current {kind}: {len(frame):,} rows, {car_parks} car parks, "
          f"{frame['timestamp'].min()} to {frame['timestamp'].max()}")


# --------------------------------------------------------------------------------------------------- child

def proc_status(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MiB (NaN where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def run_case(case: str, cache: Path, kind: str, rows: int) -> dict:
    """One measured case, in this (fresh) process; returns what the parent prints."""
    import pandas as pd

    from collabops.monitoring.drift import detect_drift, evidently_frame, evidently_report
    from collabops.monitoring.season import select_season

    contract, settings, kinds = project()
    columns = [contract.time_column, *kinds]
    if contract.segment_column not in columns:
        columns.insert(1, contract.segment_column)
    reference = pd.read_parquet(reference_path(cache), columns=columns)
    current = pd.read_parquet(current_path(cache, kind, rows), columns=columns)
    loaded_rss = proc_status("VmRSS")
    started = time.perf_counter()
    season = select_season(reference, current[contract.time_column], contract.time_column,
                           settings.season_window_days, settings.min_season_rows)
    season_seconds = time.perf_counter() - started
    out: dict = {"case": case, "kind": kind, "rows": len(current), "season_rows": len(season.rows),
                 "season": season.describe(), "loaded_rss_mib": loaded_rss}
    if case == "A":
        thresholds = {c: settings.threshold(c) for c in kinds}
        day = current[contract.time_column].dt.floor("D", ambiguous=True, nonexistent="shift_forward")
        drift = detect_drift(season.rows, current, kinds, thresholds, settings.sample_rows,
                             [contract.segment_column, day], settings.seed, settings.sample_error_probability,
                             prediction_column="prediction")
        report_done = time.perf_counter()
        hwm_before_html = proc_status("VmHWM")
        html = drift.html()
        out["columns"] = {c.column: {"method": c.method, "threshold": c.threshold, "value": c.distance,
                                     "sampled": c.sampled, "bound": c.bound, "exact": c.exact, "drifted": c.drifted}
                          for c in drift.columns}
        out["sample_rows"] = drift.sample_rows
    else:
        snapshot, values = evidently_report(evidently_frame(season.rows, kinds), evidently_frame(current, kinds),
                                            kinds, methods=False)
        report_done = time.perf_counter()
        hwm_before_html = proc_status("VmHWM")
        html = snapshot.get_html_str(as_iframe=False)
        out["columns"] = {c: {"method": m, "threshold": t, "value": v} for c, (v, t, m) in values.items()}
    done = time.perf_counter()
    out.update(seconds=done - started, html_seconds=done - report_done, report_seconds=report_done - started,
               season_seconds=season_seconds, html_mib=len(html) / 2 ** 20, hwm_before_html_mib=hwm_before_html,
               peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


# --------------------------------------------------------------------------------------------------- parent

def child(args: argparse.Namespace, case: str, kind: str, rows: int) -> dict:
    command = [sys.executable, __file__, "--case", CASE_KEYS[case], "--kind", kind, "--rows", str(rows),
               "--cache", str(args.cache)]
    load = os.getloadavg()
    busy = busy_cpu_seconds()
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    busy = busy_cpu_seconds() - busy
    if completed.returncode != 0:
        tail = "\n".join((completed.stderr or completed.stdout).splitlines()[-STDERR_TAIL_LINES:])
        return {"case": case, "failed": f"exit code {completed.returncode} after {wall:.1f} s:\n{tail}",
                "wall_seconds": wall}
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result.update(wall_seconds=wall, load=[round(x, 2) for x in load], busy_cpu=busy)
    return result


def median(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def drifted_at(value: float, threshold: float) -> bool:
    return value >= threshold


def verdict(decisions: dict[str, bool]) -> str:
    features = [c for c in decisions if c != "prediction"]
    share = sum(decisions[c] for c in features) / len(features)
    drift = share >= 0.5 or decisions.get("prediction", False)
    prediction = "drifted" if decisions.get("prediction") else "not drifted"
    return f"{'drift' if drift else 'no drift'} (share {share:.2f}, prediction {prediction})"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def report(kind: str, rows: int, runs: dict[str, list[dict]]) -> None:
    print(f"\n=== {kind} current, {rows:,} rows ===")
    ok = {case: [r for r in runs[case] if "failed" not in r] for case in CASES}
    for case in CASES:
        for r in runs[case]:
            if "failed" in r:
                print(f"{case} FAILED: {r['failed']}")
    if not ok["collabops"]:
        return
    first = ok["collabops"][0]
    print(f"{first['season']}; {first['rows']:,} current rows; collabops' sample {first['sample_rows']:,} rows")
    base = ok["evidently plain"]
    base_seconds = median([r["seconds"] for r in base]) if base else math.nan
    base_report = median([r["report_seconds"] for r in base]) if base else math.nan
    base_rss = median([r["peak_rss_mib"] for r in base]) if base else math.nan
    lines = [["case", "runs", "median s (min-max)", "ratio to plain", "of which HTML s", "child wall s",
              "peak RSS MiB", "ratio", "RSS after load MiB", "load at start"]]
    for case in CASES:
        if not ok[case]:
            lines.append([case, "0", "failed", "", "", "", "", "", "", ""])
            continue
        seconds = [r["seconds"] for r in ok[case]]
        rss = median([r["peak_rss_mib"] for r in ok[case]])
        lines.append([case, str(len(seconds)), f"{median(seconds):.1f} ({min(seconds):.1f}-{max(seconds):.1f})",
                      f"{median(seconds) / base_seconds:.2f}x", f"{median([r['html_seconds'] for r in ok[case]]):.1f}",
                      f"{median([r['wall_seconds'] for r in ok[case]]):.1f}", f"{rss:,.0f}",
                      f"{rss / base_rss:.2f}x", f"{median([r['loaded_rss_mib'] for r in ok[case]]):,.0f}",
                      ", ".join(f"{r['load'][0]:.1f}" for r in ok[case])])
        if case == "evidently plain":
            report_only = [r["report_seconds"] for r in ok[case]]
            hwm = median([r["hwm_before_html_mib"] for r in ok[case]])
            lines.append(["evidently plain, report only", str(len(report_only)),
                          f"{median(report_only):.1f} ({min(report_only):.1f}-{max(report_only):.1f})",
                          f"{median(report_only) / base_seconds:.2f}x", "-", "-", f"{hwm:,.0f} (before HTML)",
                          f"{hwm / base_rss:.2f}x", "", ""])
    print(table(lines))
    a_report = median([r["report_seconds"] for r in ok["collabops"]])
    print(f"collabops without its HTML: {a_report:.1f} s = {a_report / base_report:.2f}x plain Evidently's report "
          f"without HTML; season selection (in both) {median([r['season_seconds'] for r in ok['collabops']]):.2f} s; "
          f"HTML size collabops {first['html_mib']:.1f} MiB" +
          (f", plain {base[0]['html_mib']:.1f} MiB" if base else ""))
    others = [max(0.0, r["busy_cpu"] - r["cpu"]) / r["wall_seconds"] for case in CASES for r in ok[case]
              if "cpu" in r]
    if others:
        print(f"CPUs used by other processes during the runs: {min(others):.2f}-{max(others):.2f} "
              f"(median {median(others):.2f})")
    if not base:
        return
    a_cols = first["columns"]
    b_cols = base[0]["columns"]
    same_a = all(a_cols[c]["drifted"] == r["columns"][c]["drifted"] for r in ok["collabops"] for c in a_cols)
    spread_b = max(abs(b_cols[c]["value"] - r["columns"][c]["value"]) for r in base for c in b_cols)
    lines = [["column", "collabops method", "threshold", "distance", "exact", "sampled (± bound)", "drifted",
              "plain method", "plain value", "plain threshold", "plain drifted", "plain at project threshold",
              "same"]]
    a_dec, b_dec, b_own = {}, {}, {}
    for column, a in a_cols.items():
        b = b_cols[column]
        a_dec[column] = a["drifted"]
        b_own[column] = drifted_at(b["value"], b["threshold"])
        b_dec[column] = drifted_at(b["value"], a["threshold"])
        bound = "" if a["bound"] is None else f" ± {a['bound']:.4f}"
        lines.append([column, a["method"], f"{a['threshold']:g}", f"{a['value']:.4f}", "yes" if a["exact"] else "no",
                      f"{a['sampled']:.4f}{bound}", str(a["drifted"]), b["method"], f"{b['value']:.4f}",
                      f"{b['threshold']:g}", str(b_own[column]), str(b_dec[column]),
                      "yes" if a_dec[column] == b_dec[column] else "NO"])
    print(table(lines))
    exact_gap = max((abs(a["value"] - b_cols[c]["value"]) for c, a in a_cols.items() if a["exact"]), default=0.0)
    agree = all(a_dec[c] == b_dec[c] for c in a_dec)
    print(f"decisions at the project's thresholds: {'all agree' if agree else 'DIFFER'} "
          f"({sum(a_dec[c] == b_dec[c] for c in a_dec)}/{len(a_dec)} columns); "
          f"largest |distance - plain value| where collabops measured every row: {exact_gap:.2g}; "
          f"collabops' decisions identical in every repeat: {same_a}; plain values differ between repeats by at most "
          f"{spread_b:.2g}")
    print(f"verdict collabops: {verdict(a_dec)}; plain Evidently at the project's thresholds: {verdict(b_dec)}"
          f" -> {'same' if verdict(a_dec) == verdict(b_dec) else 'DIFFERENT'}; plain Evidently at its own default "
          f"thresholds: {verdict(b_own)} (differs from collabops on "
          f"{', '.join(c for c in a_dec if a_dec[c] != b_own[c]) or 'no column'})")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 5_000_000])
    parser.add_argument("--kind", choices=("normal", "drift", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--case", choices=("A", "B", "prepare"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    if args.case == "prepare":
        if not reference_path(args.cache).exists():
            prepare_reference(args.cache)
        for rows in args.rows:
            if args.kind != "both" and not current_path(args.cache, args.kind, rows).exists():
                prepare_current(args.cache, args.kind, rows)
        return 0
    if args.case:
        result = run_case(args.case, args.cache, args.kind, args.rows[0])
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result["cpu"] = usage.ru_utime + usage.ru_stime
        print(json.dumps(result))
        return 0
    kinds = ["normal", "drift"] if args.kind == "both" else [args.kind]
    args.cache.mkdir(parents=True, exist_ok=True)
    for line in machine_lines():
        print(line)
    import evidently
    print(f"evidently {evidently.__version__}; cache {args.cache}; repeats {args.repeats}; rows {args.rows}; "
          f"kinds {kinds}")
    started = time.perf_counter()
    for kind in kinds:  # untimed preparation, each in its own process (generation needs GBs at 5 M rows)
        subprocess.run([sys.executable, __file__, "--case", "prepare", "--kind", kind, "--cache", str(args.cache),
                        "--rows", *map(str, args.rows)], cwd=ROOT, check=True)
    print(f"data ready in {time.perf_counter() - started:.0f} s; load {load_average()}", flush=True)
    for rows in args.rows:
        for kind in kinds:
            runs: dict[str, list[dict]] = {case: [] for case in CASES}
            for repeat in range(args.repeats):
                order = CASES if repeat % 2 == 0 else tuple(reversed(CASES))
                for case in order:
                    result = child(args, case, kind, rows)
                    runs[case].append(result)
                    if "failed" in result:
                        print(f"  {kind} {rows:,} repeat {repeat + 1} {case}: FAILED after "
                              f"{result['wall_seconds']:.0f} s", flush=True)
                    else:
                        others = max(0.0, result["busy_cpu"] - result["cpu"]) / result["wall_seconds"]
                        print(f"  {kind} {rows:,} repeat {repeat + 1} {case}: {result['seconds']:.1f} s "
                              f"(HTML {result['html_seconds']:.1f}), peak RSS {result['peak_rss_mib']:,.0f} MiB, "
                              f"load {result['load'][0]:.2f}, other processes {others:.2f} CPUs", flush=True)
            report(kind, rows, runs)
    print(f"\nload average after the last run: {load_average()} (1, 5, 15 min)")
    print(textwrap.fill("Goal at 5 M rows: collabops <= 0.2x plain Evidently's time (HTML included in both), the "
                        "same decisions at the same thresholds, peak RSS < 1.5 GiB (1,536 MiB).", 100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
