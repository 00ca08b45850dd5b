"""Wait or spill: a heavy pod whose first pool (compute) is full waits for it when a node there
frees room, or a new node comes, within the tier's maxWaitSeconds; else it spills to worker."""

from __future__ import annotations

import base64
import copy
import json
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import jsonpatch
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.core import admission
from podtier.webhook.core.capacity import PoolOutlook, RunningPod
from podtier.webhook.core.profile import RunRecord, StaticProfiles, TaskProfile, task_key
from podtier.webhook.policy.load import load_policy_text
from tests.conftest import review_of
from tests.webhook.core.fakes import FakeCapacity, airflow_pod

NOW = 1_800_000_000.0
GI = 2**30 * 1000  # milli-units
HEAVY = {"podtier.io/tier": "heavy", "kubernetes_executor": "True", "dag_id": "d", "task_id": "t"}
HEAVY_REQUESTS = {"cpu": 2000, "memory": 4 * GI, "pods": 1000}
FULL = {"cpu": 1000, "memory": 4 * GI, "pods": 100_000}  # 1 cpu free: a heavy pod needs 2
AUTOSCALING = {"maxNodes": 4, "node": {"cpu": "5", "memory": "20Gi"}, "provisionSeconds": 90}


def policy_with(max_wait: float | None, autoscaling: Mapping[str, Any] | None = None) -> Any:
    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    if max_wait is not None:
        doc["spec"]["tiers"]["heavy"]["maxWaitSeconds"] = max_wait
    if autoscaling is not None:
        doc["spec"]["pools"]["compute"]["autoscaling"] = dict(autoscaling)
    return load_policy_text([("waits.yaml", yaml.safe_dump(doc))])


class Cluster(FakeCapacity):
    """Compute full (c-0, c-1), worker with room (w-1); the outlook of compute as given."""

    def __init__(
        self,
        free: Mapping[str, Mapping[str, int]],
        running: tuple[RunningPod, ...] = (),
        waiting: int = 0,
    ) -> None:
        super().__init__({"compute-optimized": None, "worker": "w-1"})
        self.picture = PoolOutlook(NOW, free, running, (HEAVY_REQUESTS,) * waiting)

    def outlook(self, node_selector: Mapping[str, str], tolerations: Any) -> PoolOutlook | None:
        assert node_selector.get("node-type") == "compute-optimized"
        return self.picture


def load_running(started_ago: float, node: str = "c-1") -> RunningPod:
    return RunningPod(
        node,
        task_key("airflow", "etl", "load"),
        NOW - started_ago,
        {"cpu": 2000, "memory": 4 * GI, "pods": 1000},
    )


def record(run_seconds: float | None, oom_killed: bool = False) -> RunRecord:
    return RunRecord(
        "scheduled__1", 1, -1, 137 if oom_killed else 0, "OOMKilled" if oom_killed else "",
        oom_killed, run_seconds, NOW - 3600, None, None, None,
    )  # fmt: skip


def profiles(longest: float, *shorter: float) -> StaticProfiles:
    """etl.load as the learner keeps it: its last runs (the longest `longest` s), and
    `run_seconds` the sum of all 12 it has seen."""
    last = (*(record(s) for s in shorter), record(longest))
    profile = TaskProfile(
        "airflow", "etl-load", "etl", "load", runs=12, run_seconds=12 * longest, last_runs=last
    )
    return StaticProfiles({profile.key: profile})


def mutate(
    policy: Any, capacity: Any, learned: StaticProfiles | None = None, pod: Any = None
) -> tuple[dict[str, Any], Any]:
    pod = pod or airflow_pod(labels=HEAVY)
    answer = admission.mutate(review_of(pod)["request"], policy, capacity, None, learned)
    encoded = answer.review["response"].get("patch")
    ops = json.loads(base64.b64decode(encoded)) if encoded else []
    return jsonpatch.apply_patch(copy.deepcopy(pod), ops), answer


