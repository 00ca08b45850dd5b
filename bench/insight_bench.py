"""What insight adds to the headroom watch, at 5,000 nodes and 150,000 Airflow pods.

    python bench/insight_bench.py

Prints the pod relist time through `ClusterHeadroom.relist` without and with the `PodCensus`
listener, the cost per watch event with it (pods moving Running -> Succeeded), the RSS the
census holds, and one cleanup selection over the finished pods. Objects are pre-parsed, so
only the apply cost is timed (parsing is the same with or without insight).
"""

from __future__ import annotations

import copy
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cluster_gen  # noqa: E402

from podtier.policies import DEFAULT_POLICY  # noqa: E402
from podtier.webhook.cleanup.select import pick  # noqa: E402
from podtier.webhook.headroom import ClusterHeadroom  # noqa: E402
from podtier.webhook.insight.census import PodCensus  # noqa: E402
from podtier.webhook.policy.load import load_policy  # noqa: E402

PAGE = 500
EVENTS = 30_000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    policy = load_policy([DEFAULT_POLICY])
    objects = list(cluster_gen.cluster())
    nodes = [o for o in objects if o["kind"] == "Node"]
    pods = [o for o in objects if o["kind"] == "Pod"]
    pages = [pods[i : i + PAGE] for i in range(0, len(pods), PAGE)]
    finished = []
    for pod in pods[:EVENTS]:
        done = copy.deepcopy(pod)
        done["status"]["phase"] = "Succeeded"
        done["status"]["containerStatuses"] = [
            {"name": "base", "state": {"terminated": {"finishedAt": "2026-11-26T05:00:00Z"}}}
        ]
        finished.append(done)
    print(f"{len(nodes)} nodes, {len(pods)} pods ({len(pods)} of them Airflow pods)")
    results = {}
    for with_census in (False, True):
        gc.collect()
        headroom = ClusterHeadroom(source="bench")
        census = None
        if with_census:
            census = PodCensus(lambda: policy, observe_wait=lambda *_: None)
            headroom.add_pod_listener(census)
        headroom.relist("Node", [nodes])
        before = rss_mb()
        started = time.perf_counter()
        headroom.relist("Pod", pages)
        relist = time.perf_counter() - started
        held = rss_mb() - before
        started = time.perf_counter()
        for pod in finished:
            headroom.apply("Pod", "MODIFIED", pod)
        per_event = (time.perf_counter() - started) / len(finished) * 1e6
        results[with_census] = (relist, per_event, held)
        label = "with census" if with_census else "headroom only"
        print(
            f"{label:>14}: relist {relist:.2f} s, {per_event:.1f} us per event, "
            f"+{held:.0f} MB RSS after the relist"
        )
        if census is not None:
            started = time.perf_counter()
            chosen = pick(census.finished(), policy, time.time(), 3600, 500)
            took = (time.perf_counter() - started) * 1000
            print(
                f"{'':>14}  cleanup pick of {len(chosen)} from {len(census.finished())} "
                f"finished pods: {took:.1f} ms"
            )
    base, with_census = results[False], results[True]
    print(
        f"census adds {with_census[0] - base[0]:.2f} s to the relist "
        f"({(with_census[0] / base[0] - 1) * 100:.0f}%) and "
        f"{with_census[1] - base[1]:.1f} us per event"
    )


if __name__ == "__main__":
    main()
