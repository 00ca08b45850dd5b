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
import timeit
from collections.abc import Iterator
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cluster_gen  # noqa: E402

from podtier.webhook.headroom import ClusterHeadroom, open_headroom  # noqa: E402

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


def pages(objects: Iterator[dict], kind: str, timer: dict[str, float]) -> Iterator[list[dict]]:
    """API-server list pages of `kind` as raw bytes, then parsed as the watcher parses them.
    Making the bytes is not podtier's cost and is timed apart (`timer["make"]`); parsing is
    (`timer["parse"]`)."""
    batch: list[dict] = []
    made = time.thread_time()
    for obj in objects:
        if obj["kind"] != kind:
            continue
        batch.append(obj)
        if len(batch) == PAGE:
            yield from _page(kind, batch, made, timer)
            made = time.thread_time()
            batch = []  # freeing what the generator made is not podtier's cost either
    if batch:
        yield from _page(kind, batch, made, timer)


def _page(
    kind: str, batch: list[dict], made: float, timer: dict[str, float]
) -> Iterator[list[dict]]:
    body = orjson.dumps({"kind": f"{kind}List", "apiVersion": "v1", "metadata": {}, "items": batch})
    parse = time.thread_time()
    timer["make"] += parse - made
    items = orjson.loads(body)["items"]
    timer["parse"] += time.thread_time() - parse
    yield items
    free = time.thread_time()
    items.clear()  # the page has been applied: freeing the parsed JSON is podtier's cost
    timer["free"] += time.thread_time() - free


def sync(per_pool: tuple[int, int, int]) -> tuple[ClusterHeadroom, dict[str, float]]:
    """Returns the headroom and CPU seconds: total (podtier's: parse + apply), parse, wall."""
    headroom = ClusterHeadroom(source="bench")
    timer = {"make": 0.0, "parse": 0.0, "free": 0.0}
    wall, cpu = time.perf_counter(), time.thread_time()
    layout = list(zip(("worker", "compute", "gpu"), per_pool, strict=True))
    nodes = (cluster_gen.node_object(f"{p}-{i:05d}", p, i) for p, n in layout for i in range(n))
    headroom.relist("Node", pages(nodes, "Node", timer))
    headroom.relist("Pod", pages(cluster_gen.cluster(per_pool), "Pod", timer))
    cpu = time.thread_time() - cpu - timer["make"]
    wall = time.perf_counter() - wall - timer["make"]
    return headroom, {"cpu": cpu, "parse": timer["parse"], "free": timer["free"], "wall": wall}


def find_latency(headroom: ClusterHeadroom, pool: str, asks: dict[str, int], rounds: int) -> float:
    """Median CPU seconds of one transaction + find_node, over batches of 500 calls."""
    selector, tolerations = SELECTORS[pool]
    now = time.monotonic()
    batches = []
    for _ in range(max(1, rounds // 500)):
        t0 = time.thread_time()
        for _ in range(500):
            with headroom.transaction(now) as view:
                view.find_node(selector, tolerations, asks)
        batches.append((time.thread_time() - t0) / 500)
    return statistics.median(batches)


def show(what: str, big: float, small: float) -> None:
    print(f"  {what:18s} {big * 1e6:6.2f} us vs {small * 1e6:6.2f} us  ratio {big / small:.2f}")


def compare(
    big: ClusterHeadroom, small: ClusterHeadroom, pool: str, asks: dict[str, int], rounds: int
) -> tuple[float, float]:
    """Latency at both sizes, measured in alternating slices so both see the same machine load."""
    big_t, small_t = [], []
    for _ in range(10):
        big_t.append(find_latency(big, pool, asks, rounds // 10))
        small_t.append(find_latency(small, pool, asks, rounds // 10))
    return statistics.median(big_t), statistics.median(small_t)


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

    reference = orjson.dumps(cluster_gen.pod_object("worker-00000", "worker", 1, "light"))
    parse_us = (
        min(timeit.repeat(lambda: orjson.loads(reference), number=2000, repeat=5)) / 2000 * 1e6
    )
    print(
        f"machine: orjson.loads of one {len(reference)}-byte Airflow pod takes {parse_us:.1f} us here"  # noqa: E501
        f" (DESIGN.md measured 7 us); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"  # noqa: E501
    )

    baseline = rss_mb()
    headroom, took = sync((2000, 2000, 1000))
    gc.collect()
    steady = rss_mb()
    state = headroom.state
    print(f"cluster: {len(state.nodes)} nodes, {len(state.pods)} pods")
    print(
        f"initial sync from a paged List: {took['cpu']:.2f} s CPU ({took['wall']:.2f} s wall):"
        f" parsing JSON {took['parse']:.2f} s, freeing it {took['free']:.2f} s, applying"
        f" {took['cpu'] - took['parse'] - took['free']:.2f} s (target <= 5 s)"
    )
    print(
        f"steady RSS after sync: {steady:.0f} MB (process before sync: {baseline:.0f} MB; target <= 250 MB)"  # noqa: E501
    )

    small, _ = sync((4, 4, 2))
    print("find_node median CPU time (transaction + find_node), 5,000 nodes vs 10 nodes:")
    worst = 0.0
    for pool, asks in ASKS.items():
        big_t, small_t = compare(headroom, small, pool, asks, args.rounds)
        worst = max(worst, big_t / small_t)
        show(f"{pool} fits", big_t, small_t)
    too_big = {"cpu": 64_000, "memory": 2**30 * 1000, "pods": 1000}
    big_t, small_t = compare(headroom, small, "compute", too_big, args.rounds)
    worst_none = big_t / small_t
    show("compute none fits", big_t, small_t)
    print(f"  worst fits/none-fits ratio: {max(worst, worst_none):.2f} (target <= 1.2)")

    lines = watch_events(headroom, args.events)
    start = time.thread_time()
    for line in lines:  # parsing alone, each event dropped at once as the watcher does
        orjson.loads(line)
    parse = time.thread_time() - start
    start = time.thread_time()
    for line in lines:
        event = orjson.loads(line)
        headroom.apply("Pod", event["type"], event["object"])
    both = time.thread_time() - start
    n = len(lines)
    apply = both - parse
    print(
        f"watch events: {n / both:,.0f} /s parsed and applied ({n} raw pod event lines: "
        f"{parse / n * 1e6:.1f} us parse + {apply / n * 1e6:.1f} us apply each; "
        "target >= 50,000)"
    )
    print(f"  applied alone (after orjson): {n / apply:,.0f} /s")
    del lines

    if args.dump:
        del headroom, small, state
        gc.collect()
        path = "/tmp/podtier-cluster-5000.json"
        if not os.path.exists(path):
            size = cluster_gen.write_dump(path)
            print(f"wrote {path} ({size / 1e6:.0f} MB)")
        start, cpu = time.perf_counter(), time.process_time()
        loaded = open_headroom(path)
        print(f"open_headroom CPU time: {time.process_time() - cpu:.2f} s")
        print(
            f"open_headroom({path}): {time.perf_counter() - start:.2f} s for a {os.path.getsize(path) / 1e6:.0f} MB dump"  # noqa: E501
        )
        with loaded.transaction(time.monotonic()) as view:
            print(
                f"  status: {view.status.reason}; worker node for a medium pod: {view.find_node(*SELECTORS['worker'], ASKS['worker'])}"  # noqa: E501
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
