"""The profile watch every replica runs (test API server, real client): profiles listed and
followed, hostile objects ignored with one log line each and counted, a missing CRD and a
silent watch make the profiles unknown with the reason, and a relist after 410 Gone."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest
from kubernetes import client
from prometheus_client import REGISTRY

from podtier.webhook.core.profile import task_key
from podtier.webhook.learning.names import profile_name
from podtier.webhook.learning.profiles import profile_object
from podtier.webhook.learning.watch import ProfileStore, ProfileWatch
from tests.conftest import FakeClock
from tests.kubeapi import KubeAPI
from tests.webhook.headroom.feeds import fast_backoff, wait_for
from tests.webhook.learning.test_profiles import PROFILE

KEY = task_key("airflow", "sales_etl", "extract_orders")


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    with KubeAPI() as server:
        yield server


@contextmanager
def watching(api: KubeAPI, clock: FakeClock | None = None) -> Iterator[ProfileStore]:
    configuration = client.Configuration(host=api.url)
    configuration.retries = False
    store = ProfileStore(source="the test API server", stale_after=30, clock=clock or FakeClock())
    watch = ProfileWatch(store, client.ApiClient(configuration), backoff=fast_backoff)
    watch.start()
    try:
        yield store
    finally:
        watch.stop()


def stored(**changes) -> dict:
    obj = profile_object(replace(PROFILE, resource_version="", **changes))
    return obj


def gauge(state: str) -> float | None:
    return REGISTRY.get_sample_value("podtier_profiles", {"state": state})


def test_profiles_are_listed_and_followed(api: KubeAPI) -> None:
    api.put(stored())
    with watching(api) as store:
        wait_for(lambda: store.view().status.known, what="first list")
        first = store.view().get(KEY)
        assert first is not None and first.runs == 7
        api.put(stored(runs=8))
        wait_for(lambda: store.get(KEY) is not None and store.get(KEY).runs == 8, what="update")
        assert first.runs == 7  # a view taken before keeps what it saw
        assert gauge("valid") == 1
        api.remove("TaskProfile", PROFILE.name, "airflow")
        wait_for(lambda: store.get(KEY) is None, what="delete")
        assert store.view().status.known


def test_hostile_profiles_are_ignored_with_one_log_line(
    api: KubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    huge = stored()
    huge["status"]["memoryPeakBytes"] = 10**30
    api.put(huge)
    with caplog.at_level(logging.WARNING, "podtier.learning"), watching(api) as store:
        wait_for(lambda: store.view().status.known, what="first list")
        assert store.get(KEY) is None
        no_ids = stored()
        del no_ids["spec"]
        no_ids["metadata"]["name"] = "no-ids"
        api.put(no_ids)
        garbage = stored()
        garbage["spec"]["dagId"] = "other_dag"
        garbage["metadata"]["name"] = profile_name(
            task_key("airflow", "other_dag", "extract_orders")
        )
        garbage["status"]["lastRuns"] = "everything"
        api.put(garbage)
        wait_for(lambda: store.counts() == (0, 3), what="three ignored")
        assert gauge("ignored") == 3 and gauge("valid") == 0
        api.bookmark()
        api.put(stored())  # the good one replaces the huge one
        wait_for(lambda: store.get(KEY) is not None, what="good profile")
        assert store.counts() == (1, 2)
    lines = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(lines) == 3
    assert any("status.memoryPeakBytes" in line for line in lines)
    assert any("spec: expected an object" in line for line in lines)
    assert any("status.lastRuns" in line for line in lines)


def test_without_the_crd_profiles_are_unknown_and_say_why(api: KubeAPI) -> None:
    api.taskprofiles_api = False
    with watching(api) as store:
        wait_for(lambda: "CRD" in store.view().status.reason, what="the reason")
        assert not store.view().status.known
        api.taskprofiles_api = True
        wait_for(lambda: store.view().status.known, timeout=10, what="CRD installed")


def test_a_silent_watch_makes_profiles_stale(api: KubeAPI) -> None:
    clock = FakeClock()
    api.put(stored())
    with watching(api, clock) as store:
        wait_for(lambda: store.view().status.known, what="first list")
        api.down()
        wait_for(lambda: not store._connected, what="disconnected")
        clock.now += 31
        status = store.view().status
        assert not status.known and "profiles are stale" in status.reason
        assert store.view().get(KEY) is not None  # kept, but the decision will not use them


def test_a_relist_after_gone_drops_what_disappeared(api: KubeAPI) -> None:
    api.put(stored())
    with watching(api) as store:
        wait_for(lambda: store.get(KEY) is not None, what="first list")
        api.compact()
        api.drop_watches()
        with api._lock:
            api._objects.clear()  # gone while the watch was away, no event
        wait_for(lambda: store.get(KEY) is None, what="relisted")
