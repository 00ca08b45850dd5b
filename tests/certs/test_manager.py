"""Certificate management against the test API server, through the real kubernetes client."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from kubernetes import client

from podtier.certs.kube import KubeCalls
from podtier.certs.manager import CertManager
from podtier.certs.plan import Settings
from podtier.certs.rbac import cluster_role_rules, role_rules
from tests.kubeapi import KubeAPI

T0 = dt.datetime(2026, 11, 26, 6, 0, tzinfo=dt.UTC)
NS, SECRET, MWC, VWC = "airflow", "podtier-tls", "podtier-mutate", "podtier-validate"
SETTINGS = Settings(
    service="podtier",
    namespace=NS,
    ca_lifetime=dt.timedelta(days=300),
    serving_lifetime=dt.timedelta(days=30),
    propagation=dt.timedelta(minutes=2),
    heartbeat_ttl=dt.timedelta(minutes=5),
)


def webhook_config(kind: str, name: str, hooks: int) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": f"{name}-{i}.podtier.io",
                "clientConfig": {"service": {"name": "podtier", "namespace": NS, "path": "/x"}},
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
            }
            for i in range(hooks)
        ],
    }


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    server = KubeAPI().start()
    server.put(webhook_config("MutatingWebhookConfiguration", MWC, 2))
    server.put(webhook_config("ValidatingWebhookConfiguration", VWC, 1))
    server.put(webhook_config("MutatingWebhookConfiguration", "someone-else", 1))
    yield server
    server.stop()


def manager(
    api: KubeAPI, cert_dir: Path, replica: str, kube: KubeCalls | None = None
) -> CertManager:
    api_client = client.ApiClient(client.Configuration(host=api.url))
    return CertManager(
        api_client,
        namespace=NS,
        secret_name=SECRET,
        service="podtier",
        mutating_webhook=MWC,
        validating_webhook=VWC,
        cert_dir=cert_dir,
        clock=lambda: T0,
        replica=replica,
        settings=SETTINGS,
        kube=kube,
    )


def bundles(api: KubeAPI) -> list[bytes]:
    """The caBundle of every webhook in the two configurations podtier manages."""
    found = []
    for kind, name in (
        ("MutatingWebhookConfiguration", MWC),
        ("ValidatingWebhookConfiguration", VWC),
    ):
        config = api.get(kind, name)
        assert config is not None
        for hook in config["webhooks"]:
            found.append(base64.b64decode(hook["clientConfig"].get("caBundle", "")))
    return found


def secret_data(api: KubeAPI) -> dict[str, bytes]:
    secret = api.get("Secret", SECRET, NS)
    assert secret is not None
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def api_server_accepts(bundle: bytes, cert_dir: Path, tmp_path: Path, at: dt.datetime = T0) -> bool:
    """Would kube-apiserver, trusting `bundle`, accept at `at` what this replica serves?"""
    bundle_file = tmp_path / "bundle.pem"
    bundle_file.write_bytes(bundle)
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(bundle_file),
            "-purpose",
            "sslserver",
            "-attime",
            str(int(at.timestamp())),
            "-verify_hostname",
            "podtier.airflow.svc",
            str(cert_dir / "tls.crt"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


def trusted_at(bundle: bytes, cert_dir: Path, at: dt.datetime) -> bool:
    """The same question, asked of cryptography's path validation (fast enough for every step)."""
    store = Store(x509.load_pem_x509_certificates(bundle))
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(at)
        .build_server_verifier(x509.DNSName("podtier.airflow.svc"))
    )
    leaf = x509.load_pem_x509_certificate((cert_dir / "tls.crt").read_bytes())
    try:
        verifier.verify(leaf, [])
    except VerificationError:
        return False
    return True


def test_first_start_creates_secret_writes_files_and_injects_every_webhook(
    api: KubeAPI, tmp_path: Path
) -> None:
    cert_dir = tmp_path / "certs"
    manager(api, cert_dir, "pod-a").ensure(T0)
    secret = api.get("Secret", SECRET, NS)
    assert secret is not None and secret["type"] == "kubernetes.io/tls"
    data = secret_data(api)
    assert {"tls.crt", "tls.key", "ca.crt", "ca.key"} <= set(data)
    assert (cert_dir / "tls.crt").read_bytes() == data["tls.crt"]
    assert (cert_dir / "tls.key").stat().st_mode & 0o777 == 0o600
    assert bundles(api) == [data["ca.crt"]] * 3
    for bundle in bundles(api):
        assert api_server_accepts(bundle, cert_dir, tmp_path)
    other = api.get("MutatingWebhookConfiguration", "someone-else")
    assert other is not None and "caBundle" not in other["webhooks"][0]["clientConfig"]


