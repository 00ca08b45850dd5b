"""The pure decisions of certificate management: renewal, CA rotation steps, heartbeats,
caBundle patches."""

from __future__ import annotations

import base64
import datetime as dt

import jsonpatch
import pytest

from podtier.certs.generate import fingerprint, make_ca, make_serving_cert
from podtier.certs.plan import Settings, ca_bundle_patch, initial, next_step, trusts, with_heartbeat
from podtier.certs.stored import Heartbeat, StoredCerts, from_secret, to_secret

T0 = dt.datetime(2026, 11, 26, 6, 0, tzinfo=dt.UTC)
SETTINGS = Settings(
    service="podtier",
    namespace="airflow",
    ca_lifetime=dt.timedelta(days=300),
    serving_lifetime=dt.timedelta(days=90),
    propagation=dt.timedelta(minutes=2),
    heartbeat_ttl=dt.timedelta(minutes=5),
)


@pytest.fixture(scope="module")
def start() -> StoredCerts:
    return initial(SETTINGS, T0)


@pytest.mark.parametrize(
    ("days_later", "renewed"),
    [
        pytest.param(0, False, id="fresh"),
        pytest.param(55, False, id="more-than-a-third-left"),
        pytest.param(61, True, id="a-third-left"),
        pytest.param(120, True, id="expired"),
    ],
)
def test_serving_cert_renewed_when_a_third_of_life_is_left(
    start: StoredCerts, days_later: int, renewed: bool
) -> None:
    now = T0 + dt.timedelta(days=days_later)
    step = next_step(start, SETTINGS, now, webhooks_trust_next_ca=False)
    assert (step is not None) is renewed
    if step is not None:
        assert step.stored.ca == start.ca  # same CA: no caBundle change needed
        new = step.stored.serving.cert
        assert new.serial_number != start.serving.cert.serial_number
        assert new.not_valid_after_utc > start.serving.cert.not_valid_after_utc
        new.verify_directly_issued_by(start.ca.cert)


def test_serving_cert_reissued_when_service_names_change(start: StoredCerts) -> None:
    moved = Settings(service="podtier", namespace="other")
    step = next_step(start, moved, T0, webhooks_trust_next_ca=False)
    assert step is not None and "does not cover" in step.reason


def test_ca_rotation_steps(start: StoredCerts) -> None:
    late = T0 + dt.timedelta(days=201)  # a third of the CA's 300 days left
    fresh = make_serving_cert(start.ca, late, dns_names=SETTINGS.dns_names)
    start = start.with_changes(serving=fresh)  # renewed as usual until now
    introduce = next_step(start, SETTINGS, late, webhooks_trust_next_ca=False)
    assert introduce is not None and introduce.stored.next_ca is not None
    a = introduce.stored
    assert a.serving == start.serving  # still signed by the old CA
    assert a.trusted_ca_pems() == [start.ca.cert_pem, a.next_ca.cert_pem]

    # Not before every webhook trusts the new CA, and not before the propagation delay.
    assert next_step(a, SETTINGS, late + dt.timedelta(hours=1), False) is None
    assert next_step(a, SETTINGS, late + dt.timedelta(minutes=1), True) is None
    switch = next_step(a, SETTINGS, late + dt.timedelta(minutes=2), True)
    assert switch is not None
    b = switch.stored
    assert b.ca == a.next_ca and b.previous_ca_pem == start.ca.cert_pem
    b.serving.cert.verify_directly_issued_by(a.next_ca.cert)
    assert set(b.trusted_ca_pems()) == {start.ca.cert_pem, a.next_ca.cert_pem}

    new_fp, old_fp = fingerprint(b.ca.cert), fingerprint(start.ca.cert)
    switched = late + dt.timedelta(minutes=2)
    ttl = SETTINGS.heartbeat_ttl

    def beats(*pairs: tuple[str, str, dt.datetime]) -> StoredCerts:
        return b.with_changes(heartbeats=tuple(Heartbeat(r, f, t) for r, f, t in pairs))

    # Too soon after the switch, even if every beat says "new".
    assert next_step(beats(("a", new_fp, switched)), SETTINGS, switched + ttl / 2, True) is None
    after = switched + ttl + dt.timedelta(seconds=1)
    # A live replica still serving the old CA holds the old CA in the bundle.
    held = beats(("a", new_fp, after), ("b", old_fp, after - dt.timedelta(minutes=1)))
    assert next_step(held, SETTINGS, after, True) is None
    # A beat older than the TTL is a replica that is gone.
    gone = beats(("a", new_fp, after), ("b", old_fp, after - ttl - dt.timedelta(seconds=1)))
    retire = next_step(gone, SETTINGS, after, True)
    assert retire is not None
    assert retire.stored.trusted_ca_pems() == [b.ca.cert_pem]
    assert retire.stored.heartbeats == () and retire.stored.switched_at is None


