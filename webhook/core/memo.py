"""A memo of `/mutate` answers for pods that look alike to the decision. Pure: no clock, no I/O.

Airflow pods of one task template differ in their names and in a few per-run labels and
annotations (`VOLATILE_KEYS`). Parsing such a pod, choosing its tier, sizing it and writing its
patch give the same result each time; only headroom (and the learned profiles) change.

    request ─► key: every input the decision reads from it, as bytes ─► the key's replay tree
      ├─ replay: ask the current views the questions the first such pod asked, in order
      │  (headroom: status, find_node, find_elsewhere; profiles: status, get; and, once a
      │  task profile was found, the pod's per-run labels, which OOM escalation reads); where
      │  every reply is one seen before, the answer made under those replies is this pod's
      │  too (with its own uid and names)
      └─ a new key, or a reply not seen before: `admission.mutate` on recording views, whose
         questions, replies and answer are stored

Headroom and profiles are consulted on every request, and every answer is the one
`admission.mutate` gives for these inputs and these replies: the decision is a pure function of
both. A memo belongs to one policy; the edge makes a new one when the policy is reloaded.

Adding an input to the decision is one line in `_key` (a pod field), or one more recorded
question (a view), or one key taken out of `VOLATILE_KEYS`. Answers share their parts with the
memo: treat them as read-only.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from podtier.webhook.core import review
from podtier.webhook.core.admission import Answer, mutate
from podtier.webhook.core.capacity import Borrowed, CapacityView, HeadroomStatus, PoolOutlook
from podtier.webhook.core.decide import Decision
from podtier.webhook.core.escalation_seal import EscalationSeal
from podtier.webhook.core.pod import PodError, PodView, pod_identity, with_identity
from podtier.webhook.core.policy import Policy
from podtier.webhook.core.profile import ProfilesStatus, ProfilesView, TaskKey, TaskProfile
from podtier.webhook.core.tiering import ESCALATION_SEAL_ANNOTATION

# Labels and annotations that differ between runs of one task: left out of the key, and asked
# as a question of their own once the decision has found a task profile (OOM escalation reads
# them). Every other label and annotation is part of the key; one the policy names anywhere (a
# selector, a rule, a tier key) is kept in the key all the same.
VOLATILE_KEYS = frozenset({"run_id", "try_number", "map_index"})

MAX_ANSWERS = 8192  # stored answers over all keys; beyond it the memo starts afresh

# The questions replayed: (what is asked, its arguments).
STATUS = "status"  # capacity.status
FIND = "find_node"  # capacity.find_node(selector, tolerations, requests)
ELSEWHERE = "find_elsewhere"  # capacity.find_elsewhere(selector, tolerations, requests)
PROFILES_STATUS = "profiles.status"
PROFILE = "profiles.get"  # profiles.get(task key)
RUN = "run"  # the pod's VOLATILE_KEYS values
Question = tuple[str, Any]


@dataclass(frozen=True, slots=True)
class _Stored:
    outcome: str
    response: review.AdmissionResponse  # the first pod's: its uid is replaced
    pod: PodView  # likewise its names, labels and annotations
    decision: Decision | None


@dataclass(slots=True)
class _Step:
    """One question, and what follows each reply seen to it."""

    question: Question
    replies: dict[Hashable, _Step | _Stored]


class _Same:
    """A reply compared by identity (a TaskProfile: frozen, but holding dicts). The step keeps
    the object, so its id is not reused while the step lives."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