class RacingCalls(KubeCalls):
    """Real calls; a first `get` that finds nothing waits until the other replica's did too,
    so both go on to create (the race two replicas starting at once can run into)."""

    def __init__(self, api_client: client.ApiClient, barrier: threading.Barrier) -> None:
        super().__init__(api_client)
        self.barrier = barrier
        self.raced = False

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = super().get_secret(namespace, name)
        if found is None and not self.raced:
            self.raced = True
            self.barrier.wait(10)
        return found


def test_two_replicas_starting_at_once_converge_on_one_pair(api: KubeAPI, tmp_path: Path) -> None:
    barrier = threading.Barrier(2)
    replicas = []
    for name in ("pod-a", "pod-b"):
        api_client = client.ApiClient(client.Configuration(host=api.url))
        replicas.append(manager(api, tmp_path / name, name, kube=RacingCalls(api_client, barrier)))
    errors: list[BaseException] = []

    def start(replica: CertManager) -> None:
        try:
            replica.ensure(T0)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert errors == []
    creates = [path for method, path in api.requests if method == "POST"]
    assert len(creates) == 2  # both tried; one got 409 AlreadyExists and read back
    data = secret_data(api)
    for name in ("pod-a", "pod-b"):
        assert (tmp_path / name / "tls.crt").read_bytes() == data["tls.crt"]
        assert (tmp_path / name / "tls.key").read_bytes() == data["tls.key"]
    assert bundles(api) == [data["ca.crt"]] * 3


def test_reset_ca_bundle_is_patched_back_by_the_check_loop(api: KubeAPI, tmp_path: Path) -> None:
    replica = manager(api, tmp_path / "certs", "pod-a")
    replica.interval = dt.timedelta(milliseconds=100)
    replica.ensure(T0)
    wanted = bundles(api)
    assert all(wanted)

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    runner = threading.Thread(target=loop.run_until_complete, args=(replica.run(stop),))
    runner.start()
    try:
        reset = webhook_config("MutatingWebhookConfiguration", MWC, 2)  # as `helm upgrade` would
        reset["webhooks"][1]["clientConfig"]["caBundle"] = base64.b64encode(b"stale").decode()
        api.put(reset)
        assert bundles(api) != wanted
        deadline = time.monotonic() + 10
        while bundles(api) != wanted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bundles(api) == wanted
    finally:
        loop.call_soon_threadsafe(stop.set)
        runner.join(10)
        loop.close()
    patches = [path for method, path in api.requests if method == "PATCH"]
    assert all(MWC in path or VWC in path for path in patches)


def test_serving_cert_renewed_with_a_third_of_life_left(api: KubeAPI, tmp_path: Path) -> None:
    a, b = manager(api, tmp_path / "a", "pod-a"), manager(api, tmp_path / "b", "pod-b")
    a.ensure(T0)
    b.ensure(T0)
    first = secret_data(api)
    a.ensure(T0 + dt.timedelta(days=15))  # half its life left: nothing to do
    assert secret_data(api) == first
    later = T0 + dt.timedelta(days=21)  # under a third of 30 days left
    a.ensure(later)
    b.ensure(later)  # does not renew again: it reads the renewed pair and uses it
    renewed = secret_data(api)
    assert renewed["tls.crt"] != first["tls.crt"] and renewed["ca.crt"] == first["ca.crt"]
    for name in ("a", "b"):
        assert (tmp_path / name / "tls.crt").read_bytes() == renewed["tls.crt"]
        assert api_server_accepts(bundles(api)[0], tmp_path / name, tmp_path, later)


def schedule() -> list[dt.datetime]:
    """Reconcile times: every 5 days up to day 200, then every minute for 40 minutes."""
    days = [T0 + dt.timedelta(days=d) for d in range(0, 201, 5)]
    rotation_start = T0 + dt.timedelta(days=201)
    return days + [rotation_start + dt.timedelta(minutes=m) for m in range(40)]