def test_a_pool_that_can_add_a_node_within_the_wait_keeps_the_pod_pinned_there() -> None:
    policy = policy_with(120, AUTOSCALING)
    capacity = Cluster({"c-0": FULL, "c-1": FULL})
    pod, answer = mutate(policy, capacity)
    notes = pod["metadata"]["annotations"]
    assert notes["podtier.io/pool"] == "compute"
    assert "podtier.io/node" not in notes  # no node has its room now
    assert notes["podtier.io/reason"].endswith(
        "pool compute (pinned): waits for compute: it can add a node (~90 s)"
    )
    assert pod["spec"]["nodeSelector"] == {"node-type": "compute-optimized"}
    assert answer.decision.hold_on in ("c-0", "c-1")  # held, so the next pod sees it wait


def test_past_max_wait_seconds_the_pod_spills_and_the_reason_says_why() -> None:
    policy = policy_with(60, AUTOSCALING)
    pod, _ = mutate(policy, Cluster({"c-0": FULL, "c-1": FULL}))
    notes = pod["metadata"]["annotations"]
    assert notes["podtier.io/pool"] == "worker"
    assert (
        "compute frees room in ~90 s at the soonest, over the tier's maxWaitSeconds 60"
        in (notes["podtier.io/reason"])
    )


def test_a_running_task_about_to_finish_is_waited_for_with_its_figures() -> None:
    policy = policy_with(120)  # compute does not autoscale
    capacity = Cluster({"c-0": FULL, "c-1": FULL}, (load_running(320),))
    pod, answer = mutate(policy, capacity, profiles(360))
    assert pod["metadata"]["annotations"]["podtier.io/reason"].endswith(
        "waits for compute: node c-1 frees room in ~40 s "
        "(task etl.load runs up to ~6 min, started 5.3 min ago)"
    )
    assert answer.decision.hold_on == "c-1"


def test_the_longest_recent_run_not_the_mean_says_when_a_task_ends() -> None:
    """etl.load ran 5 and 6 min of late; started 5.3 min ago, it may run 40 s more: within a
    maxWaitSeconds of 60 the pod waits (the mean, 5.5 min, would have said 10 s)."""
    capacity = Cluster({"c-0": FULL, "c-1": FULL}, (load_running(320),))
    pod, _ = mutate(policy_with(60), capacity, profiles(360, 300, 330, 300))
    assert "node c-1 frees room in ~40 s" in pod["metadata"]["annotations"]["podtier.io/reason"]
    pod, _ = mutate(policy_with(30), capacity, profiles(360, 300, 330, 300))
    assert pod["metadata"]["annotations"]["podtier.io/pool"] == "worker"


def test_a_profile_without_its_last_runs_gives_its_mean_run_not_its_summed_run_seconds() -> None:
    """runSeconds is what all 12 runs took together (72 min): a run is 6 min."""
    summed = TaskProfile("airflow", "etl-load", "etl", "load", runs=12, run_seconds=12 * 360)
    capacity = Cluster({"c-0": FULL, "c-1": FULL}, (load_running(320),))
    pod, _ = mutate(policy_with(120), capacity, StaticProfiles({summed.key: summed}))
    assert pod["metadata"]["annotations"]["podtier.io/reason"].endswith(
        "node c-1 frees room in ~40 s (task etl.load runs up to ~6 min, started 5.3 min ago)"
    )


def test_an_oom_killed_run_is_not_how_long_the_task_runs() -> None:
    """A run killed at 20 min says nothing of when a run ends; the 6 min runs do."""
    last = (record(360), record(1200, oom_killed=True))
    profile = TaskProfile(
        "airflow", "etl-load", "etl", "load", runs=2, run_seconds=1560, last_runs=last
    )
    capacity = Cluster({"c-0": FULL, "c-1": FULL}, (load_running(320),))
    pod, _ = mutate(policy_with(120), capacity, StaticProfiles({profile.key: profile}))
    assert "node c-1 frees room in ~40 s" in pod["metadata"]["annotations"]["podtier.io/reason"]


def test_the_sooner_of_a_finishing_task_and_a_new_node_wins() -> None:
    capacity = Cluster({"c-0": FULL, "c-1": FULL}, (load_running(200),))  # ends in 160 s
    pod, _ = mutate(policy_with(300, AUTOSCALING), capacity, profiles(360))
    assert "it can add a node (~90 s)" in pod["metadata"]["annotations"]["podtier.io/reason"]
    capacity = Cluster({"c-0": FULL, "c-1": FULL}, (load_running(350),))  # ends in 10 s
    pod, _ = mutate(policy_with(300, AUTOSCALING), capacity, profiles(360))
    assert "node c-1 frees room in ~10 s" in pod["metadata"]["annotations"]["podtier.io/reason"]


