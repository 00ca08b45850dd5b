"""Headroom at Kubernetes' published limits: 5,000 nodes and 150,000 pods.

    python bench/headroom_bench.py [--dump]    # --dump also times loading a kubectl dump file

Prints: initial sync time from a List (paged as the API server sends it, 500 objects a page,
parsed with orjson and applied through `ClusterHeadroom.relist`), steady RSS after it, watch
events applied per second (raw event lines, parsed and applied as the watcher does), and
`find_node` latency at that size against a 10-node cluster of the same shape in the same run.
Targets: sync <= 5 s, RSS <= 250 MB, >= 50,000 events/s, latency ratio <= 1.2.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cluster_gen  # noqa: E402

from webhook.headroom import ClusterHeadroom, open_headroom  # noqa: E402

PAGE = 500
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


def pages(objects: Iterator[dict], kind: str, timer: list[float]) -> Iterator[list[dict]]:
    """API-server list pages of `kind`, serialised then parsed; time spent making them (not a
    cost podtier pays) is added to `timer` so it can be taken out of the sync time."""
    batch: list[dict] = []
    made = time.perf_counter()
    for obj in objects:
        if obj["kind"] != kind:
            continue
        batch.append(obj)
        if len(batch) == PAGE:
            body = orjson.dumps({"kind": f"{kind}List", "apiVersion": "v1", "metadata": {}, "items": batch})
            batch = []
            timer[0] += time.perf_counter() - made
            yield orjson.loads(body)["items"]  # parsing is podtier's cost
            made = time.perf_counter()
    if batch:
        body = orjson.dumps({"kind": f"{kind}List", "items": batch})
        timer[0] += time.perf_counter() - made
        yield orjson.loads(body)["items"]


def sync(per_pool: tuple[int, int, int]) -> tuple[ClusterHeadroom, float]:
    headroom = ClusterHeadroom(source="bench")
    generating = [0.0]
    start = time.perf_counter()
    nodes = (cluster_gen.node_object(f"{p}-{i:05d}", p, i) for p, n in zip(("worker", "compute", "gpu"), per_pool, strict=True) for i in range(n))
    headroom.relist("Node", pages(nodes, "Node", generating))
    headroom.relist("Pod", pages(cluster_gen.cluster(per_pool), "Pod", generating))
    return headroom, time.perf_counter() - start - generating[0]


def find_latency(headroom: ClusterHeadroom, pool: str, asks: dict[str, int], rounds: int) -> float:
    selector, tolerations = SELECTORS[pool]
    samples = []
    now = time.monotonic()
    for _ in range(rounds):
        t0 = time.perf_counter()
        with headroom.transaction(now) as view:
            view.find_node(selector, tolerations, asks)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def watch_events(headroom: ClusterHeadroom, count: int) -> list[bytes]:
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dump", action="store_true", help="also time loading a kubectl dump file")
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()

    baseline = rss_mb()
    headroom, seconds = sync((2000, 2000, 1000))
    gc.collect()
    steady = rss_mb()
    state = headroom.state
    print(f"cluster: {len(state.nodes)} nodes, {len(state.pods)} pods")
    print(f"initial sync from a paged List: {seconds:.2f} s (target <= 5 s)")
    print(f"steady RSS after sync: {steady:.0f} MB (process before sync: {baseline:.0f} MB; target <= 250 MB)")

    small, _ = sync((4, 4, 2))
    print("find_node median latency (transaction + find_node), 5,000 nodes vs 10 nodes:")
    worst = 0.0
    for pool, asks in ASKS.items():
        find_latency(headroom, pool, asks, 200)
        find_latency(small, pool, asks, 200)
        big_t = find_latency(headroom, pool, asks, args.rounds)
        small_t = find_latency(small, pool, asks, args.rounds)
        worst = max(worst, big_t / small_t)
        print(f"  {pool:8s} fits:      {big_t * 1e6:6.2f} us vs {small_t * 1e6:6.2f} us  ratio {big_t / small_t:.2f}")
    too_big = {"cpu": 64_000, "memory": 2**30 * 1000, "pods": 1000}
    big_t = find_latency(headroom, "compute", too_big, args.rounds)
    small_t = find_latency(small, "compute", too_big, args.rounds)
    worst_none = big_t / small_t
    print(f"  compute  none fits: {big_t * 1e6:6.2f} us vs {small_t * 1e6:6.2f} us  ratio {worst_none:.2f}")
    fragmented = {"cpu": 3000, "memory": 100 * 2**30 * 1000, "pods": 1000}  # cpu here, memory there
    big_t = find_latency(headroom, "compute", fragmented, 200)
    small_t = find_latency(small, "compute", fragmented, 200)
    print(f"  compute  fragmented (no node has both; full scan): {big_t * 1e6:.0f} us vs {small_t * 1e6:.1f} us")
    print(f"  worst fits/none-fits ratio: {max(worst, worst_none):.2f} (target <= 1.2)")

    lines = watch_events(headroom, args.events)
    start = time.perf_counter()
    for line in lines:
        event = orjson.loads(line)
        headroom.apply("Pod", event["type"], event["object"])
    elapsed = time.perf_counter() - start
    print(f"watch events applied: {len(lines) / elapsed:,.0f} /s ({len(lines)} raw event lines parsed and applied; target >= 50,000)")
    del lines
    gc.collect()
    print(f"RSS after events: {rss_mb():.0f} MB")

    if args.dump:
        del headroom, small, state
        gc.collect()
        path = "/tmp/podtier-cluster-5000.json"
        if not os.path.exists(path):
            size = cluster_gen.write_dump(path)
            print(f"wrote {path} ({size / 1e6:.0f} MB)")
        start = time.perf_counter()
        loaded = open_headroom(path)
        print(f"open_headroom({path}): {time.perf_counter() - start:.2f} s for a {os.path.getsize(path) / 1e6:.0f} MB dump")
        with loaded.transaction(time.monotonic()) as view:
            print(f"  status: {view.status.reason}; worker node for a medium pod: {view.find_node(*SELECTORS['worker'], ASKS['worker'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
