"""The /mutate memo gives exactly `admission.mutate`'s answer: for the first pod of a kind, for
a later pod that differs only in names and per-run labels, under every headroom reply."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.core import admission, review
from podtier.webhook.core.capacity import Borrowed
from podtier.webhook.core.memo import MAX_ANSWERS, AdmissionMemo
from podtier.webhook.core.profile import (
    ProfilesStatus,
    RunRecord,
    StaticProfiles,
    TaskProfile,
    task_key,
)
from podtier.webhook.policy.load import load_policy_text
from tests.conftest import load_review, review_of
from tests.webhook.core.fakes import EXECUTOR_LABELS, POLICY, FakeCapacity, airflow_pod
from tests.webhook.http.reliability.generate import (
    FIXTURE_NAMES,
    JSON_VALUES,
    damaged_fixtures,
    generated_reviews,
)

# The headroom replies a decision can meet: unknown, a node in the first pool, only a later
# pool has room, nothing has room (heavy steps down to medium, or the pod waits).
CAPACITIES = {
    "unknown": None,
    "worker-fits": {"worker": "w-1", "compute-optimized": "c-1", "gpu": "g-1"},
    "only-compute": {"worker": None, "compute-optimized": "c-1", "gpu": "g-1"},
    "only-worker": {"worker": "w-2", "compute-optimized": None, "gpu": None},
    "full": {"worker": None, "compute-optimized": None, "gpu": None},
}


def request_of(body: dict[str, Any]) -> dict[str, Any]:
    return dict(review.decode_review(json.dumps(body).encode()))


def twin(request: dict[str, Any], n: int) -> dict[str, Any]:
    """The same pod as a later run would create it: another uid and name, other run labels."""
    other = copy.deepcopy(request)
    other["uid"] = f"twin-{n}"
    pod = other.get("object")
    if isinstance(pod, dict) and isinstance(pod.get("metadata"), dict):
        metadata = pod["metadata"]
        metadata["name"] = f"pod-{n}"
        for where in ("labels", "annotations"):
            values = metadata.get(where)
            if isinstance(values, dict):
                for key in ("run_id", "try_number", "map_index"):
                    if key in values:
                        values[key] = f"{key}-{n}"
    return other


def fake(name: str) -> FakeCapacity:
    return FakeCapacity(CAPACITIES[name], reason="" if CAPACITIES[name] else "headroom off")


def assert_same(memo_answer: admission.Answer, direct: admission.Answer) -> None:
    assert memo_answer.review == direct.review
    assert memo_answer.outcome == direct.outcome
    assert memo_answer.decision == direct.decision
    assert memo_answer.pod == direct.pod
    assert memo_answer.violations == direct.violations


@pytest.mark.parametrize("capacity", list(CAPACITIES))
@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_every_fixture_gets_the_direct_answer_first_and_as_a_twin(fixture, capacity):
    memo = AdmissionMemo(POLICY)
    first = request_of(load_review(fixture))
    assert_same(memo.mutate(first, fake(capacity)), admission.mutate(first, POLICY, fake(capacity)))
    second = twin(first, 2)
    assert_same(
        memo.mutate(second, fake(capacity)), admission.mutate(second, POLICY, fake(capacity))
    )


def test_a_twin_is_answered_from_the_memo_and_headroom_is_still_asked():
    memo = AdmissionMemo(POLICY)
    first = request_of(load_review("b"))
    memo.mutate(first, fake("worker-fits"))
    capacity = fake("worker-fits")
    answer = memo.mutate(twin(first, 2), capacity)
    assert (memo.hits, memo.misses) == (1, 1)
    assert capacity.asked, "the capacity view was not asked"
    assert answer.review["response"]["uid"] == "twin-2"
    assert answer.pod is not None and answer.pod.name == "pod-2"
    assert answer.decision is not None and answer.decision.node == "w-1"


@pytest.mark.parametrize(
    ("then", "node", "pool"),
    [
        pytest.param("only-worker", "w-2", "worker", id="another-node"),
        pytest.param("only-compute", None, "worker", id="first-pool-full-the-pod-waits"),
        pytest.param("unknown", None, "worker", id="headroom-lost"),
    ],
)
def test_a_new_headroom_reply_gives_the_answer_made_under_it(then, node, pool):
    memo = AdmissionMemo(POLICY)
    first = request_of(load_review("b"))
    memo.mutate(first, fake("worker-fits"))
    second = twin(first, 2)
    answer = memo.mutate(second, fake(then))
    assert_same(answer, admission.mutate(second, POLICY, fake(then)))
    assert answer.decision is not None
    assert (answer.decision.node, answer.decision.pool.name) == (node, pool)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"labels": {"tier": "heavy"}}, id="tier-label"),
        pytest.param({"annotations": {"podtier.io/downgrade": "false"}}, id="annotation"),
        pytest.param({"namespace": "other"}, id="namespace"),
        pytest.param({"resources": {"requests": {"cpu": "3"}}}, id="resources"),
    ],
)
def test_a_pod_that_differs_in_what_the_decision_reads_is_decided_afresh(change):
    memo = AdmissionMemo(POLICY)
    first = request_of(review_of(airflow_pod(annotations={"run_id": "r1"})))
    memo.mutate(first, fake("worker-fits"))
    second = twin(first, 2)
    metadata = second["object"]["metadata"]
    metadata["labels"].update(change.get("labels", {}))
    metadata["annotations"].update(change.get("annotations", {}))
    metadata["namespace"] = change.get("namespace", metadata["namespace"])
    if "resources" in change:
        second["object"]["spec"]["containers"][0]["resources"] = change["resources"]
    answer = memo.mutate(second, fake("worker-fits"))
    assert memo.hits == 0
    assert_same(answer, admission.mutate(second, POLICY, fake("worker-fits")))


def _set(path: tuple[str, ...], value: Any):
    def change(request: dict[str, Any]) -> None:
        target = request["object"]
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_set(("spec", "initContainers"), ""), id="init-containers-empty-string"),
        pytest.param(_set(("spec", "initContainers"), {}), id="init-containers-object"),
        pytest.param(_set(("spec", "initContainers"), [1]), id="init-container-not-object"),
        pytest.param(_set(("metadata", "annotations"), []), id="annotations-a-list"),
        pytest.param(_set(("metadata", "labels", "run_id"), 7), id="volatile-label-a-number"),
        pytest.param(_set(("metadata", "name"), 7), id="name-a-number"),
        pytest.param(_set(("spec", "tolerations"), "x"), id="tolerations-a-string"),
        pytest.param(_set(("spec", "containers", 0, "resources"), []), id="resources-a-list"),
    ],
)
def test_a_broken_twin_of_a_remembered_pod_gets_the_direct_answer(damage):
    memo = AdmissionMemo(POLICY)
    first = request_of(load_review("b"))
    memo.mutate(first, fake("worker-fits"))
    broken = twin(first, 2)
    damage(broken)
    assert_same(
        memo.mutate(broken, fake("worker-fits")),
        admission.mutate(broken, POLICY, fake("worker-fits")),
    )


RETRIES = """
apiVersion: podtier.io/v1alpha1
kind: TierPolicy
metadata: {name: retries}
spec:
  rules:
    - name: second-try-heavy
      match: {labels: {matchLabels: {try_number: "2"}}}
      tier: heavy
