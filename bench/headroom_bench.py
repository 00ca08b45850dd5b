"""Headroom at Kubernetes' published limits: 5,000 nodes and 150,000 pods.

    python bench/headroom_bench.py               # the three goals, 5 rounds each (about 2 min)
    python bench/headroom_bench.py --rounds 3    # quicker

Each figure is the median of `--rounds` rounds, with the range, in CPU time (other work on a
shared machine disturbs it far less than wall time):

1. initial sync: a paged List (500 objects a page, the bytes the API server sends) decoded by
   `headroom.decode` and applied through `ClusterHeadroom.relist`, as the watcher does it.
   Goal <= 5 s CPU. Measured twice, in alternating rounds: headroom alone (the issue's
   figure), and with the pod listeners `podtier serve --cluster auto` also runs (insight's
   census and learning's outcome recorder, under the default policy), which read more of
   each pod; `--headroom-only` skips the second.
2. watch events: raw pod event lines (pods finishing, new pods bound, finished ones deleted,
   across the cluster) decoded and applied as the watcher does, with the same listeners.
   Goal >= 50,000 events per CPU-second.
3. `podtier explain FILE --cluster DUMP` on the `kubectl get nodes,pods -A -o json` dump of
   that cluster (1.4 GB, written once to /tmp), as a user runs it: CPU and wall seconds of the
   whole command. Goal <= 10 s.

Also shown: steady RSS after the sync, and `find_node` latency at 5,000 nodes against a
10-node cluster of the same shape (goal ratio <= 1.2).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import cluster_gen  # noqa: E402

from podtier.webhook.headroom import ClusterHeadroom  # noqa: E402
from podtier.webhook.headroom.decode import decode_event, decode_page  # noqa: E402
from podtier.webhook.insight.job import Insight  # noqa: E402
from podtier.webhook.learning.recorder import OutcomeRecorder  # noqa: E402
from podtier.webhook.policy.load import load_policy  # noqa: E402

PAGE = 500
SIZE = (2000, 2000, 1000)  # worker, compute-optimized, gpu nodes; 30 pods each
DUMP = "/tmp/podtier-cluster-5000.json"
POLICY = ROOT / "policies" / "default.yaml"
FIXTURE = ROOT / "tests" / "fixtures" / "admission" / "b_create_executor_pod_docs_template.json"
GOAL_SYNC, GOAL_EVENTS, GOAL_EXPLAIN, GOAL_RATIO = 5.0, 50_000, 10.0, 1.2
SELECTORS = {
    "worker": ({"node-type": "worker"}, [cluster_gen.TOLERATIONS["worker"]]),
    "compute": ({"node-type": "compute-optimized"}, [cluster_gen.TOLERATIONS["compute"]]),
    "gpu": ({"node-type": "gpu"}, [cluster_gen.TOLERATIONS["gpu"]]),
}
ASKS = {  # pool: effective requests of the pod the core would ask about (milli-units)
    "worker": {"cpu": 1000, "memory": 2 * 2**30 * 1000, "pods": 1000},
    "compute": {"cpu": 2000, "memory": 4 * 2**30 * 1000, "pods": 1000},
    "gpu": {"cpu": 2000, "memory": 8 * 2**30 * 1000, "nvidia.com/gpu": 1000, "pods": 1000},
}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def list_pages(per_pool: tuple[int, int, int]) -> dict[str, list[bytes]]:
    """The List pages the API server would send for each kind, as bytes (made once)."""
    bodies: dict[str, list[bytes]] = {"Node": [], "Pod": []}
    batch: dict[str, list[dict]] = {"Node": [], "Pod": []}
    for obj in cluster_gen.cluster(per_pool):
        kind = obj["kind"]
        batch[kind].append(obj)
        if len(batch[kind]) == PAGE:
            bodies[kind].append(_page(kind, batch[kind]))
            batch[kind] = []
    for kind, rest in batch.items():
        if rest:
            bodies[kind].append(_page(kind, rest))
    return bodies


def _page(kind: str, items: list[dict]) -> bytes:
    meta = {"resourceVersion": "1", "continue": "next"}
    return orjson.dumps(
        {"kind": f"{kind}List", "apiVersion": "v1", "metadata": meta, "items": items}
    )


def sync(
    bodies: dict[str, list[bytes]], listeners: bool = False
) -> tuple[ClusterHeadroom, float, float]:
    """A fresh tracker fed the pages as the watcher feeds them: (tracker, CPU s, decode s).
    `listeners`: with the pod listeners `serve --cluster auto --learning` adds (insight's
    census and learning's outcome recorder, under the default policy)."""
    headroom = ClusterHeadroom(source="bench")
    if listeners:  # as serve wires them (learning's recorder without its profile store)
        insight = Insight(headroom, load_policy([POLICY]), registry=CollectorRegistry())
        headroom.add_pod_listener(OutcomeRecorder(insight.policy))
    decoding = 0.0

    def pages(kind: str) -> Iterator[list]:
        nonlocal decoding
        for body in bodies[kind]:
            started = time.thread_time()
            page = decode_page(kind, body, headroom.pod_fields)
            decoding += time.thread_time() - started
            while True:  # as the watcher: each item decoded when taken, then applied
                started = time.thread_time()
                item = next(page.items, None)
                decoding += time.thread_time() - started
                if item is None:
                    break
                yield [item]

    started = time.thread_time()
    headroom.relist("Node", pages("Node"))
    headroom.relist("Pod", pages("Pod"))
    return headroom, time.thread_time() - started, decoding


def watch_lines(headroom: ClusterHeadroom, count: int) -> list[bytes]:
    """Raw watch lines: pods finishing (MODIFIED Succeeded), new pods bound (ADDED), and the
    finished ones deleted, across the whole cluster."""
    lines = []
    nodes = list(headroom.state.nodes)
    base = 10_000_000
    for i in range(count):
        node = nodes[(i * 7919) % len(nodes)]
        pool = node.split("-")[0]
        tier = cluster_gen.POOL_TIERS[pool][i % len(cluster_gen.POOL_TIERS[pool])]
        step = i % 3
        phase = "Succeeded" if step == 1 else "Running"
        obj = cluster_gen.pod_object(node, pool, base + i - step, tier, phase)
        kind = ("ADDED", "MODIFIED", "DELETED")[step]
        lines.append(orjson.dumps({"type": kind, "object": obj}))
    return lines


def apply_events(headroom: ClusterHeadroom, lines: list[bytes]) -> tuple[float, float]:
    """CPU seconds to decode and apply `lines` as the watcher does, and to decode them alone."""
    fields = headroom.pod_fields
    started = time.thread_time()
    for line in lines:
        decode_event("Pod", line, fields)
    decoding = time.thread_time() - started
    started = time.thread_time()
    for line in lines:
        event = decode_event("Pod", line, fields)
        headroom.apply("Pod", event["type"], event["object"])
    return time.thread_time() - started, decoding


def explain_once() -> tuple[float, float, str]:
    """`podtier explain` on the dump as a user runs it: (CPU s, wall s, its pool line)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "podtier.webhook", "explain", str(FIXTURE), "--cluster", DUMP],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    pool = next((line for line in done.stdout.splitlines() if line.startswith("pool:")), "")
    return cpu, wall, pool


def find_latency(headroom: ClusterHeadroom, pool: str, asks: dict[str, int], calls: int) -> float:
    """Median CPU seconds of one transaction + find_node, over batches of 500 calls."""
    selector, tolerations = SELECTORS[pool]
    now = time.monotonic()
    batches = []
    for _ in range(max(1, calls // 500)):
        started = time.thread_time()
        for _ in range(500):
            with headroom.transaction(now) as view:
                view.find_node(selector, tolerations, asks)
        batches.append((time.thread_time() - started) / 500)
    return statistics.median(batches)


def spread(values: list[float], show: Callable[[float], str]) -> str:
    low, high = show(min(values)), show(max(values))
    return f"median {show(statistics.median(values))} (range {low} - {high})"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per figure (default 5)")
    parser.add_argument("--events", type=int, default=150_000, help="watch lines per round")
    parser.add_argument(
        "--explain-rounds", type=int, default=5, help="explain runs (default 5, ~6 s each)"
    )
    parser.add_argument("--find-calls", type=int, default=20_000)
    parser.add_argument(
        "--headroom-only",
        action="store_true",
        help="without the pod listeners serve adds (insight's census, learning's recorder)",
    )
    args = parser.parse_args()
    print(
        f"podtier headroom benchmark: {sum(SIZE):,} nodes, {sum(SIZE) * 30:,} pods; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        f"median of {args.rounds} rounds, CPU time; "
        f"{'without' if args.headroom_only else 'with'} serve's pod listeners"
    )

    bodies = list_pages(SIZE)
    syncs, decodes, alone = [], [], []
    headroom = None
    for _ in range(args.rounds):
        if not args.headroom_only:  # headroom alone too, in the same rounds: how fast the
            gc.collect()  # machine is now, and what the listeners add
            alone.append(sync(bodies, False)[1])
        headroom = None
        gc.collect()
        headroom, cpu, decoding = sync(bodies, not args.headroom_only)
        syncs.append(cpu)
        decodes.append(decoding)
    del bodies
    gc.collect()
    assert headroom is not None
    steady = rss_mb()
    state = headroom.state
    seconds = lambda v: f"{v:.2f} s"  # noqa: E731
    print(
        f"1. initial sync (paged List, decoded and applied), headroom alone: "
        f"{spread(alone or syncs, seconds)} CPU "
        f"-> goal <= {GOAL_SYNC:g} s: {verdict(statistics.median(alone or syncs) <= GOAL_SYNC)}"
    )
    if alone:
        print(
            f"   with serve's pod listeners: {spread(syncs, seconds)} CPU, of which decoding "
            f"{statistics.median(decodes):.2f} s "
            f"-> {'within' if statistics.median(syncs) <= GOAL_SYNC else 'OVER'} "
            f"{GOAL_SYNC:g} s"
        )
    print(
        f"   {len(state.nodes):,} nodes, {len(state.pods):,} pods; steady RSS after it "
        f"{steady:.0f} MB (goal <= 250 MB)"
    )

    lines = watch_lines(headroom, args.events)
    rates, decode_us = [], []
    for _ in range(args.rounds):
        cpu, decoding = apply_events(headroom, lines)
        rates.append(len(lines) / cpu)
        decode_us.append(decoding / len(lines) * 1e6)
    per_second = lambda v: f"{v:,.0f}/s"  # noqa: E731
    print(
        f"2. watch events (decoded and applied): {spread(rates, per_second)}; decoding "
        f"{statistics.median(decode_us):.1f} us of each "
        f"-> goal >= {GOAL_EVENTS:,}/s: {verdict(statistics.median(rates) >= GOAL_EVENTS)}"
    )
    del lines

    small, _, _ = sync(list_pages((4, 4, 2)))
    worst = 0.0
    for pool, asks in ASKS.items():
        big_t, small_t = [], []
        for _ in range(10):  # alternating slices: both sizes see the same machine
            big_t.append(find_latency(headroom, pool, asks, args.find_calls // 10))
            small_t.append(find_latency(small, pool, asks, args.find_calls // 10))
        big, little = statistics.median(big_t), statistics.median(small_t)
        worst = max(worst, big / little)
        print(
            f"   find_node, {pool} pod: {big * 1e6:.2f} us at 5,000 nodes, "
            f"{little * 1e6:.2f} us at 10"
        )
    print(f"   find_node worst ratio {worst:.2f} (goal <= {GOAL_RATIO})")
    del headroom, state, small
    gc.collect()

    if args.explain_rounds < 1:
        return 0
    if not os.path.exists(DUMP):
        started = time.perf_counter()
        size = cluster_gen.write_dump(DUMP, SIZE)
        print(f"   (wrote {DUMP}: {size / 1e6:,.0f} MB in {time.perf_counter() - started:.0f} s)")
    cpus, walls = [], []
    pool = ""
    for _ in range(args.explain_rounds):
        cpu, wall, pool = explain_once()
        cpus.append(cpu)
        walls.append(wall)
    print(
        f"3. podtier explain --cluster on the {os.path.getsize(DUMP) / 1e6:,.0f} MB dump: "
        f"{spread(cpus, seconds)} CPU, {spread(walls, seconds)} wall "
        f"-> goal <= {GOAL_EXPLAIN:g} s: {verdict(statistics.median(cpus) <= GOAL_EXPLAIN)}"
    )
    print(f"   ({pool.strip()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
