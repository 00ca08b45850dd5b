"""How fast `podtier serve` picks up a kubelet-style Secret update, and what it costs clients.

Starts `python -m podtier.webhook serve` on 127.0.0.1, runs a request loop (a new TLS connection per
GET /healthz), swaps the cert files the kubelet way N times, and prints: requests made,
failures, and for each swap the time until the first handshake that got the new serial.

    python bench/cert_reload.py [--swaps 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from podtier.certs.generate import make_ca, make_serving_cert  # noqa: E402
from tests.certs.test_serve_reload import free_port  # noqa: E402
from tests.certs.tls_helpers import RequestLoop, client_context, https_get, kubelet_update  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--swaps", type=int, default=10)
    args = parser.parse_args()
    now = dt.datetime.now(dt.UTC)
    ca = make_ca(now)

    def pair() -> tuple[int, dict[str, bytes]]:
        serving = make_serving_cert(ca, now, dns_names=["localhost"], ip_addresses=["127.0.0.1"])
        files = {"ca.crt": ca.cert_pem, "tls.crt": serving.cert_pem, "tls.key": serving.key_pem}
        return serving.cert.serial_number, files

    volume = Path(tempfile.mkdtemp(prefix="podtier-bench-")) / "secret-volume"
    kubelet_update(volume, pair()[1])
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "podtier.webhook",
            "serve",
            "--cert-dir",
            str(volume),
            "--cluster",
            "none",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = client_context(ca.cert_pem)
    for _ in range(300):
        try:
            https_get(port, client)
            break
        except OSError:
            time.sleep(0.1)
    pid = process.pid
    latencies = []
    started = time.monotonic()
    with RequestLoop(lambda: https_get(port, client)) as requests:
        for _ in range(args.swaps):
            time.sleep(0.3)
            serial, files = pair()
            swapped = time.monotonic()
            kubelet_update(volume, files)
            while not requests.serials or requests.serials[-1] != serial:
                time.sleep(0.005)
                if time.monotonic() - swapped > 30:
                    raise SystemExit("new serial not served within 30 s")
            latencies.append(time.monotonic() - swapped)
    elapsed = time.monotonic() - started
    alive = process.poll() is None and process.pid == pid
    process.terminate()
    process.wait(15)
    print(
        f"swaps: {args.swaps}, requests: {len(requests.serials)} in {elapsed:.1f} s "
        f"({len(requests.serials) / elapsed:.0f}/s), failures: {len(requests.failures)}, "
        f"same process: {alive}"
    )
    print(
        f"swap -> new serial served: median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
