"""Benchmark the replay's peak memory on a large synthetic file (bounded-memory streaming).

    python bench/producer_memory.py                       # 2M rides (4M events), ~2 min
    python bench/producer_memory.py --rides 10000000      # the 10M target (~5-8 min)

Writes N synthetic rides with `ridestream synth` (fitted on green 2021-01), then runs
`python -m producer --files <it> --speed max` as a child process against a real broker and
samples its resident memory (VmRSS) every 0.1 s; the kernel's ru_maxrss of the child is
reported too. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kafka

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ridestream import kafka_broker  # noqa: E402

DATA_DIR = Path(os.environ.get("RIDESTREAM_TEST_DATA_DIR", REPO.parent / "shared" / "data"))


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("RIDESTREAM_BENCH_KAFKA"),
        help="a running broker (default: start a local one)",
    )
    parser.add_argument("--rides", type=int, default=2_000_000)
    parser.add_argument("--file", type=Path, help="replay this file instead of synthesising one")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"kafka-python {kafka.__version__}"
    )
    python = sys.executable
    path = args.file or args.workdir / f"bench_synth_{args.rides}.parquet"
    if not path.exists():
        started = time.monotonic()
        subprocess.run(
            [
                python,
                "-m",
                "ridestream.cli",
                "synth",
                "--fit",
                "2021-01",
                "--data-dir",
                str(DATA_DIR),
                "--rides",
                str(args.rides),
                "--out",
                str(path),
            ],
            check=True,
            cwd=REPO,
            stderr=subprocess.DEVNULL,
        )
        print(f"synthesised {args.rides:,} rides in {time.monotonic() - started:.1f} s: {path}")
    with kafka_broker.temporary_broker(args.bootstrap) as bootstrap:
        env = {
            **os.environ,
            "RIDESTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "RIDESTREAM_TOPIC_PREFIX": f"bench-mem-{os.getpid()}.",
        }
        started = time.monotonic()
        child = subprocess.Popen(
            [python, "-m", "producer", "--files", str(path), "--speed", "max", "--no-progress"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        peak_mb, samples = 0.0, 0
        while child.poll() is None:
            rss = _rss_mb(child.pid)
            if rss is not None:
                peak_mb, samples = max(peak_mb, rss), samples + 1
            time.sleep(0.1)
        out, err = child.communicate()
        wall_s = time.monotonic() - started
    maxrss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(out.strip())
    if child.returncode:
        print(f"replay failed ({child.returncode}): {err.strip()[-500:]}")
        return 1
    print(f"\npeak memory, --speed max, {path.name} ({path.stat().st_size / 1e6:.0f} MB file)")
    print(f"{'peak VmRSS (sampled 10/s)':<34} {peak_mb:>8.0f} MB ({samples} samples)")
    print(
        f"{'ru_maxrss of child processes':<34} {maxrss_mb:>8.0f} MB "
        "(includes the synth run when it ran here)"
    )
    print(f"{'wall time (process start to end)':<34} {wall_s:>8.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