"""


def test_a_volatile_key_the_policy_reads_is_part_of_the_key():
    policy = load_policy_text(
        [(str(DEFAULT_POLICY), DEFAULT_POLICY.read_text()), ("retries.yaml", RETRIES)]
    )
    memo = AdmissionMemo(policy)
    labels = {"kubernetes_executor": "True", "try_number": "1"}
    first = request_of(review_of(airflow_pod(labels=labels)))
    retry = request_of(review_of(airflow_pod(labels={**labels, "try_number": "2"}), uid="u-2"))
    assert memo.mutate(first, fake("worker-fits")).decision.tier.name == "medium"
    answer = memo.mutate(retry, fake("worker-fits"))
    assert answer.decision.tier.name == "heavy"
    assert_same(answer, admission.mutate(retry, policy, fake("worker-fits")))


def test_the_memo_is_bounded():
    memo = AdmissionMemo(POLICY)
    for n in range(MAX_ANSWERS + 10):
        pod = airflow_pod(labels={"kubernetes_executor": "True", "task_id": f"t{n}"})
        memo.mutate(request_of(review_of(pod, uid=f"u{n}")), fake("worker-fits"))
    assert memo._stored <= MAX_ANSWERS


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    body=generated_reviews(),
    capacities=st.lists(st.sampled_from(list(CAPACITIES)), min_size=2, max_size=4),
)
def test_generated_pods_get_the_direct_answer(body, capacities):
    try:
        first = request_of(body)
    except review.BadReview:
        return
    memo = AdmissionMemo(POLICY)
    for n, capacity in enumerate(capacities):
        request = first if n == 0 else twin(first, n)
        assert_same(
            memo.mutate(request, fake(capacity)), admission.mutate(request, POLICY, fake(capacity))
        )


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=damaged_fixtures(), capacity=st.sampled_from(list(CAPACITIES)))
def test_damaged_fixtures_get_the_direct_answer_from_a_memo_that_saw_the_intact_ones(
    body, capacity
):
    memo = AdmissionMemo(POLICY)
    for name in FIXTURE_NAMES:
        memo.mutate(request_of(load_review(name)), fake(capacity))
    try:
        request = request_of(body)
    except review.BadReview:
        return
    assert_same(
        memo.mutate(request, fake(capacity)), admission.mutate(request, POLICY, fake(capacity))
    )


# --- with learned profiles ---------------------------------------------------------------


def _learning_cases():  # type: ignore[no-untyped-def]
    from tests.webhook.core.test_learned import ESCALATIONS

    return [pytest.param(*case.values[:3], id=case.id) for case in ESCALATIONS]


@pytest.mark.parametrize(("pod", "view", "policy"), _learning_cases())
def test_with_profiles_every_try_and_run_gets_the_direct_answer(pod, view, policy) -> None:  # type: ignore[no-untyped-def]
    memo = AdmissionMemo(policy)
    notes = pod["metadata"]["annotations"]
    tries = [
        {},
        {"try_number": "1"},
        {"try_number": "3"},
        {"run_id": "scheduled__2026-11-27T05:00:00+00:00"},
        {"map_index": "4"},
        {},
    ]
    for n, change in enumerate(tries):
        this = copy.deepcopy(pod)
        this["metadata"]["annotations"] = {**notes, **change}
        this["metadata"]["name"] = f"try-{n}"
        request = request_of(review_of(this, uid=f"u-{n}"))
        for capacity in ("unknown", "worker-fits"):
            assert_same(
                memo.mutate(request, fake(capacity), None, view),
                admission.mutate(request, policy, fake(capacity), None, view),
            )
    assert memo.hits > 0, "the memo never answered"


def test_a_new_profile_object_is_asked_not_remembered() -> None:
    from tests.webhook.core.test_learned import GI, profiles, retry, run

    memo = AdmissionMemo(POLICY)
    request = request_of(review_of(retry(2)))
    calm = profiles(run(1, oom=False))
    killed = profiles(run(1, limit=4 * GI))
    first = memo.mutate(request, fake("unknown"), None, calm)
    assert first.decision is not None and first.decision.escalation is None
    second = memo.mutate(request, fake("unknown"), None, killed)
    assert second.decision is not None and second.decision.escalation is not None
    assert_same(second, admission.mutate(request, POLICY, fake("unknown"), None, killed))


# --------------------------------------------------------------------------- main's inputs

RETRY_RUN = "scheduled__2026-11-26T05:00:00+00:00"


def executor_try(try_number: int, uid: str) -> dict[str, Any]:
    """A try of one task instance, as the executor writes it (raw ids in annotations)."""
    notes = {**EXECUTOR_LABELS, "run_id": RETRY_RUN, "try_number": str(try_number)}
    return request_of(review_of(airflow_pod(annotations=notes), uid=uid))


def oom_profiles(status: ProfilesStatus | None = None) -> StaticProfiles:
    """The task's profile: its first try was OOMKilled at a 4Gi limit."""
    killed = RunRecord(
        run_id=RETRY_RUN,
        try_number=1,
        map_index=-1,
        exit_code=137,
        reason="OOMKilled",
        oom_killed=True,
        run_seconds=60.0,
        finished_at=1_001.0,
        memory_limit_bytes=4 * 2**30,
        memory_peak_bytes=None,
        cpu_p95_milli=None,
    )
    key = task_key("airflow", EXECUTOR_LABELS["dag_id"], EXECUTOR_LABELS["task_id"])
    profile = TaskProfile(
        namespace="airflow",
        name="sales-etl-extract-orders",
        dag_id=EXECUTOR_LABELS["dag_id"],
        task_id=EXECUTOR_LABELS["task_id"],
        runs=1,
        last_runs=(killed,),
    )
    if status is None:
        return StaticProfiles({key: profile})
    return StaticProfiles({key: profile}, status)