class AdmissionMemo:
    def __init__(self, policy: Policy, seal: EscalationSeal | None = None) -> None:
        self.policy = policy
        self.seal = seal
        named = repr(policy)
        # Volatile keys the policy does not name, blanked out of the key (absent and present
        # are the same to the decision).
        self._blank = dict.fromkeys(sorted(key for key in VOLATILE_KEYS if key not in named))
        self._trees: dict[bytes, _Step | _Stored] = {}
        self._stored = 0
        self.hits = 0
        self.misses = 0

    def mutate(
        self,
        request: Mapping[str, Any],
        capacity: CapacityView,
        namespace_labels: Mapping[str, str] | None = None,
        profiles: ProfilesView | None = None,
    ) -> Answer:
        """What `admission.mutate(request, policy, capacity, namespace_labels, profiles)`
        answers."""
        key = self._key(request, namespace_labels, profiles)
        if key is None:
            return mutate(request, self.policy, capacity, namespace_labels, profiles, self.seal)
        tree = self._trees.get(key)
        if tree is not None:
            stored = _replay(tree, _Asker(capacity, profiles, request))
            if stored is not None:
                answer = _answer_for(stored, request, namespace_labels)
                if answer is not None:
                    self.hits += 1
                    return answer
        self.misses += 1
        asked: list[tuple[Question, Hashable]] = []
        recorder = _CapacityRecorder(capacity, asked)
        answer = mutate(
            request,
            self.policy,
            recorder,
            namespace_labels,
            None if profiles is None else _ProfilesRecorder(profiles, asked, request),
            self.seal,
        )
        if (
            answer.pod is not None
            and answer.outcome in ("patched", "unchanged")
            and not recorder.timely
        ):
            self._store(key, asked, answer)
        return answer

    def _key(
        self,
        request: Mapping[str, Any],
        namespace_labels: Mapping[str, str] | None,
        profiles: ProfilesView | None,
    ) -> bytes | None:
        """Every input of the decision, one line each; None for a request the memo leaves to
        `admission.mutate` (not a Pod CREATE, or not in the shape of one)."""
        kind = request.get("kind")
        if type(kind) is not dict or kind.get("kind") != "Pod" or kind.get("group") != "":
            return None
        if request.get("operation") != "CREATE" or request.get("subResource"):
            return None
        pod = request.get("object")
        metadata = pod.get("metadata") if type(pod) is dict else None
        spec = pod.get("spec") if type(pod) is dict else None
        if type(metadata) is not dict or type(spec) is not dict:
            return None
        labels = metadata.get("labels")
        annotations = metadata.get("annotations")
        containers = spec.get("containers")
        init = spec.get("initContainers")
        if (
            type(labels) is not dict
            or (annotations is not None and type(annotations) is not dict)
            or type(containers) is not list
            or (init is not None and type(init) is not list)
        ):
            return None
        if annotations is not None and ESCALATION_SEAL_ANNOTATION in annotations:
            return None  # the seal binds the run ids the key leaves out: always decided afresh
        blank = self._blank
        try:
            return orjson.dumps(
                (
                    # where: rules match the namespace and its labels
                    str(metadata.get("namespace") or request.get("namespace") or ""),
                    namespace_labels,
                    # Airflow selectors, tier keys, rules, podtier's own annotations
                    {**labels, **blank},
                    None if annotations is None else {**annotations, **blank},
                    # tier, sizing, requests and the patch
                    [(c.get("name"), c.get("resources")) for c in containers],
                    None
                    if init is None
                    else [
                        (c.get("name"), c.get("resources"), c.get("restartPolicy")) for c in init
                    ],
                    spec.get("overhead"),
                    # placement and the patch (prefer mode merges into the pod's affinity)
                    spec.get("nodeSelector"),
                    spec.get("tolerations"),
                    spec.get("affinity"),
                    # learning on or off (the profiles themselves are asked, not keyed)
                    profiles is not None,
                )
            )
        except (AttributeError, TypeError):  # a container that is not an object, not plain JSON
            return None

    def _store(self, key: bytes, asked: list[tuple[Question, Hashable]], answer: Answer) -> None:
        assert answer.pod is not None
        if self._stored >= MAX_ANSWERS:
            self._trees.clear()
            self._stored = 0
        stored = _Stored(answer.outcome, answer.review["response"], answer.pod, answer.decision)
        self._stored += 1
        if not asked:
            self._trees[key] = stored
            return
        tree = self._trees.get(key)
        if not isinstance(tree, _Step) or tree.question != asked[0][0]:
            tree = self._trees[key] = _step(asked[0][0])
        step = tree
        for i, (_, reply) in enumerate(asked):
            if i + 1 == len(asked):
                step.replies[reply] = stored
                return
            question = asked[i + 1][0]
            next_step = step.replies.get(reply)
            if not isinstance(next_step, _Step) or next_step.question != question:
                next_step = step.replies[reply] = _step(question)
            step = next_step


