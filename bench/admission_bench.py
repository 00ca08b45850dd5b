"""podtier's admission benchmark, against the bare server stack it runs on.

    /work/venv/bin/python bench/admission_bench.py               # 5 rounds (about 4 min)
    /work/venv/bin/python bench/admission_bench.py --rounds 3 --duration 5   # a quick look

Needs `wrk` (Debian: `apt-get install -y wrk`). Everything runs on 127.0.0.1 with throwaway
certificates made by `certs.generate`:

- `podtier serve` (one uvicorn worker, uvloop + httptools, TLS, metrics on, info logs to a
  file, headroom from a 200-node, 6,000-pod `kubectl get nodes,pods -A -o json` dump made by
  `bench/cluster_gen.py`: every `/mutate` finds a node and reserves on it; it is the same pod
  each time, so one reservation is replaced, not piled up);
- the bare stack (`bench/baseline_app.py`): the same uvicorn, Starlette and orjson over the same
  TLS context, decoding the same AdmissionReview and answering a canned "allowed".

Both rows of the issue, each the median of `--rounds` alternating rounds (A B, then B A), with
the range, so a noisy machine hurts both alike and one lucky run cannot decide:

1. throughput: `wrk` over keep-alive TLS at 16 connections, the `b` fixture body
   (`bench/post_review.lua`), `--duration` seconds per server per round. The ratio is taken
   within each round (podtier's req/s over the bare stack's), then its median. Also shown: the
   server's CPU time per request (from /proc), which a busy machine disturbs less; its ratio
   is what the throughput ratio tends to when both servers have a core to themselves.
2. latency: p99 at a fixed 500 requests/s (`bench/open_loop.py`, an open-loop client: wrk2 is
   not in Debian), `--duration` seconds per server per round; the ratio of the p99s, per round.

With two or more CPUs the servers are pinned to the last one and the load generators to the
others (`--no-pin` to leave placement to the kernel), as in the issue's runs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cluster_gen import write_dump  # noqa: E402
from bench.core_bench import FIXTURE, core_rates  # noqa: E402
from podtier.certs.generate import make_ca, make_serving_cert, write_pair  # noqa: E402

# worker, compute-optimized and gpu nodes in the headroom snapshot (30 task pods each)
SNAPSHOT_NODES = (150, 40, 10)
GOAL_RATIO = 0.7  # podtier's /mutate req/s over the bare stack's, at 16 connections
GOAL_P99_RATIO = 1.5  # podtier's p99 over the bare stack's, at a fixed 500 req/s


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    note: str = ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_certs(directory: Path) -> Path:
    now = dt.datetime.now(dt.UTC)
    ca = make_ca(now, common_name="podtier-bench-ca")
    serving = make_serving_cert(ca, now, dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    write_pair(directory, ca, serving)
    return directory


def cpus(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(the servers' CPUs, the load generators' CPUs), or None each when not pinning."""
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not pin or len(available) < 2:
        return None, None
    return {available[-1]}, set(available[:-1])


def on(cores: set[int] | None) -> Callable[[], None] | None:
    """A preexec_fn that runs the child on `cores`."""
    if cores is None:
        return None
    return lambda: os.sched_setaffinity(0, cores)


def start(
    name: str, args: list[str], port: int, work: Path, ca: Path, cores: set[int] | None
) -> Server:
    log = work / f"{name}.log"
    with log.open("wb") as out:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env, preexec_fn=on(cores)
        )
    server = Server(name, f"https://127.0.0.1:{port}", process, log)
    trust = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + 60
    with httpx.Client(verify=trust, timeout=5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited ({process.returncode}): {log.read_text()[-800:]}"
                )
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{server.url}/readyz").status_code == 200:
                    return server
            time.sleep(0.1)
    stop(server)
    raise RuntimeError(f"{name} not ready within 60 s: {log.read_text()[-800:]}")


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def start_baseline(work: Path, cert_dir: Path, cores: set[int] | None) -> Server:
    port = free_port()
    args = [sys.executable, str(HERE / "baseline_app.py"), "--cert-dir", str(cert_dir)]
    return start("bare", [*args, "--port", str(port)], port, work, cert_dir / "ca.crt", cores)


