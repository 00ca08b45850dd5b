"""`podtier report` against `podtier pods` on the same 5,000-node, 150,000-pod dump.

    python bench/report_bench.py [--dump /tmp/history-5000.json] [--rounds 3]

Writes the dump with `bench/cluster_history.py` when the file is not there (nodes, pods with a
day of history, TaskProfiles, PodMetrics: about 1.5 GB), then runs, in turns so that both see
the same machine load, `podtier pods --cluster DUMP --output json` and `podtier report
--cluster DUMP --out report.html` (with a policy that prices every pool) as a user runs them.
Prints each run's wall time, CPU time (user + system: steadier than wall time on a shared
machine) and peak RSS, the best of each, the ratios (target: report at most 1.5x pods) and the
page's size (target: under 2 MB).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cluster_history  # noqa: E402

from podtier.policies import DEFAULT_POLICY  # noqa: E402

PRICES = {  # on-demand prices per hour split over allocatable cpu and memory (illustrative)
    "worker": {"cpuHour": 0.0316, "memoryGiBHour": 0.0042},
    "compute": {"cpuHour": 0.0289, "memoryGiBHour": 0.0036},
    "gpu": {"cpuHour": 0.0316, "memoryGiBHour": 0.0042, "gpuHour": 2.48},
}
TARGET_RATIO = 1.5
PAGE_LIMIT = 2 * 1024 * 1024


def priced_policy(directory: Path) -> Path:
    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    doc["spec"]["currency"] = "USD"
    for pool, cost in PRICES.items():
        doc["spec"]["pools"][pool]["cost"] = cost
    path = directory / "priced.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def timed(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one `podtier ...` run; fails loudly on
    an error."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "podtier.webhook", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    took = time.perf_counter() - started
    errors = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"podtier {' '.join(argv)} failed: {errors}")
    return took, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dump", default="/tmp/history-5000.json")
    parser.add_argument("--nodes-per-pool", default="2000,2000,1000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    dump = Path(args.dump)
    if not dump.exists():
        print(f"writing {dump} ...", flush=True)
        cluster_history.main([str(dump), "--nodes-per-pool", args.nodes_per_pool])
    print(f"dump {dump}: {dump.stat().st_size / 1e6:,.0f} MB")
    with tempfile.TemporaryDirectory() as folder:
        policy = priced_policy(Path(folder))
        page = Path(folder) / "report.html"
        commands = {
            "pods": ["pods", "--cluster", str(dump), "--output", "json"],
            "report": [
                "report",
                "--cluster",
                str(dump),
                "--policy",
                str(policy),
                "--out",
                str(page),
            ],
        }
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for round_ in range(1, args.rounds + 1):
            for name, command in commands.items():
                took, used, rss = timed(command)
                wall[name] = min(wall.get(name, took), took)
                cpu[name] = min(cpu.get(name, used), used)
                print(
                    f"round {round_}: {name:<6} {took:6.1f} s wall, {used:6.1f} s cpu, "
                    f"peak RSS {rss:,.0f} MB",
                    flush=True,
                )
        size = page.stat().st_size
    ratio = wall["report"] / wall["pods"]
    cpu_ratio = cpu["report"] / cpu["pods"]
    print(f"best wall: pods {wall['pods']:.1f} s, report {wall['report']:.1f} s")
    print(f"best cpu:  pods {cpu['pods']:.1f} s, report {cpu['report']:.1f} s")
    print(
        f"ratio report / pods: {ratio:.2f} wall, {cpu_ratio:.2f} cpu (target <= {TARGET_RATIO}: "
        f"{'met' if ratio <= TARGET_RATIO else 'MISSED'})"
    )
    print(
        f"page: {size / 1024:,.0f} KB (target < {PAGE_LIMIT // 1024 // 1024} MB: "
        f"{'met' if size < PAGE_LIMIT else 'MISSED'})"
    )
    return 0 if ratio <= TARGET_RATIO and size < PAGE_LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