def test_without_max_wait_seconds_nothing_changes() -> None:
    capacity = Cluster({"c-0": FULL, "c-1": FULL}, (load_running(350),))
    pod, answer = mutate(policy_with(None, AUTOSCALING), capacity, profiles(360))
    assert pod["metadata"]["annotations"]["podtier.io/pool"] == "worker"
    assert answer.decision.hold_on is None


def test_pods_already_waiting_take_the_nodes_the_pool_may_still_add() -> None:
    """maxNodes 4, 2 nodes now: room for 2 more nodes of 2 heavy pods; 4 heavy pods already
    wait (held in compute, with no room), so a fifth would wait past the new nodes: it
    spills. With 3 waiting it waits, and says so."""
    cluster = Cluster({"c-0": FULL, "c-1": FULL}, waiting=4)
    pod, _ = mutate(policy_with(120, AUTOSCALING), cluster)
    notes = pod["metadata"]["annotations"]
    assert notes["podtier.io/pool"] == "worker"
    assert "nothing says when compute frees room" in notes["podtier.io/reason"]
    cluster = Cluster({"c-0": FULL, "c-1": FULL}, waiting=3)
    pod, _ = mutate(policy_with(120, AUTOSCALING), cluster)
    assert pod["metadata"]["annotations"]["podtier.io/reason"].endswith(
        "it can add a node (~90 s, behind 3 waiting pods)"
    )


def test_held_pods_that_fit_now_are_about_to_bind_not_waiting() -> None:
    """Two heavy pods held on c-1, which has room for both: they take it; a third waits."""
    roomy = {"cpu": 4000, "memory": 16 * GI, "pods": 100_000}
    cluster = Cluster({"c-0": FULL, "c-1": roomy}, waiting=2)
    pod, _ = mutate(policy_with(120, {**AUTOSCALING, "maxNodes": 3}), cluster)
    assert pod["metadata"]["annotations"]["podtier.io/reason"].endswith("it can add a node (~90 s)")


def test_a_pool_over_its_max_nodes_is_taken_as_unable_to_grow_with_a_warning() -> None:
    policy = policy_with(120, {**AUTOSCALING, "maxNodes": 1})
    pod, answer = mutate(policy, Cluster({"c-0": FULL, "c-1": FULL}))
    assert pod["metadata"]["annotations"]["podtier.io/pool"] == "worker"
    assert (
        "podtier: pool compute has 2 nodes, above its autoscaling.maxNodes 1: it is taken as "
        "unable to grow" in answer.decision.warnings
    )


def test_a_node_shape_too_small_for_the_pod_is_no_reason_to_wait() -> None:
    small = {**AUTOSCALING, "node": {"cpu": "1", "memory": "20Gi"}}
    pod, _ = mutate(policy_with(120, small), Cluster({"c-0": FULL, "c-1": FULL}))
    assert pod["metadata"]["annotations"]["podtier.io/pool"] == "worker"


@pytest.mark.parametrize("run_seconds", [math.nan, math.inf, -5.0, 1e12])
def test_an_absurd_learned_run_time_is_ignored_with_a_warning(run_seconds: float) -> None:
    capacity = Cluster({"c-0": FULL, "c-1": FULL}, (load_running(320),))
    pod, answer = mutate(policy_with(120), capacity, profiles(run_seconds))
    assert pod["metadata"]["annotations"]["podtier.io/pool"] == "worker"
    assert any("learned run time" in w for w in answer.decision.warnings)


def test_a_task_with_no_run_time_learned_is_not_waited_for() -> None:
    capacity = Cluster({"c-0": FULL, "c-1": FULL}, (load_running(320),))
    unseen = TaskProfile("airflow", "etl-load", "etl", "load")  # made, no run finished yet
    pod, answer = mutate(policy_with(120), capacity, StaticProfiles({unseen.key: unseen}))
    assert pod["metadata"]["annotations"]["podtier.io/pool"] == "worker"
    assert answer.decision.warnings == ()


def test_a_task_running_far_past_its_run_time_says_nothing_of_when_it_ends() -> None:
    capacity = Cluster({"c-0": FULL, "c-1": FULL}, (load_running(3600),))  # 10x its 6 min
    pod, answer = mutate(policy_with(120), capacity, profiles(360))
    assert pod["metadata"]["annotations"]["podtier.io/pool"] == "worker"
    assert answer.decision.warnings == ()


