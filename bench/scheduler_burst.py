"""Bursts of heavy Airflow pods against a real kube-apiserver and kube-scheduler, repeated.

    KUBEBUILDER_ASSETS=../shared/kube-assets python bench/scheduler_burst.py [--runs 5]

For 1, 2 and 3 podtier replicas (several behind a connection spreader, as a Service), bursts
of N heavy pods (N = 24 with 12 creations in flight on the issue's cluster: 4 workers of 16 cpu
and 2 compute nodes with room for 2 heavy pods each; N = 200 with 32 in flight, on 7 workers of
64 cpu). Prints, per setting, how many pods podtier pinned to compute in each run (the pool
takes 4), how many were left Unschedulable, how many placements borrowed room outside their
replica's share (all runs), and how long the bursts took.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.controlplane import ControlPlane, missing_assets  # noqa: E402
from tests.webhook.headroom.burst import BurstCluster, create_burst, summarize  # noqa: E402

SETTINGS = [  # (replicas, pods, in flight, workers, worker cpu)
    (1, 24, 12, 4, "16"),
    (2, 24, 12, 4, "16"),
    (3, 24, 12, 4, "16"),
    (1, 200, 32, 7, "64"),
    (2, 200, 32, 7, "64"),
    (3, 200, 32, 7, "64"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="bursts per setting (default 5)")
    args = parser.parse_args()
    why = missing_assets()
    if why is not None:
        print(f"no control plane binaries: {why}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="podtier-burst-"))
    with ControlPlane(os.environ["KUBEBUILDER_ASSETS"], work / "plane") as plane:
        print(f"control plane up in {plane.startup_seconds:.1f} s")
        print(
            f"{'replicas':>8} {'pods':>5} {'in flight':>9}  compute per run       unsched"
            "  borrowed  s/burst"
        )
        for replicas, pods, in_flight, workers, cpu in SETTINGS:
            compute, unschedulable, borrowed, seconds = [], 0, 0, []
            for _ in range(args.runs):
                burst = BurstCluster(plane, work)
                try:
                    cluster = burst.start(workers=workers, worker_cpu=cpu, replicas=replicas)
                    names = [f"heavy-{i:03d}" for i in range(pods)]
                    started = time.monotonic()
                    create_burst(plane, names, in_flight=in_flight)
                    outcomes = cluster.plane.wait_settled("airflow", names, timeout=300)
                    seconds.append(time.monotonic() - started)
                    summary = summarize(outcomes)
                    compute.append(summary["pinned to compute"])
                    unschedulable += summary["unschedulable"]
                    borrowed += summary["borrowed"]
                finally:
                    burst.close()
            shown = " ".join(str(c) for c in compute)
            print(
                f"{replicas:>8} {pods:>5} {in_flight:>9}  {shown:<20} {unschedulable:>7}"
                f"  {borrowed:>8}  {statistics.median(seconds):6.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