def start_podtier(
    work: Path, cert_dir: Path, cluster: str, cores: set[int] | None, python: str = sys.executable
) -> Server:
    port = free_port()
    args = [
        python,
        "-m",
        "podtier.webhook",
        "serve",
        "--cert-dir",
        str(cert_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--metrics-port",
        str(free_port()),
    ]
    ca = cert_dir / "ca.crt"
    if cluster == "none":
        return start("podtier", [*args, "--cluster", "none"], port, work, ca, cores)
    snapshot = work / "cluster.json"
    write_dump(str(snapshot), SNAPSHOT_NODES)
    server = start("podtier", [*args, "--cluster", str(snapshot)], port, work, ca, cores)
    nodes, pods = sum(SNAPSHOT_NODES), sum(SNAPSHOT_NODES) * 30
    server.note = f"{nodes}-node, {pods:,}-pod cluster snapshot (--cluster FILE)"
    return server


def check_answers(podtier: Server, bare: Server, body: bytes, ca: Path) -> None:
    trust = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(verify=trust, timeout=5) as client:
        answer = client.post(f"{podtier.url}/mutate", content=body).json()["response"]
        if answer.get("patchType") != "JSONPatch":
            raise RuntimeError(f"podtier did not patch the b fixture: {answer}")
        answer = client.post(f"{bare.url}/mutate", content=body).json()["response"]
        if answer.get("allowed") is not True:
            raise RuntimeError(f"the bare stack did not allow the b fixture: {answer}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    server: Server, body_file: Path, connections: int, seconds: float, cores: set[int] | None
) -> dict[str, Any]:
    args = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "post_review.lua"),
        f"{server.url}/mutate",
    ]
    before = cpu_seconds(server.process.pid)
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        env={**os.environ, "BODY": str(body_file)},
        preexec_fn=on(cores),
    )
    cpu = cpu_seconds(server.process.pid) - before
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            result: dict[str, Any] = orjson.loads(line[9:])
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            result["errors"] = (
                sum(result[k] for k in result if k.endswith("_errors")) + result["timeouts"]
            )
            result["cpu_us"] = cpu / max(1, result["requests"]) * 1e6
            return result
    raise RuntimeError(f"wrk printed no summary: {done.stdout}\n{done.stderr}")


def run_open_loop(
    server: Server, ca: Path, body_file: Path, rate: float, seconds: float, cores: set[int] | None
) -> dict[str, Any]:
    args = [
        sys.executable,
        str(HERE / "open_loop.py"),
        "--url",
        f"{server.url}/mutate",
        "--ca",
        str(ca),
        "--body",
        str(body_file),
        "--rate",
        str(rate),
        "--duration",
        str(seconds),
        "--warmup",
        "1",
    ]
    done = subprocess.run(args, capture_output=True, text=True, preexec_fn=on(cores))
    for line in done.stdout.splitlines():
        if line.startswith("OPEN_LOOP_JSON "):
            result: dict[str, Any] = orjson.loads(line[15:])
            return result
    raise RuntimeError(f"open_loop printed no summary: {done.stdout}\n{done.stderr}")


def scrape_requests(podtier: Server, ca: Path) -> float:
    trust = ssl.create_default_context(cafile=str(ca))
    text = httpx.get(f"{podtier.url}/metrics", verify=trust, timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("podtier_admission_requests_total{")
    )