def test_a_waiting_prefer_pod_is_pinned_and_mutating_it_again_changes_nothing() -> None:
    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    heavy = doc["spec"]["tiers"]["heavy"]
    heavy["placementMode"], heavy["maxWaitSeconds"] = "prefer", 120
    doc["spec"]["pools"]["compute"]["autoscaling"] = AUTOSCALING
    policy = load_policy_text([("prefer-waits.yaml", yaml.safe_dump(doc))])
    capacity = Cluster({"c-0": FULL, "c-1": FULL})
    template = airflow_pod(labels=HEAVY, node_selector={"node-type": "worker"})
    once, answer = mutate(policy, capacity, pod=template)
    assert answer.decision.mode == "pin"
    assert once["spec"]["nodeSelector"] == {"node-type": "compute-optimized"}
    assert "affinity" not in once["spec"]
    twice, again = mutate(policy, capacity, pod=once)
    assert again.review["response"].get("patch") is None
    assert twice == once


BASE = policy_with(0, AUTOSCALING)


def with_figures(max_wait: float, max_nodes: int, provision: float) -> Any:
    """BASE with these figures, as a parsed policy could hold them (no parse per example)."""
    heavy = replace(BASE.tiers["heavy"], max_wait_seconds=max_wait)
    compute = BASE.pools["compute"]
    assert compute.autoscaling is not None
    scaling = replace(compute.autoscaling, max_nodes=max_nodes, provision_seconds=provision)
    return replace(
        BASE,
        tiers={**BASE.tiers, "heavy": heavy},
        pools={**BASE.pools, "compute": replace(compute, autoscaling=scaling)},
    )


FIGURE = re.compile(r"~([0-9.]+) (s|min|h)\b")


@settings(max_examples=200, deadline=None)
@given(
    max_wait=st.floats(0, 86_400),
    provision=st.floats(0, 86_400),
    max_nodes=st.integers(1, 6),
    run=st.floats(allow_nan=True, allow_infinity=True),
    started_ago=st.floats(-1e6, 1e7),
    waiting=st.integers(0, 6),
)
def test_a_pod_waits_only_for_a_figure_within_its_max_wait(
    max_wait: float,
    provision: float,
    max_nodes: int,
    run: float,
    started_ago: float,
    waiting: int,
) -> None:
    """Whatever the figures, a pod that waits names one finite figure within maxWaitSeconds."""
    policy = with_figures(max_wait, max_nodes, provision)
    capacity = Cluster({"c-0": FULL, "c-1": FULL}, (load_running(started_ago),), waiting)
    _, answer = mutate(policy, capacity, profiles(run))
    decision = answer.decision
    if decision.pool.name != "compute":
        return
    reason = decision.reason
    found = FIGURE.search(reason)
    assert found is not None, reason
    seconds = float(found[1]) * {"s": 1, "min": 60, "h": 3600}[found[2]]
    assert math.isfinite(seconds)
    assert seconds <= max_wait + 0.05 * max(seconds, 60)  # the figure is rounded for people
    if "add a node" in reason:  # the new nodes (2 heavy pods each), and c-1's running pod
        assert (max_nodes - 2) * 2 + 1 > waiting


def test_pods_already_waiting_take_the_room_a_finishing_task_frees_first() -> None:
    """c-1's etl.load ends in ~40 s and frees room for one heavy pod; one heavy pod already
    waits (held in compute): this one would have to wait for the next room, a second run
    ending in ~4 min, over maxWaitSeconds 120: it spills. Without the pod ahead it waits."""
    running = (load_running(320), load_running(120, node="c-0"))
    cluster = Cluster({"c-0": FULL, "c-1": FULL}, running, waiting=1)
    pod, _ = mutate(policy_with(120), cluster, profiles(360))
    notes = pod["metadata"]["annotations"]
    assert notes["podtier.io/pool"] == "worker"
    assert "compute frees room in ~4 min at the soonest" in notes["podtier.io/reason"]
    pod, _ = mutate(policy_with(300), cluster, profiles(360))
    assert pod["metadata"]["annotations"]["podtier.io/reason"].endswith(
        "waits for compute: node c-0 frees room in ~4 min (task etl.load runs up to ~6 min, "
        "started 2.0 min ago), behind 1 waiting pod"
    )


