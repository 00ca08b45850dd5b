"""CPU per `/mutate` review through podtier's ASGI app, in-process, with the serving setup.

    /work/venv/bin/python bench/app_bench.py [--seconds 10] [--cluster snapshot|none]
    /work/venv/bin/python bench/app_bench.py --profile out.prof   # cProfile of the same loop

The app as `podtier serve` makes it (info log lines to a file, metrics counted, headroom from
the 200-node snapshot of `bench/admission_bench.py`, every review reserving on a node), called
on one event loop (uvloop when installed) with the `b` fixture, no sockets and no TLS. Prints
microseconds of this process's CPU per review: the best of several rounds, so a machine
shared with other work disturbs it less than a wall-clock figure. This is the app's share of
what `admission_bench.py` measures per request; the rest is uvicorn, httptools and TLS.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import baseline_app  # noqa: E402
from bench.admission_bench import SNAPSHOT_NODES  # noqa: E402
from bench.cluster_gen import write_dump  # noqa: E402
from bench.core_bench import FIXTURE  # noqa: E402
from podtier.policies import DEFAULT_POLICY  # noqa: E402
from podtier.webhook.commands.args import open_cluster  # noqa: E402
from podtier.webhook.http.app import AppState, create_app  # noqa: E402
from podtier.webhook.http.protocol import LOOP_KEY  # noqa: E402
from podtier.webhook.observability import logs  # noqa: E402
from podtier.webhook.policy.load import load_policy  # noqa: E402

BATCH = 8


async def per_review(app: Any, body: bytes, seconds: float, rounds: int) -> float:
    """Microseconds of CPU per review, the best of `rounds` rounds of `seconds / rounds`."""
    loop = asyncio.get_running_loop()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    message = {"type": "http.request", "body": body, "more_body": False}
    statuses: set[int] = set()

    async def receive() -> dict[str, Any]:
        return message

    async def send(event: dict[str, Any]) -> None:
        if event["type"] == "http.response.start":
            statuses.add(event["status"])

    def scope() -> dict[str, Any]:
        return {
            "type": "http",
            "method": "POST",
            "path": "/mutate",
            "headers": list(headers),
            LOOP_KEY: loop,
        }

    async def one() -> None:
        await app(scope(), receive, send)

    best = float("inf")
    for _ in range(rounds):
        calls = 0
        started = time.process_time()
        deadline = started + seconds / rounds
        while True:
            for _ in range(200 // BATCH):
                # A task per review, as uvicorn runs each request in its own task; BATCH of
                # them per loop turn, as a server under load reads several requests per turn
                # (strace under wrk -c16: about 13 per epoll wait), so the log lines of a
                # turn share one write, as they do there.
                await asyncio.gather(*[one() for _ in range(BATCH)])
            calls += 200
            now = time.process_time()
            if now >= deadline:
                break
        best = min(best, (now - started) / calls * 1e6)
    assert statuses == {200}, statuses
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="in all (default 10)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cluster", choices=["snapshot", "none"], default="snapshot")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--profile", help="write a cProfile of the loop to this file")
    parser.add_argument("--bare", action="store_true", help="the bare stack's app instead")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="podtier-app-bench-"))
    cluster = "none"
    if args.cluster == "snapshot":
        cluster = str(work / "cluster.json")
        write_dump(cluster, SNAPSHOT_NODES)
    headroom = open_cluster(cluster)
    headroom.start()
    logs.configure(args.log_level)
    log_file = (work / "podtier.log").open("w")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(log_file)
    state = AppState(policy=load_policy([DEFAULT_POLICY]), headroom=headroom)
    app = baseline_app.create_app() if args.bare else create_app(state)
    body = FIXTURE.read_bytes()
    gc.collect()  # as `podtier serve` does before it serves
    gc.freeze()

    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        runner(per_review(app, body, args.seconds, 1))
        profiler.disable()
        profiler.dump_stats(args.profile)
        print(f"profile written to {args.profile}")
        shutil.rmtree(work, ignore_errors=True)
        return 0
    micros = runner(per_review(app, body, args.seconds, args.rounds))
    logging.shutdown()
    lines = sum(1 for _ in (work / "podtier.log").open())
    name = "bare stack" if args.bare else "podtier"
    print(f"{name} /mutate in-process: {micros:.1f} us CPU per review ({lines:,} log lines)")
    headroom.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