def test_no_renewal_without_the_ca_key(start: StoredCerts) -> None:
    foreign = start.with_changes(ca=type(start.ca)(start.ca.cert_pem, b""))
    assert next_step(foreign, SETTINGS, T0 + dt.timedelta(days=299), False) is None


@pytest.mark.parametrize(
    ("rotating", "existing", "age", "written"),
    [
        pytest.param(False, None, None, False, id="quiet-no-beat"),
        pytest.param(True, None, None, True, id="rotating-first-beat"),
        pytest.param(True, "same", dt.timedelta(minutes=1), False, id="recent-same"),
        pytest.param(True, "same", dt.timedelta(minutes=3), True, id="half-stale-refresh"),
        pytest.param(True, "other", dt.timedelta(minutes=1), True, id="served-ca-changed"),
    ],
)
def test_heartbeats_are_written_only_when_needed(
    start: StoredCerts,
    rotating: bool,
    existing: str | None,
    age: dt.timedelta | None,
    written: bool,
) -> None:
    served = fingerprint(start.ca.cert)
    stored = start.with_changes(previous_ca_pem=make_ca(T0).cert_pem) if rotating else start
    if existing is not None and age is not None:
        fp = served if existing == "same" else "0" * 64
        stored = stored.with_changes(heartbeats=(Heartbeat("pod-a", fp, T0 - age),))
    result = with_heartbeat(stored, SETTINGS, "pod-a", served, T0)
    assert (result is not None) is written
    if result is not None:
        assert result.heartbeats == (Heartbeat("pod-a", served, T0),)


def test_stored_certs_survive_the_secret_round_trip(start: StoredCerts) -> None:
    stored = start.with_changes(
        next_ca=make_ca(T0),
        next_ca_since=T0,
        heartbeats=(Heartbeat("pod-a", "ab" * 32, T0),),
    )
    secret = to_secret(stored, "podtier-tls", "airflow")
    assert secret["type"] == "kubernetes.io/tls"
    assert {"tls.crt", "tls.key", "ca.crt", "ca.key"} <= set(secret["data"])
    assert from_secret(secret) == stored


def webhook_config(*bundles: str | None) -> dict[str, object]:
    hooks = []
    for index, bundle in enumerate(bundles):
        client_config: dict[str, object] = {"service": {"name": "podtier", "namespace": "airflow"}}
        if bundle is not None:
            client_config["caBundle"] = bundle
        hooks.append({"name": f"hook{index}.podtier.io", "clientConfig": client_config})
    return {"metadata": {"name": "podtier"}, "webhooks": hooks}


def test_ca_bundle_patch_sets_every_webhook_that_differs(start: StoredCerts) -> None:
    bundle = start.trust_bundle()
    wanted = base64.b64encode(bundle).decode()
    config = webhook_config(None, wanted, "c3RhbGU=")
    ops = ca_bundle_patch(config, bundle)
    patched = jsonpatch.apply_patch(config, ops)
    assert [w["clientConfig"]["caBundle"] for w in patched["webhooks"]] == [wanted] * 3
    assert ca_bundle_patch(patched, bundle) == []
    assert trusts(patched, start.ca.cert_pem) and not trusts(config, start.ca.cert_pem)


def test_ca_bundle_patch_does_not_land_on_a_reordered_webhook(start: StoredCerts) -> None:
    config = webhook_config(None, None)
    ops = ca_bundle_patch(config, start.trust_bundle())
    reordered = {**config, "webhooks": list(reversed(config["webhooks"]))}  # type: ignore[call-overload]
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(reordered, ops)


def test_serving_cert_from_initial_covers_service_names(start: StoredCerts) -> None:
    assert next_step(start, SETTINGS, T0, webhooks_trust_next_ca=False) is None
    other = make_serving_cert(start.ca, T0, dns_names=["elsewhere"])
    step = next_step(start.with_changes(serving=other), SETTINGS, T0, False)
    assert step is not None