def test_a_retry_after_an_oom_kill_is_escalated_although_its_first_try_is_remembered():
    """try_number is volatile to the memo, but not to the learned profiles."""
    memo = AdmissionMemo(POLICY)
    first = executor_try(1, "u-1")
    memo.mutate(first, fake("worker-fits"), None, StaticProfiles())
    retry = executor_try(2, "u-2")
    answer = memo.mutate(retry, fake("worker-fits"), None, oom_profiles())
    direct = admission.mutate(retry, POLICY, fake("worker-fits"), None, oom_profiles())
    assert_same(answer, direct)
    assert answer.decision is not None and answer.decision.escalation is not None
    assert memo.hits == 0


def test_profiles_not_known_bypass_the_memo_and_the_reason_says_so():
    memo = AdmissionMemo(POLICY)
    memo.mutate(executor_try(1, "u-1"), fake("worker-fits"))
    stale = oom_profiles(ProfilesStatus(False, "profiles are stale: no word for 90s"))
    retry = executor_try(1, "u-2")
    answer = memo.mutate(retry, fake("worker-fits"), None, stale)
    assert_same(answer, admission.mutate(retry, POLICY, fake("worker-fits"), None, stale))
    assert answer.decision is not None
    assert answer.decision.reason.endswith("learned profiles not used: " + stale.status.reason)
    assert memo.hits == 0


