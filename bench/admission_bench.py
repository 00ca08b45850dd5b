"""podtier's admission benchmark, against the bare server stack it runs on.

    /work/venv/bin/python bench/admission_bench.py                 # the full run (about 4 min)
    /work/venv/bin/python bench/admission_bench.py --duration 3    # a quick look (about 1 min)

Needs `wrk` (Debian: `apt-get install -y wrk`). Everything runs on 127.0.0.1 with throwaway
certificates made by `certs.generate`:

1. the pure core in-process (decode → decide → patch → encode), reviews per CPU-second;
2. `podtier serve` (one uvicorn worker, uvloop + httptools, TLS, metrics on, info logs to a
   file) and the bare baseline (`bench/baseline_app.py`: the same stack, decodes the same
   AdmissionReview, answers a canned response), each loaded by `wrk` from a separate process
   over keep-alive TLS with the `b` fixture body (`bench/post_review.lua`): `/mutate` and
   `/validate` at 16 and 64 connections, `--duration` seconds per row, baseline and podtier
   alternating so a noisy machine hurts both alike;
3. latency at a fixed 500 requests/s (`bench/open_loop.py`, an open-loop client: wrk2 is not
   in Debian);
4. the figures, the throughput ratio to the baseline and the issue's targets. Each wrk row
   also shows the server's CPU time per request (from /proc): on a machine shared with other
   work, the ratio of CPU per request says more than the ratio of requests per second.

Headroom: `--cluster snapshot` (the default) serves with a 200-node, 6,000-pod `kubectl get
nodes,pods -A -o json` dump (`bench/cluster_gen.py`) so headroom is in the path: every
`/mutate` finds a node and reserves on it (the same pod each time, so one reservation is
replaced, not piled up). When a build of podtier does not take `--cluster FILE`, the run says
so and uses `--cluster none`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
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
TARGET_RATIO = 0.7
TARGET_P99_AT_RATE_MS = 2.0
TARGET_P99_VS_BASELINE = 3.0
TARGET_CORE = 10_000


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


def start(name: str, args: list[str], port: int, work: Path, ca: Path) -> Server:
    log = work / f"{name}.log"
    with log.open("wb") as out:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
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


def start_podtier(work: Path, cert_dir: Path, cluster: str) -> Server:
    port = free_port()
    base = [
        sys.executable,
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
        return start("podtier", [*base, "--cluster", "none"], port, work, ca)
    snapshot = work / "cluster.json"
    write_dump(str(snapshot), SNAPSHOT_NODES)
    try:
        server = start("podtier", [*base, "--cluster", str(snapshot)], port, work, ca)
        nodes, pods = sum(SNAPSHOT_NODES), sum(SNAPSHOT_NODES) * 30
        server.note = f"{nodes}-node, {pods:,}-pod cluster snapshot (--cluster FILE)"
        return server
    except RuntimeError as err:
        if "not available in this build" not in str(err):
            raise
        server = start("podtier", [*base, "--cluster", "none"], port, work, ca)
        server.note = "none: this build does not take --cluster FILE yet"
        return server


def check_answers(podtier: Server, baseline: Server, body: bytes, ca: Path) -> None:
    trust = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(verify=trust, timeout=5) as client:
        answer = client.post(f"{podtier.url}/mutate", content=body).json()["response"]
        if answer.get("patchType") != "JSONPatch":
            raise RuntimeError(f"podtier did not patch the b fixture: {answer}")
        answer = client.post(f"{baseline.url}/mutate", content=body).json()["response"]
        if answer.get("allowed") is not True:
            raise RuntimeError(f"the baseline did not allow the b fixture: {answer}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    url: str, body_file: Path, connections: int, seconds: float, threads: int
) -> dict[str, Any]:
    args = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "post_review.lua"),
        url,
    ]
    done = subprocess.run(
        args, capture_output=True, text=True, env={**os.environ, "BODY": str(body_file)}
    )
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            result: dict[str, Any] = orjson.loads(line[9:])
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            result["errors"] = (
                sum(result[k] for k in result if k.endswith("_errors")) + result["timeouts"]
            )
            return result
    raise RuntimeError(f"wrk printed no summary: {done.stdout}\n{done.stderr}")


def run_open_loop(
    url: str, ca: Path, body_file: Path, rate: float, seconds: float
) -> dict[str, Any]:
    args = [
        sys.executable,
        str(HERE / "open_loop.py"),
        "--url",
        url,
        "--ca",
        str(ca),
        "--body",
        str(body_file),
        "--rate",
        str(rate),
        "--duration",
        str(seconds),
    ]
    done = subprocess.run(args, capture_output=True, text=True)
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


def ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description="podtier vs the bare stack, over TLS")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds per load (default 20)"
    )
    parser.add_argument(
        "--connections", default="16,64", help="wrk connection counts (default 16,64)"
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--rate", type=float, default=500.0, help="fixed rate, req/s (default 500)")
    parser.add_argument("--cluster", choices=["snapshot", "none"], default="snapshot")
    parser.add_argument(
        "--core-seconds", type=float, default=5.0, help="pure-core time per webhook"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("admission_bench: wrk not found (Debian: apt-get install -y wrk)", file=sys.stderr)
        return 2
    connections = [int(c) for c in args.connections.split(",")]

    load_before = os.getloadavg()
    core = core_rates(args.core_seconds)

    with tempfile.TemporaryDirectory(prefix="podtier-bench-") as tmp:
        work = Path(tmp)
        cert_dir = make_certs(work / "certs")
        ca = cert_dir / "ca.crt"
        body_file = work / "body.json"
        body_file.write_bytes(FIXTURE.read_bytes())
        baseline_port = free_port()
        baseline = start(
            "baseline",
            [
                sys.executable,
                str(HERE / "baseline_app.py"),
                "--cert-dir",
                str(cert_dir),
                "--port",
                str(baseline_port),
            ],
            baseline_port,
            work,
            ca,
        )
        podtier = start_podtier(work, cert_dir, args.cluster)
        try:
            check_answers(podtier, baseline, body_file.read_bytes(), ca)
            for server in (baseline, podtier):  # warm both up: imports, caches, connections
                run_wrk(f"{server.url}/mutate", body_file, 16, 2, args.threads)
            rows = []
            for webhook in ("mutate", "validate"):
                for conns in connections:
                    figures = {}
                    for server in (baseline, podtier):
                        url = f"{server.url}/{webhook}"
                        cpu_before = cpu_seconds(server.process.pid)
                        row = run_wrk(url, body_file, conns, args.duration, args.threads)
                        cpu = cpu_seconds(server.process.pid) - cpu_before
                        row["cpu_us_per_request"] = cpu / max(1, row["requests"]) * 1e6
                        figures[server.name] = row
                    rows.append((webhook, conns, figures))
            fixed = {
                server.name: run_open_loop(
                    f"{server.url}/mutate", ca, body_file, args.rate, args.duration
                )
                for server in (baseline, podtier)
            }
            counted = scrape_requests(podtier, ca)
            log_lines = sum(1 for _ in podtier.log.open("rb"))
        finally:
            stop(podtier)
            stop(baseline)
    load_after = os.getloadavg()

    out: list[str] = []
    say = out.append
    say(f"podtier admission benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    say(
        f"machine: {os.cpu_count()} CPUs, load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after; one uvicorn worker (uvloop + httptools) over TLS"
    )
    say(
        f"body: b fixture ({FIXTURE.stat().st_size:,} bytes); wrk -t{args.threads}, "
        f"{args.duration:g} s per row, keep-alive; "
        f"headroom: {podtier.note or 'none (--cluster none)'}"
    )
    say(f"podtier: metrics on ({counted:,.0f} reviews counted), info logs ({log_lines:,} lines)")
    say("")
    say(
        f"{'webhook':9}{'conns':>6}  {'server':9}{'req/s':>9}"
        f"{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}{'CPU us/req':>12}   podtier vs baseline"
    )
    ratios, p99_ratios, cpu_ratios = [], [], []
    for webhook, conns, figures in rows:
        base, mine = figures["baseline"], figures["podtier"]
        ratio = mine["rps"] / base["rps"]
        p99_ratio = mine["p99_us"] / base["p99_us"]
        cpu_ratio = base["cpu_us_per_request"] / mine["cpu_us_per_request"]
        ratios.append((webhook, conns, ratio))
        cpu_ratios.append((webhook, conns, cpu_ratio))
        if conns == 16:
            p99_ratios.append((webhook, p99_ratio))
        for name, f in figures.items():
            extra = (
                f"   {ratio:.2f}x req/s, {p99_ratio:.1f}x p99, {cpu_ratio:.2f}x by CPU"
                if name == "podtier"
                else ""
            )
            say(
                f"{webhook:9}{conns:>6}  {name:9}{f['rps']:>9,.0f}{ms(f['p50_us']):>9}"
                f"{ms(f['p90_us']):>9}{ms(f['p99_us']):>9}{f['errors']:>8}"
                f"{f['cpu_us_per_request']:>12,.0f}{extra}"
            )
    say("")
    say(
        f"fixed rate {args.rate:g} req/s on /mutate "
        f"(open loop, 8 connections, {args.duration:g} s):"
    )
    say(
        f"  {'server':9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
        f"{'client lag p99 ms':>19}"
    )
    for name, f in fixed.items():
        say(
            f"  {name:9}{ms(f['p50_us']):>9}{ms(f['p90_us']):>9}{ms(f['p99_us']):>9}"
            f"{ms(f['max_us']):>9}{f['errors']:>8}{ms(f['client_lag_p99_us']):>19}"
        )
    say("")
    say("pure core, one core (reviews per CPU-second, best of 5 rounds):")
    for webhook, rate in core.items():
        say(f"  {webhook:9}{rate:>10,.0f} reviews/s")
    say("")
    say("targets:")
    worst = min(ratios, key=lambda r: r[2])
    say(
        f"  throughput >= {TARGET_RATIO}x baseline: "
        f"lowest {worst[2]:.2f}x ({worst[0]}, {worst[1]} conns)"
        f" -> {verdict(worst[2] >= TARGET_RATIO)}"
    )
    worst_cpu = min(cpu_ratios, key=lambda r: r[2])
    say(
        f"    (by server CPU per request, which a busy machine disturbs less: lowest "
        f"{worst_cpu[2]:.2f}x ({worst_cpu[0]}, {worst_cpu[1]} conns))"
    )
    p99 = fixed["podtier"]["p99_us"] / 1000
    say(
        f"  p99 <= {TARGET_P99_AT_RATE_MS} ms at {args.rate:g} req/s: {p99:.2f} ms"
        f" -> {verdict(p99 <= TARGET_P99_AT_RATE_MS)}"
    )
    worst_p99 = max(p99_ratios, key=lambda r: r[1])
    say(
        f"  p99 at 16 conns <= {TARGET_P99_VS_BASELINE}x baseline: highest {worst_p99[1]:.1f}x"
        f" ({worst_p99[0]}) -> {verdict(worst_p99[1] <= TARGET_P99_VS_BASELINE)}"
    )
    say(
        f"  pure core >= {TARGET_CORE:,} reviews/s: mutate {core['mutate']:,.0f}"
        f" -> {verdict(core['mutate'] >= TARGET_CORE)}"
    )
    print("\n".join(out))
    if args.json:
        args.json.write_bytes(
            orjson.dumps(
                {
                    "rows": [
                        {"webhook": w, "connections": c, **{k: v for k, v in f.items()}}
                        for w, c, f in rows
                    ],
                    "fixed_rate": fixed,
                    "core": core,
                    "headroom": podtier.note,
                    "load": [load_before, load_after],
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