class _CapacityRecorder:
    """A CapacityView that passes every question on, and notes it with its reply."""

    def __init__(self, view: CapacityView, asked: list[tuple[Question, Hashable]]) -> None:
        self._view = view
        self._asked = asked
        self.timely = False  # the decision read the outlook: its answer is not kept

    @property
    def status(self) -> HeadroomStatus:
        status = self._view.status
        self._asked.append(((STATUS, None), status))
        return status

    def find_node(
        self,
        node_selector: Mapping[str, str],
        tolerations: Sequence[Mapping[str, Any]],
        requests: Mapping[str, int],
    ) -> str | None:
        node = self._view.find_node(node_selector, tolerations, requests)
        self._asked.append(((FIND, (node_selector, tolerations, requests)), node))
        return node

    def find_elsewhere(
        self,
        node_selector: Mapping[str, str],
        tolerations: Sequence[Mapping[str, Any]],
        requests: Mapping[str, int],
    ) -> Borrowed | None:
        room = self._view.find_elsewhere(node_selector, tolerations, requests)
        self._asked.append(((ELSEWHERE, (node_selector, tolerations, requests)), room))
        return room

    def outlook(
        self, node_selector: Mapping[str, str], tolerations: Sequence[Mapping[str, Any]]
    ) -> PoolOutlook | None:
        """Passed on, and the answer not kept: it depends on the moment (`PoolOutlook.at`)."""
        self.timely = True
        return self._view.outlook(node_selector, tolerations)

    def reserve(self, node: str, requests: Mapping[str, int], key: str) -> None:
        raise AssertionError("the decision does not reserve: the edge does, after it")


class _ProfilesRecorder:
    """A ProfilesView that passes every question on and notes it with its reply; once a task
    profile is found, it notes the pod's per-run labels too (the escalation reads them)."""

    def __init__(
        self,
        view: ProfilesView,
        asked: list[tuple[Question, Hashable]],
        request: Mapping[str, Any],
    ) -> None:
        self._view = view
        self._asked = asked
        self._request = request

    @property
    def status(self) -> ProfilesStatus:
        status = self._view.status
        self._asked.append(((PROFILES_STATUS, None), status))
        return status

    def get(self, key: TaskKey) -> TaskProfile | None:
        profile = self._view.get(key)
        self._asked.append(((PROFILE, key), None if profile is None else _Same(profile)))
        if profile is not None:
            self._asked.append(((RUN, None), _run(self._request)))
        return profile


class _Asker:
    """Asks a recorded question of the current views (and request)."""

    __slots__ = ("capacity", "profiles", "request")

    def __init__(
        self,
        capacity: CapacityView,
        profiles: ProfilesView | None,
        request: Mapping[str, Any],
    ) -> None:
        self.capacity = capacity
        self.profiles = profiles
        self.request = request

    def reply(self, question: Question) -> Hashable:
        what, args = question
        if what == FIND:
            return self.capacity.find_node(*args)
        if what == ELSEWHERE:
            return self.capacity.find_elsewhere(*args)
        if what == STATUS:
            return self.capacity.status
        profiles = self.profiles
        if profiles is None:  # not asked without profiles: the key says learning is on
            return _NOT_ASKED
        if what == PROFILE:
            profile = profiles.get(args)
            return None if profile is None else _Same(profile)
        if what == PROFILES_STATUS:
            return profiles.status
        return _run(self.request)


_NOT_ASKED = object()


def _run(request: Mapping[str, Any]) -> bytes:
    """The pod's VOLATILE_KEYS values, labels and annotations, as one reply."""
    metadata = request["object"]["metadata"]
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    keys = sorted(VOLATILE_KEYS)
    return orjson.dumps([[labels.get(k) for k in keys], [annotations.get(k) for k in keys]])


def _step(question: Question) -> _Step:
    """A new step for `question`, with a copy of its arguments (parts of them are the
    request's own objects)."""
    return _Step(copy.deepcopy(question), {})


def _replay(tree: _Step | _Stored, asker: _Asker) -> _Stored | None:
    node = tree
    while isinstance(node, _Step):
        following = node.replies.get(asker.reply(node.question))
        if following is None:
            return None
        node = following
    return node


def _answer_for(
    stored: _Stored, request: Mapping[str, Any], namespace_labels: Mapping[str, str] | None
) -> Answer | None:
    """The stored answer for this request's pod: its uid, its names. None when the pod's
    identity cannot be read (the full path then says why)."""
    raw = request["object"]
    try:
        identity = pod_identity(
            raw, str(request.get("namespace") or ""), str(request.get("name") or "")
        )
    except PodError:
        return None
    pod = with_identity(stored.pod, identity, raw, namespace_labels)
    response = stored.response.copy()
    response["uid"] = request["uid"]
    reviewed: review.AdmissionReview = {
        "apiVersion": review.API_VERSION,
        "kind": review.KIND,
        "response": response,
    }
    return Answer(reviewed, stored.outcome, pod, stored.decision)