def test_a_task_without_a_profile_is_still_answered_from_the_memo():
    memo = AdmissionMemo(POLICY)
    view = StaticProfiles()
    memo.mutate(executor_try(1, "u-1"), fake("worker-fits"), None, view)
    second = twin(executor_try(1, "u-2"), 2)
    answer = memo.mutate(second, fake("worker-fits"), None, view)
    assert_same(answer, admission.mutate(second, POLICY, fake("worker-fits"), None, view))
    assert memo.hits == 1


PREFER = load_policy_text(
    [
        (
            "prefer.yaml",
            DEFAULT_POLICY.read_text().replace(
                "      placement: [compute, worker]",
                "      placement: [compute, worker]\n      placementMode: prefer",
            ),
        )
    ]
)


def test_in_prefer_mode_a_pod_with_its_own_affinity_is_decided_afresh():
    assert PREFER.tiers["heavy"].placement_mode == "prefer"
    memo = AdmissionMemo(PREFER)
    labels = {**EXECUTOR_LABELS, "podtier.io/tier": "heavy"}
    first = request_of(review_of(airflow_pod(labels=labels), uid="u-1"))
    memo.mutate(first, fake("worker-fits"))
    second = twin(first, 2)
    own = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]}
    second["object"]["spec"]["affinity"] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": own}
    }
    answer = memo.mutate(second, fake("worker-fits"))
    assert_same(answer, admission.mutate(second, PREFER, fake("worker-fits")))
    patch = json.loads(base64.b64decode(answer.review["response"]["patch"]))
    affinity = next(op["value"] for op in patch if op["path"] == "/spec/affinity/nodeAffinity")
    assert affinity["requiredDuringSchedulingIgnoredDuringExecution"] == own


class ShareCapacity(FakeCapacity):
    """This replica's share has room only where `share` says; the rest of the cluster, as
    `elsewhere` says (node, room) per node-type."""

    def __init__(
        self, share: dict[str, str | None], elsewhere: dict[str, tuple[str, int] | None]
    ) -> None:
        super().__init__(share)
        self.elsewhere = elsewhere

    def find_elsewhere(self, node_selector, tolerations, requests):
        found = self.elsewhere.get(node_selector.get("node-type", ""))
        return None if found is None else Borrowed(*found)


def test_the_memo_replays_a_placement_outside_this_replicas_share():
    memo = AdmissionMemo(POLICY)
    full = {"worker": None, "compute-optimized": None, "gpu": None}
    nowhere = dict.fromkeys(full)
    first = request_of(load_review("b"))
    memo.mutate(first, ShareCapacity(full, nowhere))
    second = twin(first, 2)
    other_share = ShareCapacity(full, {**nowhere, "worker": ("w-9", 3)})
    answer = memo.mutate(second, other_share)
    assert_same(
        answer, admission.mutate(second, POLICY, ShareCapacity(full, other_share.elsewhere))
    )
    assert answer.decision is not None and answer.decision.node == "w-9"
    assert "of this replica's share" in answer.decision.reason
    # the same node with less room left is another reply: the reason names the room
    third = memo.mutate(twin(first, 3), ShareCapacity(full, {**nowhere, "worker": ("w-9", 1)}))
    assert third.decision is not None and "room for 1 such pods" in third.decision.reason


# --- the key is complete: pods with one key get one direct answer -------------------------

