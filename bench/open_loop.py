"""An open-loop load generator: POST a body at a fixed rate over TLS keep-alive, record latency.

    /work/venv/bin/python bench/open_loop.py --url https://127.0.0.1:8443/mutate \\
        --ca DIR/ca.crt --body FILE --rate 500 --duration 20

wrk2 is not in Debian, so this stands in for it. Requests are due at fixed times (rate per
second) whether or not earlier answers have come back; each goes out on a free keep-alive
connection. A request's latency runs from the moment it was due and dispatched until its
whole response has been read, so time spent waiting for a free connection (a slow server)
counts; the client's own timer lateness is reported apart (`client_lag_p99_us`), not added.
Prints one JSON line: requests, errors, p50/p90/p99/max in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import time
from pathlib import Path

import orjson


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def run(
    url: str, ca: Path, body: bytes, rate: float, duration: float, connections: int, warmup: float
) -> dict[str, float]:
    scheme, _, rest = url.partition("://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    request = (
        f"POST /{path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    ctx = ssl.create_default_context(cafile=str(ca))

    queue: asyncio.Queue[tuple[float, bool] | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx)
        while (job := await queue.get()) is not None:
            dispatched, measured = job
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            done = time.perf_counter()
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
            elif measured:
                latencies.append(done - dispatched)
        writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    await asyncio.sleep(0.2)  # connections and TLS handshakes are not part of the figures
    lags: list[float] = []
    interval = 1.0 / rate
    total = int((warmup + duration) * rate)
    started = time.perf_counter()
    for i in range(total):
        due = started + i * interval
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
            now = time.perf_counter()
        measured = i >= warmup * rate
        if measured:
            lags.append(now - due)
        queue.put_nowait((now, measured))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - started
    latencies.sort()
    lags.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "achieved_rate": round(total / elapsed, 1),
        "p50_us": round(percentile(latencies, 50) * 1e6),
        "p90_us": round(percentile(latencies, 90) * 1e6),
        "p99_us": round(percentile(latencies, 99) * 1e6),
        "max_us": round(latencies[-1] * 1e6) if latencies else 0,
        "client_lag_p99_us": round(percentile(lags, 99) * 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="fixed-rate HTTPS POST load, latency percentiles")
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", type=Path, required=True, help="CA certificate to trust")
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds sent, not measured")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    result = runner(
        run(
            args.url,
            args.ca,
            args.body.read_bytes(),
            args.rate,
            args.duration,
            args.connections,
            args.warmup,
        )
    )
    sys.stdout.write("OPEN_LOOP_JSON " + orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
