#!/usr/bin/env python
"""Is bundle hashing as fast as OpenSSL, and is its memory flat? Measured by hand.

Why: every bundle that crosses between the partners is hashed twice, once by
``seal`` (the producer) and once by ``verify`` (the receiver, before it reads
a payload byte). Model and data bundles can be many GiB, so hashing speed
decides how long a hand-over takes. The goal is that verification reaches
at least 0.8 of the throughput of ``openssl dgst -sha256`` on the same file,
and that memory does not grow with the payload (``sha256_file`` streams
8 MiB chunks into one reused buffer). This script measures both, on the same
bytes, in one run:

* ``openssl dgst -sha256``: a subprocess, timed wall-clock. The baseline.
* ``seal``: ``collabops.exchange.bundle.seal`` (hash every file, write and sign the
  manifest), in this process. ``manifest.json``/``manifest.sig`` are deleted
  before each repeat.
* ``verify``: ``collabops.exchange.bundle.verify`` with ``trusted_keys`` (signature,
  paths, sizes, hashes), in this process.

The cases are interleaved within each repeat, so a slow drift of the machine
affects them alike, and each figure is the median of ``--repeats``. The
payload is read once, untimed, before the first repeat, so all the main
figures are with the file in the OS page cache (they measure hashing, not
the disk). With ``--cold``, when running as root with a writable
``/proc/sys/vm/drop_caches``, one extra round per case is timed right after
``sync; echo 3 > /proc/sys/vm/drop_caches``.

Peak memory: ``seal`` and ``verify`` each run once more in a fresh Python
child process, on the full payload and on a payload 1/8 of that size. The
child reports its ``VmHWM`` (peak resident set) from ``/proc/self/status``
after its imports and again at the end, so the two columns show whether the
peak grows with the payload.

Run it by hand, from the project root, with the project's environment::

    python bench/bundle_hashing.py --size-gb 1 --repeats 3

Everything (the payloads, the bundle folders, the throw-away key pair,
private key included) lives in one temporary folder under ``/tmp`` (or
``--tmp-dir``), deleted at the end whatever happens. Needs about 1.125 times
``--size-gb`` of free disk. It makes no assertion on times and is not part
of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collabops.data.contract import load_contract  # noqa: E402
from collabops.exchange.bundle import CONTRACT_FILE, MANIFEST, SIGNATURE, Producer, seal, verify  # noqa: E402
from collabops.exchange.signing import generate_key_pair, load_signer, trusted_keys  # noqa: E402

CONTRACT_SOURCE = ROOT / "configs" / "contract.yaml"
PARTNER = "bench"
PAYLOAD_NAME = "payload.bin"
BLOCK = 64 * 1024 * 1024  # random block repeated to fill the payload
MB = 1_000_000  # throughput is in MB/s, 1 MB = 10^6 bytes
TARGET_RATIO = 0.8
DROP_CACHES = Path("/proc/sys/vm/drop_caches")

# Run in a fresh interpreter: seal or verify once, print VmHWM after imports and at the end.
CHILD_SCRIPT = """
import sys
from pathlib import Path

def vm_hwm_kib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1

from collabops.exchange.bundle import MANIFEST, SIGNATURE, Producer, seal, verify
from collabops.data.contract import load_contract
from collabops.exchange.signing import load_signer, trusted_keys

mode, root, keys_dir, private_key, contract_path, partner = sys.argv[1:7]
root, keys_dir = Path(root), Path(keys_dir)
digest = load_contract(contract_path).digest()
signer = load_signer(partner, Path(private_key))
keys = trusted_keys(keys_dir)
after_imports = vm_hwm_kib()
if mode == "seal":
    for name in (MANIFEST, SIGNATURE):
        (root / name).unlink(missing_ok=True)
    seal(root, "data", Producer(partner=partner), digest, signer)
else:
    verify(root, keys)