def test_ca_rotation_keeps_every_replica_trusted_at_every_step(
    api: KubeAPI, tmp_path: Path
) -> None:
    """Two replicas reconcile in turns from creation through renewals and a CA rotation. After
    every single step, every webhook's caBundle accepts the cert each replica serves; the old
    CA leaves the bundle only after both replicas report serving a cert from the new one."""
    replicas = {name: manager(api, tmp_path / name, name) for name in ("pod-a", "pod-b")}
    old_ca, sizes = None, []
    for now in schedule():
        for name, replica in replicas.items():
            replica.ensure(now)
            for bundle in set(bundles(api)):
                for other in replicas:
                    if (tmp_path / other / "tls.crt").exists():
                        assert trusted_at(bundle, tmp_path / other, now), (
                            f"{now}: {other}'s cert not trusted after {name}'s step"
                        )
        old_ca = old_ca or secret_data(api)["ca.crt"]
        sizes.append((now, len(re.findall(rb"BEGIN CERTIFICATE", bundles(api)[0]))))
    data = secret_data(api)
    new_ca = x509.load_pem_x509_certificate(data["ca.crt"])
    assert data["ca.crt"] != old_ca
    overlap = [now for now, size in sizes if size == 2]
    assert overlap, "the caBundle never carried both CAs"
    # Introduce, wait `propagation` (2 min), switch, wait `heartbeat_ttl` (5 min), retire.
    assert overlap[-1] - overlap[0] >= dt.timedelta(minutes=7)
    assert sizes[-1][1] == 1 and bundles(api) == [data["ca.crt"]] * 3
    for name in replicas:
        served = x509.load_pem_x509_certificate((tmp_path / name / "tls.crt").read_bytes())
        served.verify_directly_issued_by(new_ca)
    secret = api.get("Secret", SECRET, NS)
    assert secret is not None
    annotations = secret["metadata"].get("annotations") or {}
    assert not [k for k in annotations if k.startswith("served.podtier.io/")]


def test_old_ca_stays_while_a_replica_still_serves_it(api: KubeAPI, tmp_path: Path) -> None:
    stuck_cert: list[x509.Certificate] = []
    a = manager(api, tmp_path / "a", "pod-a")
    b = manager(api, tmp_path / "b", "pod-b")
    b.served = lambda: stuck_cert[0] if stuck_cert else None  # its reloader never reloads
    for now in schedule()[:-40]:
        a.ensure(now)
        b.ensure(now)
    stuck_cert.append(x509.load_pem_x509_certificate((tmp_path / "b" / "tls.crt").read_bytes()))
    for minute in range(60):
        now = T0 + dt.timedelta(days=201, minutes=minute)
        a.ensure(now)
        b.ensure(now)
    assert len(re.findall(rb"BEGIN CERTIFICATE", bundles(api)[0])) == 2
    assert api_server_accepts(bundles(api)[0], tmp_path / "a", tmp_path, now)


def test_broken_secret_is_replaced_keeping_its_type(api: KubeAPI, tmp_path: Path) -> None:
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": SECRET, "namespace": NS},
            "data": {"tls.crt": base64.b64encode(b"junk").decode(), "tls.key": "", "ca.crt": ""},
        }
    )
    manager(api, tmp_path / "certs", "pod-a").ensure(T0)
    assert api_server_accepts(bundles(api)[0], tmp_path / "certs", tmp_path)
    secret = api.get("Secret", SECRET, NS)
    assert secret is not None and secret["type"] == "Opaque"  # type is immutable in Kubernetes


RULE_PATHS = {
    "secrets": re.compile(rf"^/api/v1/namespaces/{NS}/secrets(?:/(?P<name>[^/?]+))?"),
    "mutatingwebhookconfigurations": re.compile(
        r"^/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/(?P<name>[^/?]+)"
    ),
    "validatingwebhookconfigurations": re.compile(
        r"^/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/(?P<name>[^/?]+)"
    ),
}
VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def allowed(method: str, path: str, rules: list[dict[str, Any]]) -> bool:
    for rule in rules:
        for resource in rule["resources"]:
            match = RULE_PATHS[resource].match(path)
            if not match or VERBS[method] not in rule["verbs"]:
                continue
            names = rule.get("resourceNames")
            if names is None or match.group("name") in names:
                return True
    return False


def test_every_call_fits_the_least_rbac(api: KubeAPI, tmp_path: Path) -> None:
    rules = role_rules(SECRET) + cluster_role_rules(MWC, VWC)
    replicas = [manager(api, tmp_path / n, n) for n in ("pod-a", "pod-b")]
    for now in schedule():  # creation, renewals and a whole CA rotation
        for replica in replicas:
            replica.ensure(now)
    assert len(api.requests) > 50
    refused = [(m, p) for m, p in api.requests if not allowed(m, p, rules)]
    assert refused == []
    assert {VERBS[m] for m, _ in api.requests} == {"get", "create", "update", "patch"}


def test_a_ca_podtier_does_not_own_is_injected_but_never_renewed(
    api: KubeAPI, tmp_path: Path
) -> None:
    replica = manager(api, tmp_path / "certs", "pod-a")
    replica.ensure(T0)
    secret = api.get("Secret", SECRET, NS)
    assert secret is not None
    del secret["data"]["ca.key"]  # as if someone else's CA signed the pair
    api.put(secret)
    later = T0 + dt.timedelta(days=25)  # serving cert due for renewal
    replica.ensure(later)
    after = secret_data(api)
    assert "ca.key" not in after
    assert after["tls.crt"] == (tmp_path / "certs" / "tls.crt").read_bytes()
    assert after["tls.crt"] == base64.b64decode(secret["data"]["tls.crt"])
    assert bundles(api) == [after["ca.crt"]] * 3
