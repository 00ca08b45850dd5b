"""SIGTERM under a steady request loop: not ready first, keep answering through the drain,
finish what is in flight, then exit 0. Nothing fails before the drain ends."""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import Server, client_context, free_port, load_review
from tests.webhook.http.reliability import rawhttp

DRAIN_SECONDS = 2.0
CLIENTS = 6
REVIEW = load_review("a")
BODY = json.dumps(REVIEW).encode()
UID = REVIEW["request"]["uid"]
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Call:
    started: float
    ended: float
    status: int | None  # None: the request failed (connection refused, reset, ...)
    error: str = ""


def loop_requests(
    url: str, verify, path: str, method: str, stop: threading.Event, calls: list[Call]
) -> None:
    """One client with its own keep-alive connection, requesting back to back until `stop`."""
    with httpx.Client(base_url=url, verify=verify, timeout=10) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                if method == "POST":
                    reply = client.post(path, content=BODY, headers=JSON)
                    ok = reply.status_code == 200 and reply.json()["response"]["uid"] == UID
                    calls.append(Call(started, time.monotonic(), reply.status_code if ok else -1))
                else:
                    reply = client.get(path)
                    calls.append(Call(started, time.monotonic(), reply.status_code))
            except httpx.HTTPError as err:
                calls.append(Call(started, time.monotonic(), None, repr(err)))
                time.sleep(0.02)
            if method == "GET":
                time.sleep(0.02)


def in_flight_across_the_stop(port: int, cert_dir, send_rest_at: float, result: dict) -> None:
    """A request whose body is half sent before the drain ends and finished after it."""
    data = rawhttp.request("POST", "/mutate", BODY)
    with rawhttp.tls_socket(port, cert_dir, timeout=15) as sock:
        sock.sendall(data[: len(data) - 1000])
        time.sleep(max(0.0, send_rest_at - time.monotonic()))
        sock.sendall(data[len(data) - 1000 :])
        result["sent_rest"] = time.monotonic()
        result["reply"] = rawhttp.read_reply(sock)


@pytest.fixture
def draining_server(cert_dir):
    metrics_port = free_port()
    server = Server(
        cert_dir,
        [
            "--cluster",
            "none",
            "--drain-seconds",
            str(DRAIN_SECONDS),
            "--metrics-port",
            str(metrics_port),
        ],
    )
    server.metrics_url = f"http://127.0.0.1:{metrics_port}"
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_sigterm_under_load_drains_with_no_failed_request(draining_server):
    server = draining_server
    verify = client_context(server.cert_dir)
    stop = threading.Event()
    mutate_calls: list[list[Call]] = [[] for _ in range(CLIENTS)]
    ready_calls: list[Call] = []
    probe_calls: list[Call] = []
    threads = [
        threading.Thread(
            target=loop_requests, args=(server.url, verify, "/mutate", "POST", stop, calls)
        )
        for calls in mutate_calls
    ]
    threads.append(
        threading.Thread(
            target=loop_requests, args=(server.url, verify, "/readyz", "GET", stop, ready_calls)
        )
    )
    threads.append(
        threading.Thread(
            target=loop_requests,
            args=(server.metrics_url, True, "/readyz", "GET", stop, probe_calls),
        )
    )
    for thread in threads:
        thread.start()
    time.sleep(1.0)

    signalled = time.monotonic()
    drain_ends = signalled + DRAIN_SECONDS
    in_flight: dict = {}
    straddler = threading.Thread(
        target=in_flight_across_the_stop,
        args=(server.port, server.cert_dir, drain_ends + 0.5, in_flight),
    )
    # Started well inside the drain, so its connection is accepted before the listener closes.
    threading.Timer(DRAIN_SECONDS - 0.8, straddler.start).start()
    server.process.send_signal(signal.SIGTERM)
    try:
        exit_code = server.process.wait(timeout=DRAIN_SECONDS + 15)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        straddler.join(timeout=15)

    assert exit_code == 0, server.logs()[-2000:]
    every_mutate = sorted((c for calls in mutate_calls for c in calls), key=lambda c: c.started)
    assert len(every_mutate) > 100, "the request loop did not run"

    # Nothing failed that started before the drain ended (a small margin for a request sent
    # on a keep-alive connection in the very instant uvicorn closes it).
    early = [c for c in every_mutate if c.started < drain_ends - 0.1]
    failed = [c for c in early if c.status != 200]
    assert not failed, failed[:5]
    during_drain = [c for c in early if c.started > signalled + 0.2]
    assert len(during_drain) > 20, "requests during the drain should still be answered"

    # Readiness went false first: the probes (TLS and the plain-HTTP side port) see 503 soon
    # after the signal, while /mutate keeps answering 200 after that.
    for probes in (ready_calls, probe_calls):
        before = [c for c in probes if c.ended < signalled]
        assert before and all(c.status == 200 for c in before)
        first_503 = min(c.ended for c in probes if c.status == 503)
        assert signalled < first_503 < drain_ends
        assert any(c.started > first_503 and c.status == 200 for c in every_mutate)

    # A request in flight when the drain ended was finished, not cut.
    assert in_flight["sent_rest"] > drain_ends
    reply = in_flight["reply"]
    assert reply is not None and reply.status == 200
    assert json.loads(reply.body)["response"]["uid"] == REVIEW["request"]["uid"]

    # And then the doors were shut: nothing is served once the process is gone.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/healthz", verify=verify, timeout=2)