# Pod fields a pod may carry, whether or not the fixtures do; the generator sets them.
SPEC_FIELDS = [
    "affinity",
    "nodeName",
    "priorityClassName",
    "schedulerName",
    "runtimeClassName",
    "topologySpreadConstraints",
    "securityContext",
    "volumes",
    "hostNetwork",
    "serviceAccountName",
    "restartPolicy",
    "overhead",
    "nodeSelector",
    "tolerations",
    "initContainers",
]
CONTAINER_FIELDS = ["image", "env", "args", "command", "resources", "restartPolicy", "ports"]
METADATA_FIELDS = ["labels", "annotations", "ownerReferences", "generateName", "finalizers"]
NAMES = ["tier", "podtier.io/tier", "podtier.io/downgrade", "run_id", "try_number", "dag_id"]
VALUES = st.sampled_from(["heavy", "light", "false", "2", "x", ""]) | JSON_VALUES
# Values a decision would act on, for the fields it reads.
REALISTIC: dict[str, list[Any]] = {
    "tolerations": [[{"key": "workload", "operator": "Equal", "value": "heavy"}], []],
    "nodeSelector": [{"node-type": "gpu"}, {"zone": "a"}],
    "overhead": [{"cpu": "250m"}],
    "initContainers": [[{"name": "init", "resources": {"requests": {"cpu": "3"}}}]],
    "affinity": [
        {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}
                    ]
                }
            }
        }
    ],
}


@st.composite
def changes(draw: st.DrawFn) -> tuple[tuple[Any, ...], Any]:
    """One field of a pod set to a value: a spec field, a container's field, a label or an
    annotation, or a metadata field."""
    where = draw(st.sampled_from(["spec", "container", "label", "annotation", "metadata"]))
    if where == "spec":
        field = draw(st.sampled_from(SPEC_FIELDS))
        return ("spec", field), draw(st.sampled_from(REALISTIC.get(field, [None])) | VALUES)
    if where == "container":
        return ("spec", "containers", 0, draw(st.sampled_from(CONTAINER_FIELDS))), draw(VALUES)
    if where in ("label", "annotation"):
        kind = "labels" if where == "label" else "annotations"
        return ("metadata", kind, draw(st.sampled_from(NAMES))), draw(
            st.sampled_from(["heavy", "2", "false"])
        )
    return ("metadata", draw(st.sampled_from(METADATA_FIELDS))), draw(VALUES)


def changed(request: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    other = copy.deepcopy(request)
    target = other["object"]
    for step in path[:-1]:
        nxt = target.get(step) if isinstance(target, dict) else None
        if nxt is None and isinstance(target, dict):
            nxt = target[step] = {}
        if not isinstance(nxt, dict | list):
            return other
        target = nxt
    if isinstance(target, dict):
        target[path[-1]] = copy.deepcopy(value)
    return other


def _without_identity(answer: admission.Answer) -> Any:
    response = dict(answer.review["response"])
    response.pop("uid")
    return response, answer.outcome, answer.decision


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    fixture=st.sampled_from(FIXTURE_NAMES),
    policy=st.sampled_from([POLICY, PREFER]),
    edits=st.lists(changes(), min_size=1, max_size=3),
    capacity=st.sampled_from(list(CAPACITIES)),
)
def test_pods_with_one_key_get_one_direct_answer(fixture, policy, edits, capacity) -> None:  # type: ignore[no-untyped-def]
    """Whatever the memo leaves out of its key, the decision does not read: a pod changed in
    a field the key does not see gets the direct answer the first pod got (uid aside)."""
    memo = AdmissionMemo(policy)
    first = request_of(load_review(fixture))
    other = first
    for path, value in edits:
        other = changed(other, path, value)
    other["uid"] = "other"
    key, other_key = memo._key(first, None, None), memo._key(other, None, None)
    if key is None or key != other_key:
        return
    direct_first = admission.mutate(first, policy, fake(capacity))
    direct_other = admission.mutate(other, policy, fake(capacity))
    if direct_other.outcome == "unreadable":
        return  # the memo reads the pod's identity per request and sends these the full way
    assert _without_identity(direct_other) == _without_identity(direct_first)


@pytest.mark.parametrize("capacity", ["unknown", "worker-fits"])
@pytest.mark.parametrize("policy", [POLICY, PREFER], ids=["pin", "prefer"])
@pytest.mark.parametrize("fixture", ["b", "h"])
@pytest.mark.parametrize(
    ("field", "value"),
    [pytest.param(f, v, id=f"{f}-{n}") for f, vs in REALISTIC.items() for n, v in enumerate(vs)],
)
def test_a_spec_field_the_decision_reads_changes_the_key(fixture, policy, capacity, field, value):  # type: ignore[no-untyped-def]
    memo = AdmissionMemo(policy)
    first = request_of(load_review(fixture))
    other = changed(first, ("spec", field), value)
    if memo._key(first, None, None) != memo._key(other, None, None):
        return  # the memo tells them apart
    direct_first = admission.mutate(first, policy, fake(capacity))
    direct_other = admission.mutate(other, policy, fake(capacity))
    assert _without_identity(direct_other) == _without_identity(direct_first)
