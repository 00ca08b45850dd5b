"""End to end: `podtier serve --manage-certs` (a real subprocess) against the test API server:
it creates the Secret, injects every caBundle, serves the Secret's pair, patches a reset
caBundle back, and serves a pair another replica renewed, with zero failed requests."""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from podtier.certs.generate import CertPair, make_serving_cert, service_dns_names
from tests.certs.test_manager import MWC, NS, SECRET, VWC, bundles, secret_data, webhook_config
from tests.certs.tls_helpers import RequestLoop, client_context, https_get
from tests.conftest import listening_podtier
from tests.kubeapi import KubeAPI

ROOT = Path(__file__).resolve().parents[2]
HOST = "podtier.airflow.svc"  # the name kube-apiserver dials


def kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: test, cluster: {{server: '{url}'}}}}]\n"
        "users: [{name: test, user: {token: test}}]\n"
        "contexts: [{name: test, context: {cluster: test, user: test}}]\n"
        "current-context: test\n"
    )
    return path


def wait_until(predicate: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    server = KubeAPI().start()
    server.put(webhook_config("MutatingWebhookConfiguration", MWC, 2))
    server.put(webhook_config("ValidatingWebhookConfiguration", VWC, 1))
    yield server
    server.stop()


@pytest.fixture
def serve(api: KubeAPI, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    # The server listens only after its first reconcile (Secret, files, every caBundle).
    with listening_podtier(
        tmp_path / "certs",
        "--manage-certs",
        "--cert-secret",
        SECRET,
        "--namespace",
        NS,
        "--service",
        "podtier",
        "--mutating-webhook",
        MWC,
        "--validating-webhook",
        VWC,
        "--cert-check-seconds",
        "0.2",
        "--kubeconfig",
        str(kubeconfig(tmp_path / "kubeconfig", api.url)),
    ) as running:
        yield running


def test_manage_certs_end_to_end(api: KubeAPI, serve: tuple[subprocess.Popen[bytes], int]) -> None:
    process, port = serve
    data = secret_data(api)
    assert bundles(api) == [data["ca.crt"]] * 3
    # A client that trusts exactly what kube-apiserver was given, dialing the Service name.
    client = client_context(bundles(api)[0])
    assert wait_until(lambda: https_get(port, client, host=HOST)[0] == 200)
    served = https_get(port, client, host=HOST)[1]
    assert served == x509.load_pem_x509_certificate(data["tls.crt"])

    # Someone resets a caBundle (a `helm upgrade`, GitOps): patched back.
    reset = webhook_config("ValidatingWebhookConfiguration", VWC, 1)
    api.put(reset)
    assert wait_until(lambda: bundles(api) == [data["ca.crt"]] * 3)

    # Another replica renews the serving cert in the Secret: this one serves it, no failures.
    ca = CertPair(data["ca.crt"], data["ca.key"])
    renewed = make_serving_cert(
        ca, dt.datetime.now(dt.UTC), dns_names=service_dns_names("podtier", NS)
    )
    secret = api.get("Secret", SECRET, NS)
    assert secret is not None
    secret["data"]["tls.crt"] = base64.b64encode(renewed.cert_pem).decode()
    secret["data"]["tls.key"] = base64.b64encode(renewed.key_pem).decode()
    with RequestLoop(lambda: https_get(port, client, host=HOST)) as requests:
        assert wait_until(lambda: len(requests.serials) >= 10)
        api.put(secret)
        assert wait_until(lambda: requests.serials[-1] == renewed.cert.serial_number)
        count = len(requests.serials)
        assert wait_until(lambda: len(requests.serials) >= count + 10)
    assert requests.failures == []
    assert process.poll() is None


def test_manage_certs_flags_are_checked(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "podtier.webhook",
            "serve",
            "--cert-dir",
            str(tmp_path),
            "--manage-certs",
            "--cert-secret",
            "podtier-tls",
            "--namespace",
            "Bad_NS",
            "--service",
            "podtier",
            "--mutating-webhook",
            "m",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().endswith("--namespace 'Bad_NS': not a valid Kubernetes name")
    assert "Traceback" not in result.stderr
