"""podtier's fit rule against the real kube-scheduler 1.28, on random clusters.

    KUBEBUILDER_ASSETS=../shared/kube-assets python bench/scheduler_differential.py \
        --cases 500 --seed 1 [--no-documented] [--sidecar-containers] [--first 0] \
        [--budget 900] [--verbose]

Starts one control plane on loopback (etcd, kube-apiserver, kube-scheduler from
`$KUBEBUILDER_ASSETS`), then runs cases `first .. first+cases-1` of the seed, one after the
other (`tests/webhook/headroom/scheduler_cases.py` makes them, `differential.py` runs them).
For each: the scheduler's answer (the probe pod bound, or Unschedulable on every node) and
podtier's (`find_node` over the nodes and pods listed from the API server).

Prints every disagreement (its seed and index reproduce it) with both answers and podtier's
view of each node, then the figures: agreements, disagreements (those with a documented
scheduler rule behind them apart), bound and Unschedulable probes, how often each shape came
up, and the time taken. Exit code 1 when a disagreement has no documented rule behind it.
`--no-documented` leaves out the shapes with a documented difference, as the CI sample does;
`--sidecar-containers` turns that feature gate on (as from 1.29); no case starts after
`--budget` seconds (about 0.25 s a case here, so 500 take about 2 minutes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.controlplane import ASSETS_VARIABLE, ControlPlane, missing_assets  # noqa: E402
from tests.webhook.headroom.differential import Differential, Verdict  # noqa: E402
from tests.webhook.headroom.scheduler_cases import generate  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--first", type=int, default=0, help="index of the first case")
    parser.add_argument(
        "--no-documented",
        dest="documented",
        action="store_false",
        help="leave out the shapes where podtier differs on purpose (as the CI sample does)",
    )
    parser.add_argument("--verbose", action="store_true", help="print every case's report")
    parser.add_argument(
        "--budget",
        type=float,
        default=900.0,
        help="seconds: start no case after this much time (the figures say how many ran)",
    )
    parser.add_argument(
        "--sidecar-containers",
        action="store_true",
        help="turn the SidecarContainers feature gate on (alpha in 1.28, on from 1.29): init "
        "containers with restartPolicy: Always are then kept, and run as sidecars",
    )
    args = parser.parse_args()
    why = missing_assets()
    if why:
        print(f"cannot start a control plane: {why}", file=sys.stderr)
        return 2

    started = time.monotonic()
    verdicts: list[Verdict] = []
    gates = {"SidecarContainers": True} if args.sidecar_containers else None
    with ControlPlane(os.environ[ASSETS_VARIABLE], feature_gates=gates) as plane:
        print(f"control plane up in {plane.startup_seconds:.1f} s", flush=True)
        runner = Differential(plane)
        cases_started = time.monotonic()
        try:
            for index in range(args.first, args.first + args.cases):
                if time.monotonic() - cases_started > args.budget:
                    print(f"time budget of {args.budget:g} s spent: stopping", flush=True)
                    break
                verdict = runner.run(generate(args.seed, index, args.documented))
                verdicts.append(verdict)
                if args.verbose or not verdict.agrees:
                    print(verdict.report(), flush=True)
                if len(verdicts) % 50 == 0:
                    took = time.monotonic() - cases_started
                    print(f"... {len(verdicts)} cases in {took:.0f} s", flush=True)
        finally:
            runner.close()
        cases_took = time.monotonic() - cases_started
    return summarize(verdicts, cases_took, time.monotonic() - started)


def summarize(verdicts: list[Verdict], cases_took: float, took: float) -> int:
    agree = [v for v in verdicts if v.agrees]
    documented = [v for v in verdicts if not v.agrees and v.documented]
    unexplained = [v for v in verdicts if not v.agrees and not v.documented]
    bound = sum(1 for v in verdicts if v.scheduler)
    shapes = Counter(shape for v in verdicts for shape in v.case.shapes)
    shapes.update(f"stored-{kept}" for v in verdicts for kept in v.stored)
    print()
    print(
        f"cases: {len(verdicts)}  agreements: {len(agree)}  disagreements: "
        f"{len(documented) + len(unexplained)} ({len(documented)} documented, "
        f"{len(unexplained)} unexplained)"
    )
    print(f"probes bound: {bound}  Unschedulable: {len(verdicts) - bound}")
    rules = Counter(r.split(":")[0] for v in documented for r in v.documented.split("; "))
    for rule, count in sorted(rules.items()):
        print(f"documented differences, {rule}: {count}")
    print("shapes (cases that had each):")
    for shape, count in sorted(shapes.items()):
        print(f"  {shape}: {count}")
    print(
        f"time: {cases_took:.1f} s for the cases ({cases_took / max(len(verdicts), 1):.2f} s "
        f"a case), {took:.1f} s in all"
    )
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
