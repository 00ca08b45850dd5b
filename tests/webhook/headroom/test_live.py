"""The live watch against the test API server, through the real `kubernetes` client: first
sync, events, a dropped watch, a 410 Gone, and an API outage (stale, then a correct picture)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from podtier.webhook.headroom import LiveHeadroom
from tests.conftest import FakeClock
from tests.kubeapi import KubeAPI
from tests.webhook.headroom.builders import POOLS, node, pod, requests
from tests.webhook.headroom.feeds import live, wait_for

HEAVY = requests(cpu="2", memory="4Gi")


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    with KubeAPI() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def headroom(api: KubeAPI, clock: FakeClock) -> Iterator[LiveHeadroom]:
    api.put(node("w1"))
    api.put(pod("a", "w1", cpu="3"))
    with live(api, clock=clock, page_size=2) as tracker:
        wait_for(tracker.ready, what="first sync")
        yield tracker


def worker_node(
    headroom: LiveHeadroom, clock: FakeClock, wanted: dict[str, int] = HEAVY
) -> str | None:
    with headroom.transaction(clock.now) as view:
        assert view.status.known, view.status.reason
        return view.find_node(*POOLS["worker"], wanted)


def eventually_worker_node(headroom: LiveHeadroom, clock: FakeClock, expected: str | None) -> None:
    wait_for(
        lambda: headroom.status(clock.now).known and worker_node(headroom, clock) == expected,
        what=f"worker pool answering {expected}",
    )


def test_not_ready_until_the_first_sync(api: KubeAPI, clock: FakeClock) -> None:
    api.down()
    with live(api, clock=clock) as headroom:
        wait_for(lambda: "unreachable" in headroom.status(clock.now).reason, what="first failure")
        assert not headroom.ready()
        with headroom.transaction(clock.now) as view:
            assert not view.status.known
            assert "not synced yet" in view.status.reason
            assert view.find_node(*POOLS["worker"], HEAVY) is None
        assert not headroom.wait_ready(0.05)
        api.up()
        assert headroom.wait_ready(5)
        assert headroom.status(clock.now).known


def test_first_sync_lists_in_pages_and_sees_the_cluster(
    headroom: LiveHeadroom, clock: FakeClock
) -> None:
    assert headroom.state.nodes.keys() == {"w1"}
    assert worker_node(headroom, clock) is None  # w1 has 1 cpu free of 4
    assert worker_node(headroom, clock, requests(cpu="1")) == "w1"


def test_watch_events_update_the_picture(
    api: KubeAPI, headroom: LiveHeadroom, clock: FakeClock
) -> None:
    api.put(node("w2"))
    eventually_worker_node(headroom, clock, "w2")
    api.put(pod("b", "w2", cpu="3"))
    eventually_worker_node(headroom, clock, None)
    api.put(pod("a", "w1", cpu="3", phase="Succeeded"))
    eventually_worker_node(headroom, clock, "w1")
    api.put(node("w1", unschedulable=True))  # cordoned
    eventually_worker_node(headroom, clock, None)
    api.remove("Pod", "b", "airflow")
    eventually_worker_node(headroom, clock, "w2")


def test_reservation_released_when_the_pod_shows_up(
    api: KubeAPI, headroom: LiveHeadroom, clock: FakeClock
) -> None:
    api.put(node("w2"))
    eventually_worker_node(headroom, clock, "w2")
    with headroom.transaction(clock.now) as view:
        view.reserve("w2", HEAVY, "airflow/b")
    api.put(pod("b", "w2", cpu="1", memory="1Gi"))
    wait_for(lambda: not headroom.state.reservations, what="reservation released")
    assert headroom.state.free("w2", "cpu") == 3000


def test_dropped_watch_resumes_without_relisting(
    api: KubeAPI, headroom: LiveHeadroom, clock: FakeClock
) -> None:
    wait_for(lambda: api.open_watches == 2, what="both watches open")
    api.drop_watches()
    api.put(node("w2"))  # made while the watches reconnect
    eventually_worker_node(headroom, clock, "w2")
    assert headroom.watcher.relists == {"Node": 1, "Pod": 1}


def test_410_gone_relists_to_a_correct_picture(
    api: KubeAPI, headroom: LiveHeadroom, clock: FakeClock
) -> None:
    api.down()
    api.put(node("w2"))
    api.remove("Pod", "a", "airflow")  # a deletion the watch will never see as an event
    api.put(pod("b", "w2", cpu="3"))
    api.compact()
    api.up()
    eventually_worker_node(headroom, clock, "w1")
    assert headroom.state.pods.keys() == {"airflow/b"}
    assert headroom.watcher.relists["Pod"] == 2


def test_an_outage_goes_stale_then_recovers(
    api: KubeAPI, headroom: LiveHeadroom, clock: FakeClock
) -> None:
    api.down()
    wait_for(
        lambda: (
            "unreachable" in headroom.status(clock.now).reason
            or not headroom._feeds["Pod"].connected
        ),
        what="watch cut",
    )
    clock.now += 30
    assert headroom.status(clock.now).known  # within the 60 s bound the picture is trusted
    clock.now += 31
    with headroom.transaction(clock.now) as view:
        assert not view.status.known
        assert "stale" in view.status.reason and "61s" in view.status.reason
        assert view.find_node(*POOLS["worker"], requests(cpu="1")) is None
    api.put(node("w2"))  # the cluster moves on during the outage
    api.put(pod("a", "w1", cpu="100m"))
    api.up()
    wait_for(lambda: headroom.status(clock.now).known, what="fresh again")
    wait_for(lambda: headroom.state.free("w1", "cpu") == 3900, what="the pod's new size")
    wait_for(lambda: "w2" in headroom.state.nodes, what="the node added during the outage")
    assert worker_node(headroom, clock) == "w2"  # the roomiest node, learnt during the outage


def test_a_silent_watch_resumes_where_it_stopped(api: KubeAPI) -> None:
    api.put(node("w1"))
    with live(api, stale_after=2) as headroom:  # a stream silent for 1 s is dropped and resumed
        wait_for(headroom.ready, what="first sync")
        api.put(node("w2"))
        wait_for(lambda: "w2" in headroom.state.nodes, what="w2 seen")
        last = api.resource_version
        time.sleep(1.5)
        node_watches = [p for m, p in api.requests if "watch=" in p and "/nodes" in p]
        assert len(node_watches) >= 2
        assert f"resourceVersion={last}" in node_watches[-1]  # no replay, no relist
        assert headroom.watcher.relists == {"Node": 1, "Pod": 1}
        assert headroom.status(time.monotonic()).known