class NoRoomAnywhere(FakeCapacity):
    """Compute and worker both full; each pool's outlook as given."""

    def __init__(self, compute: PoolOutlook, worker: PoolOutlook) -> None:
        super().__init__({"compute-optimized": None, "worker": None})
        self.pictures = {"compute-optimized": compute, "worker": worker}

    def outlook(self, node_selector: Mapping[str, str], tolerations: Any) -> PoolOutlook | None:
        return self.pictures[node_selector["node-type"]]


WORKER_SCALES = {"maxNodes": 6, "node": {"cpu": "16", "memory": "64Gi"}, "provisionSeconds": 90}


def no_room_policy(max_wait: float) -> Any:
    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    doc["spec"]["tiers"]["heavy"]["maxWaitSeconds"] = max_wait
    doc["spec"]["pools"]["worker"]["autoscaling"] = WORKER_SCALES
    return load_policy_text([("waits.yaml", yaml.safe_dump(doc))])


def learned(own_run: float | None, load_run: float = 1200) -> StaticProfiles:
    """etl.load (running on compute) runs `load_run` s; the heavy pod's own task d.t `own_run`."""
    tasks = {"etl": ("load", load_run), "d": ("t", own_run)}
    made = [
        TaskProfile("airflow", f"{dag}-{task}", dag, task, runs=1, run_seconds=run)
        for dag, (task, run) in tasks.items()
        if run is not None
    ]
    return StaticProfiles({profile.key: profile for profile in made})


def full(
    running: tuple[RunningPod, ...] = (), nodes: tuple[str, ...] = ("c-0", "c-1")
) -> PoolOutlook:
    return PoolOutlook(NOW, {node: FULL for node in nodes}, running)


WORKER_FULL = full(nodes=("w-0", "w-1"))


@pytest.mark.parametrize(
    ("own_run", "pool"),
    [(120, "worker"), (240, "worker"), (400, "compute"), (1800, "compute"), (None, "compute")],
)
def test_with_no_room_anywhere_only_a_run_short_enough_waits_for_a_sooner_pool(
    own_run: float | None, pool: str
) -> None:
    """compute frees room in ~10 min (etl.load, 20 min, started 10 min ago), worker can add a
    node in 90 s: the pod saves 510 s by waiting on worker, worth it when that is more than
    maxWaitSeconds (120) plus its own run: a 2 or 4 min run goes, a 7 or 30 min one (or one
    with no run learned) waits for compute, the cheaper pool, as without maxWaitSeconds."""
    capacity = NoRoomAnywhere(full((load_running(600),)), WORKER_FULL)
    pod, answer = mutate(no_room_policy(120), capacity, learned(own_run))
    notes = pod["metadata"]["annotations"]
    assert notes["podtier.io/pool"] == pool
    if pool == "worker":
        assert notes["podtier.io/reason"].endswith(
            "pool worker (pinned): waits for worker: it can add a node (~90 s); compute frees "
            "room in ~10 min at the soonest, over the tier's maxWaitSeconds 120"
        )
        assert pod["spec"]["nodeSelector"] == {"node-type": "worker"}
        assert answer.decision.hold_on in ("w-0", "w-1")  # held on worker while it waits
        assert not any("will wait for capacity" in w for w in answer.decision.warnings)
    else:
        assert pod["spec"]["nodeSelector"] == {"node-type": "compute-optimized"}
        assert any(
            "the pod will wait for capacity in pool compute" in w for w in answer.decision.warnings
        )


@pytest.mark.parametrize(("own_run", "pool"), [(60, "worker"), (120, "worker"), (300, "compute")])
def test_when_nothing_says_when_compute_frees_room_only_a_run_within_max_wait_goes_elsewhere(
    own_run: float, pool: str
) -> None:
    capacity = NoRoomAnywhere(full(), WORKER_FULL)  # nothing runs on compute with a run time
    pod, _ = mutate(no_room_policy(120), capacity, learned(own_run))
    notes = pod["metadata"]["annotations"]
    assert notes["podtier.io/pool"] == pool
    if pool == "worker":
        assert "; nothing says when compute frees room" in notes["podtier.io/reason"]
