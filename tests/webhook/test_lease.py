"""Leader election on a real `coordination.k8s.io/v1` Lease in the test API server: one holder
at a time, renewals, takeover after expiry (on the follower's own clock), 409 races, release."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from podtier.webhook.insight.facts import parse_time
from podtier.webhook.lease import LeaderLease
from tests.conftest import FakeClock
from tests.kubeapi import KubeAPI


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    with KubeAPI() as server:
        yield server


def lease_for(api: KubeAPI, identity: str, clock: FakeClock) -> LeaderLease:
    configuration = client.Configuration(host=api.url)
    configuration.retries = False
    return LeaderLease(
        client.ApiClient(configuration),
        name="podtier-cleanup",
        namespace="podtier",
        identity=identity,
        duration=15,
        clock=clock,
    )


def holder(api: KubeAPI) -> str:
    lease = api.get("Lease", "podtier-cleanup", "podtier")
    assert lease is not None
    return str(lease["spec"]["holderIdentity"])


def test_first_comer_creates_and_holds_the_lease_the_other_follows(api: KubeAPI) -> None:
    clock = FakeClock(100.0)
    a, b = lease_for(api, "podtier-a", clock), lease_for(api, "podtier-b", clock)
    assert a.ensure() is True
    assert b.ensure() is False
    lease = api.get("Lease", "podtier-cleanup", "podtier")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "podtier-a"
    assert lease["spec"]["leaseDurationSeconds"] == 15
    assert parse_time(lease["spec"]["renewTime"]) is not None
    assert (a.is_leader(), b.is_leader()) == (True, False)


def test_a_renewing_holder_keeps_the_lease(api: KubeAPI) -> None:
    clock = FakeClock(100.0)
    a, b = lease_for(api, "podtier-a", clock), lease_for(api, "podtier-b", clock)
    assert a.ensure()
    for _ in range(10):  # 10 x 5 s = 50 s, far past one lease duration
        clock.now += 5
        assert a.ensure() is True
        assert b.ensure() is False
    assert holder(api) == "podtier-a"


def test_the_follower_takes_over_once_the_holder_stops_renewing(api: KubeAPI) -> None:
    clock = FakeClock(100.0)
    a, b = lease_for(api, "podtier-a", clock), lease_for(api, "podtier-b", clock)
    assert a.ensure()
    assert not b.ensure()  # b first sees the record now
    clock.now += 10  # a counts itself leader only 2/3 of the duration after renewing
    assert not a.is_leader()
    assert not b.ensure()  # 10 s < 15 s since b saw the record change
    clock.now += 5.5
    assert b.ensure() is True
    assert holder(api) == "podtier-b"
    lease = api.get("Lease", "podtier-cleanup", "podtier")
    assert lease is not None and lease["spec"]["leaseTransitions"] == 1
    assert a.ensure() is False  # a is back: b holds a fresh lease now


def test_of_two_racing_writes_one_gets_409_and_follows(api: KubeAPI) -> None:
    clock = FakeClock(100.0)
    a, b = lease_for(api, "podtier-a", clock), lease_for(api, "podtier-b", clock)
    assert a.ensure()
    stale = api.get("Lease", "podtier-cleanup", "podtier")
    assert stale is not None
    clock.now += 4
    assert a.try_acquire_or_renew()  # the resourceVersion moves on
    # b writes on top of the old read: the API server answers 409 Conflict
    stale["spec"]["holderIdentity"] = "podtier-b"
    with pytest.raises(client.ApiException) as err:
        b.api.replace_namespaced_lease("podtier-cleanup", "podtier", body=stale)
    assert err.value.status == 409
    assert holder(api) == "podtier-a"


def test_release_hands_over_at_once(api: KubeAPI) -> None:
    clock = FakeClock(100.0)
    a, b = lease_for(api, "podtier-a", clock), lease_for(api, "podtier-b", clock)
    assert a.ensure()
    assert not b.ensure()
    a.release()
    assert not a.is_leader()
    assert b.ensure() is True  # no wait for expiry
    assert holder(api) == "podtier-b"