print(after_imports, vm_hwm_kib())
"""


@dataclass
class Setup:
    """The temporary folder and everything in it."""

    tmp: Path
    bundle: Path
    small_bundle: Path
    keys_dir: Path
    private_key: Path
    contract_digest: str

    @property
    def payload(self) -> Path:
        return self.bundle / PAYLOAD_NAME


@dataclass
class Case:
    name: str
    times: list[float] = field(default_factory=list)
    cold: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)


@dataclass(frozen=True)
class PeakMemory:
    after_imports_kib: int
    peak_kib: int


# --- set-up -----------------------------------------------------------------

def write_payload(path: Path, size: int, block: bytes) -> None:
    """``size`` bytes made of ``block`` repeated, flushed to disk so writeback does not disturb the timings."""
    with open(path, "wb", buffering=0) as handle:
        view = memoryview(block)
        left = size
        while left > 0:
            n = handle.write(view[:min(left, len(block))])
            left -= n
        os.fsync(handle.fileno())


def make_setup(tmp: Path, size: int) -> Setup:
    block = os.urandom(min(BLOCK, max(size, 1)))
    bundle, small_bundle, keys_dir = tmp / "bundle", tmp / "bundle-small", tmp / "keys"
    for folder, payload_size in ((bundle, size), (small_bundle, size // 8)):
        folder.mkdir()
        write_payload(folder / PAYLOAD_NAME, payload_size, block)
        shutil.copyfile(CONTRACT_SOURCE, folder / CONTRACT_FILE)
    private_key = keys_dir / f"{PARTNER}.key"
    generate_key_pair(private_key, keys_dir / f"{PARTNER}.pub", PARTNER)
    return Setup(tmp=tmp, bundle=bundle, small_bundle=small_bundle, keys_dir=keys_dir,
                 private_key=private_key, contract_digest=load_contract(CONTRACT_SOURCE).digest())


def warm_up(path: Path) -> None:
    """Read the whole file once, untimed, so it is in the page cache."""
    buffer = bytearray(BLOCK)
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(buffer):
            pass


def remove_manifest(root: Path) -> None:
    for name in (MANIFEST, SIGNATURE):
        (root / name).unlink(missing_ok=True)


# --- the timed cases ----------------------------------------------------------

def time_call(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def run_openssl(payload: Path) -> None:
    subprocess.run(["openssl", "dgst", "-sha256", str(payload)], check=True, stdout=subprocess.DEVNULL)


def timed_cases(setup: Setup) -> tuple[Callable[[], float], Callable[[], float], Callable[[], float]]:
    """Three functions that each run one case once and return its wall time in seconds."""
    signer = load_signer(PARTNER, setup.private_key)
    keys = trusted_keys(setup.keys_dir)
    producer = Producer(partner=PARTNER)

    def openssl() -> float:
        return time_call(lambda: run_openssl(setup.payload))

    def sealing() -> float:
        remove_manifest(setup.bundle)
        return time_call(lambda: seal(setup.bundle, "data", producer, setup.contract_digest, signer))

    def verifying() -> float:
        return time_call(lambda: verify(setup.bundle, keys))

    return openssl, sealing, verifying


def openssl_speed_mb_s(seconds: int = 2) -> float | None:
    """SHA-256 throughput of ``openssl speed`` on 8 MiB blocks already in memory (no file I/O), or None."""
    command = ["openssl", "speed", "-seconds", str(seconds), "-bytes", str(8 * 2**20), "-evp", "sha256"]
    result = subprocess.run(command, capture_output=True, text=True)
    try:
        last = result.stdout.strip().splitlines()[-1].split()[-1]  # e.g. "1296039.94k", in 1000s of bytes/s
        return float(last.rstrip("k")) * 1000 / MB
    except (IndexError, ValueError):
        return None


def can_drop_caches() -> bool:
    return os.geteuid() == 0 and os.access(DROP_CACHES, os.W_OK)


def drop_caches() -> None:
    os.sync()
    DROP_CACHES.write_text("3\n")


def measure(setup: Setup, repeats: int, cold: bool) -> list[Case]:
    openssl, sealing, verifying = timed_cases(setup)
    cases = [Case("openssl dgst -sha256"), Case("seal (hash + sign)"), Case("verify (sig + hash)")]
    runs = (openssl, sealing, verifying)
    warm_up(setup.payload)
    for _ in range(repeats):
        for case, run in zip(cases, runs, strict=True):
            case.times.append(run())
    if cold:
        for case, run in zip(cases, runs, strict=True):
            if run is sealing:
                remove_manifest(setup.bundle)  # so the drop comes after the deletion
            drop_caches()
            case.cold = run()
        warm_up(setup.payload)
    return cases


# --- peak memory in a child -------------------------------------------------------

def child_peak(mode: str, root: Path, setup: Setup) -> PeakMemory:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, "-c", CHILD_SCRIPT, mode, str(root), str(setup.keys_dir), str(setup.private_key),
         str(CONTRACT_SOURCE), PARTNER],
        check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    after_imports, peak = (int(x) for x in result.stdout.split()[-2:])
    return PeakMemory(after_imports_kib=after_imports, peak_kib=peak)


def memory_table(setup: Setup, size: int) -> str:
    small_size = size // 8
    rows = ["| case | payload | VmHWM after imports MiB | peak VmHWM MiB | peak minus imports MiB |",
            "|---|---|---|---|---|"]
    for mode in ("seal", "verify"):  # seal first: verify needs the manifest it writes
        for root, payload_size in ((setup.small_bundle, small_size), (setup.bundle, size)):
            peak = child_peak(mode, root, setup)
            rows.append(f"| {mode} | {format_size(payload_size)} | {peak.after_imports_kib / 1024:.1f} | "
                        f"{peak.peak_kib / 1024:.1f} | {(peak.peak_kib - peak.after_imports_kib) / 1024:.1f} |")
    return "\n".join(rows)


# --- output ----------------------------------------------------------------------

def format_size(size: int) -> str:
    return f"{size / 2**30:.3g} GiB" if size >= 2**30 else f"{size / 2**20:.4g} MiB"


def throughput(size: int, seconds: float) -> float:
    return size / seconds / MB


def timing_table(cases: list[Case], size: int) -> str:
    baseline = cases[0]
    rows = ["| case | median s | min s | max s | throughput MB/s | ratio to openssl throughput |",
            "|---|---|---|---|---|---|"]
    for case in cases:
        rows.append(f"| {case.name} | {case.median:.3f} | {min(case.times):.3f} | {max(case.times):.3f} | "
                    f"{throughput(size, case.median):.0f} | {baseline.median / case.median:.2f}x |")
    if baseline.cold is not None:
        for case in cases:
            assert case.cold is not None
            rows.append(f"| {case.name}, cold cache (1 run) | {case.cold:.3f} | | | "
                        f"{throughput(size, case.cold):.0f} | {baseline.cold / case.cold:.2f}x |")
    return "\n".join(rows)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def has_sha_ni() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    return "yes" if " sha_ni" in flags else "no"


def machine_lines() -> list[str]:
    import ssl

    openssl_cli = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"date:    {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {platform.machine()}, {cpus} CPU(s) available (nproc), {cpu_model()}, SHA-NI: {has_sha_ni()}",
        f"python:  {platform.python_version()} ({sys.executable}), hashlib/ssl linked against {ssl.OPENSSL_VERSION}",
        f"openssl: {openssl_cli} (command line)",
        f"load:    {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) before the first run",
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0, help="payload size in GiB (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (default 3)")
    parser.add_argument("--cold", action="store_true",
                        help="also time one cold-cache run per case (root and a writable drop_caches only)")
    parser.add_argument("--tmp-dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where to create the temporary folder (default: the system temp dir)")
    args = parser.parse_args(argv)
    if args.size_gb <= 0 or args.repeats < 1:
        parser.error("--size-gb must be > 0 and --repeats >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    size = int(args.size_gb * 2**30)
    cold = args.cold
    if cold and not can_drop_caches():
        print(f"--cold ignored: needs root and a writable {DROP_CACHES}")
        cold = False
    free = shutil.disk_usage(args.tmp_dir).free
    if free < size * 1.25:
        print(f"not enough room in {args.tmp_dir}: {format_size(free)} free, "
              f"need about {format_size(int(size * 1.25))}")
        return 1
    print("\n".join(machine_lines()))
    args.tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="collabops-bench-hash-", dir=args.tmp_dir))
    try:
        setup = make_setup(tmp, size)
        print(f"payload: {format_size(size)} ({size} bytes) in {tmp}, plus a {format_size(size // 8)} one "
              f"for the memory check\n")
        cases = measure(setup, args.repeats, cold)
        print(f"Hashing a {format_size(size)} payload, median of {args.repeats} runs. All figures except "
              f"'cold cache' rows are with the file in the OS page cache (one untimed warm-up read first).")
        print(timing_table(cases, size))
        ratio = cases[0].median / cases[2].median
        verdict = "meets" if ratio >= TARGET_RATIO else f"misses by {TARGET_RATIO - ratio:.2f}"
        ceiling = openssl_speed_mb_s()
        if ceiling is not None:
            print(f"\nin-memory ceiling, `openssl speed -evp sha256` on 8 MiB blocks (no file reads): "
                  f"{ceiling:.0f} MB/s; verify reaches {throughput(size, cases[2].median) / ceiling:.2f}x of it.")
        print(f"\nverify reaches {ratio:.2f}x of openssl's throughput; goal >= {TARGET_RATIO}x: {verdict}.")
        print("\nPeak memory of seal and verify, each in a fresh Python process:")
        print(memory_table(setup, size))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average after the last run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