def spread(values: list[float], fmt: str) -> str:
    return (
        f"{format(statistics.median(values), fmt)} "
        f"(range {format(min(values), fmt)} - {format(max(values), fmt)})"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per server per load (default 10)"
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--rate", type=float, default=500.0, help="fixed rate, req/s (500)")
    parser.add_argument("--cluster", choices=["snapshot", "none"], default="snapshot")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and clients")
    parser.add_argument(
        "--core-seconds", type=float, default=2.0, help="pure-core time per webhook (default 2)"
    )
    parser.add_argument(
        "--podtier-python",
        default=sys.executable,
        metavar="PYTHON",
        help="the interpreter to run podtier with (another build's venv, to compare builds)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("admission_bench: wrk not found (Debian: apt-get install -y wrk)", file=sys.stderr)
        return 2
    server_cores, client_cores = cpus(not args.no_pin)

    load_before = os.getloadavg()
    core = core_rates(args.core_seconds)
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="podtier-bench-") as tmp:
        work = Path(tmp)
        cert_dir = make_certs(work / "certs")
        ca = cert_dir / "ca.crt"
        body_file = work / "body.json"
        body_file.write_bytes(FIXTURE.read_bytes())
        bare = start_baseline(work, cert_dir, server_cores)
        podtier = start_podtier(work, cert_dir, args.cluster, server_cores, args.podtier_python)
        try:
            check_answers(podtier, bare, body_file.read_bytes(), ca)
            for server in (bare, podtier):  # warm both up: imports, caches, connections
                run_wrk(server, body_file, args.connections, 2, client_cores)
            for n in range(args.rounds):
                order = (bare, podtier) if n % 2 == 0 else (podtier, bare)
                row: dict[str, Any] = {"order": [s.name for s in order]}
                for server in order:
                    row[f"wrk_{server.name}"] = run_wrk(
                        server, body_file, args.connections, args.duration, client_cores
                    )
                for server in order:
                    row[f"fixed_{server.name}"] = run_open_loop(
                        server, ca, body_file, args.rate, args.duration, client_cores
                    )
                rounds.append(row)
                print(
                    f"round {n + 1}/{args.rounds}: req/s bare "
                    f"{row['wrk_bare']['rps']:,.0f}, podtier {row['wrk_podtier']['rps']:,.0f}; "
                    f"p99 at {args.rate:g}/s bare {row['fixed_bare']['p99_us'] / 1000:.2f} ms, "
                    f"podtier {row['fixed_podtier']['p99_us'] / 1000:.2f} ms",
                    file=sys.stderr,
                    flush=True,
                )
            counted = scrape_requests(podtier, ca)
            log_lines = sum(1 for _ in podtier.log.open("rb"))
        finally:
            stop(podtier)
            stop(bare)
    load_after = os.getloadavg()

    rps = {s: [r[f"wrk_{s}"]["rps"] for r in rounds] for s in ("bare", "podtier")}
    cpu = {s: [r[f"wrk_{s}"]["cpu_us"] for r in rounds] for s in ("bare", "podtier")}
    p99 = {s: [r[f"fixed_{s}"]["p99_us"] / 1000 for r in rounds] for s in ("bare", "podtier")}
    wrk_p99 = {s: [r[f"wrk_{s}"]["p99_us"] / 1000 for r in rounds] for s in ("bare", "podtier")}
    errors = sum(r[f"{k}_{s}"]["errors"] for r in rounds for k in ("wrk", "fixed") for s in rps)
    ratio = [p / b for p, b in zip(rps["podtier"], rps["bare"], strict=True)]
    cpu_ratio = [b / p for p, b in zip(cpu["podtier"], cpu["bare"], strict=True)]
    p99_ratio = [p / b for p, b in zip(p99["podtier"], p99["bare"], strict=True)]

    out: list[str] = []
    say = out.append
    pinned = (
        f"servers on CPU {sorted(server_cores)}, clients on {sorted(client_cores or ())}"
        if server_cores
        else "not pinned"
    )
    say(f"podtier admission benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    say(
        f"machine: {os.cpu_count()} CPUs ({pinned}), load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after; one uvicorn worker (uvloop + httptools) over TLS"
    )
    say(
        f"body: b fixture ({FIXTURE.stat().st_size:,} bytes); {args.rounds} alternating rounds, "
        f"{args.duration:g} s per server per load; headroom: {podtier.note or 'none'}"
    )
    say(f"podtier: metrics on ({counted:,.0f} reviews counted), info logs ({log_lines:,} lines)")
    say(f"errors (non-200 or socket) over all runs: {errors}")
    say("")
    say(f"/mutate, wrk -t1 -c{args.connections}, keep-alive TLS   median (range) of the rounds")
    for name in ("bare", "podtier"):
        say(
            f"  {name:8} req/s {spread(rps[name], ',.0f'):>30}   "
            f"CPU us/req {spread(cpu[name], '.0f'):>20}   p99 ms {spread(wrk_p99[name], '.2f')}"
        )
    say(
        f"  podtier / bare: {spread(ratio, '.2f')} by req/s, {spread(cpu_ratio, '.2f')} "
        "by CPU per request"
    )
    say("")
    say(f"/mutate at a fixed {args.rate:g} req/s (open loop, 8 connections)")
    for name in ("bare", "podtier"):
        say(f"  {name:8} p99 ms {spread(p99[name], '.2f')}")
    say(f"  podtier / bare p99: {spread(p99_ratio, '.2f')}")
    say("")
    say("pure core in process, one core (reviews per CPU-second, best of 5 short rounds):")
    for webhook, per_second in core.items():
        say(f"  {webhook:9}{per_second:>10,.0f} reviews/s")
    say("")
    say("goals (issue 16), from the medians:")
    median_ratio = statistics.median(ratio)
    say(
        f"  /mutate throughput >= {GOAL_RATIO}x the bare stack: {median_ratio:.2f}x "
        f"-> {verdict(median_ratio >= GOAL_RATIO)} "
        f"(by CPU per request: {statistics.median(cpu_ratio):.2f}x)"
    )
    median_p99 = statistics.median(p99_ratio)
    say(
        f"  p99 at {args.rate:g} req/s <= {GOAL_P99_RATIO}x the bare stack's: {median_p99:.2f}x "
        f"-> {verdict(median_p99 <= GOAL_P99_RATIO)}"
    )
    print("\n".join(out))
    if args.json:
        summary = {"rounds": rounds, "core": core, "load": [load_before, load_after]}
        args.json.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
