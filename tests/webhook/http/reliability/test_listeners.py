"""The admission handlers are served over TLS only; the plain-HTTP side port (--metrics-port)
serves /metrics, /healthz and /readyz, and nothing else."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.conftest import Server, free_port, load_review

REVIEW = load_review("a")


@pytest.fixture(scope="module")
def split_server(cert_dir):
    metrics_port = free_port()
    server = Server(cert_dir, ["--cluster", "none", "--metrics-port", str(metrics_port)])
    server.metrics_url = f"http://127.0.0.1:{metrics_port}"
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["/mutate", "/validate", "/healthz"])
def test_plain_http_on_the_tls_port_gets_no_http_answer(split_server, path):
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(json.dumps(REVIEW))}\r\n\r\n{json.dumps(REVIEW)}"
    ).encode()
    with socket.create_connection(("127.0.0.1", split_server.port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert b"HTTP/" not in received and b"AdmissionReview" not in received
    with pytest.raises(httpx.TransportError):
        httpx.post(f"http://127.0.0.1:{split_server.port}{path}", json=REVIEW, timeout=5)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/metrics", 200, id="metrics"),
        pytest.param("GET", "/healthz", 200, id="healthz"),
        pytest.param("GET", "/readyz", 200, id="readyz"),
        pytest.param("POST", "/mutate", 404, id="mutate"),
        pytest.param("POST", "/validate", 404, id="validate"),
        pytest.param("GET", "/mutate", 404, id="get-mutate"),
    ],
)
def test_side_port_serves_health_and_metrics_only(split_server, method, path, status):
    reply = httpx.request(method, split_server.metrics_url + path, json=REVIEW, timeout=5)
    assert reply.status_code == status
    assert b"AdmissionReview" not in reply.content
    if status == 404:
        assert reply.json() == {"error": f"no such endpoint: {path}", "code": 404}


def test_side_port_metrics_count_what_the_tls_port_answered(split_server):
    assert split_server.post("/mutate", REVIEW).status_code == 200
    text = httpx.get(split_server.metrics_url + "/metrics", timeout=5).text
    line = next(
        (
            line
            for line in text.splitlines()
            if line.startswith("podtier_admission_requests_total{")
            and 'webhook="mutate"' in line
            and 'outcome="patched"' in line
        ),
        None,
    )
    assert line is not None, text[:2000]
    assert float(line.rsplit(" ", 1)[1]) >= 1
