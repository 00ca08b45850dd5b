"""Run one suite: each input pod through `admission.mutate`, its patch applied with `jsonpatch`,
the patched pod through `admission.validate`, and what came out compared with what the suite
expects. Pure apart from reading the suite's files; the cluster's headroom is injected.

Each pod is judged on its own (as a dry run: nothing is reserved between pods).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonpatch
import orjson

from podtier.webhook.core import admission
from podtier.webhook.core.capacity import Headroom, NoHeadroom
from podtier.webhook.documents import DocumentError, read_document
from podtier.webhook.policy import Policy, PolicyError
from podtier.webhook.policy.load import load_policy
from podtier.webhook.policytest import fieldpath
from podtier.webhook.policytest.inputs import InputPod, namespace_labels_in, read_inputs
from podtier.webhook.policytest.suite import Expectation, Suite

OpenCluster = Callable[[Path], Headroom]


@dataclass(frozen=True)
class Difference:
    field: str
    expected: str
    got: str


@dataclass(frozen=True)
class CaseResult:
    title: str
    path: str  # results[3]
    differences: tuple[Difference, ...] = ()
    error: str = ""  # the case could not run (unknown pod, ...)

    @property
    def passed(self) -> bool:
        return not self.differences and not self.error


@dataclass(frozen=True)
class SuiteResult:
    file: Path
    name: str
    policy: str  # the policy's ident, or "" when it did not load
    cases: tuple[CaseResult, ...] = ()
    error: str = ""  # the suite could not run at all

    @property
    def passed(self) -> bool:
        return not self.error and all(c.passed for c in self.cases)


@dataclass(frozen=True)
class Outcome:
    """What podtier did with one pod."""

    tier: str | None
    pool: str | None
    reason: str
    allowed: bool
    warnings: tuple[str, ...]
    violations: tuple[str, ...]
    patched: Any = field(repr=False)


def run_suite(suite: Suite, open_cluster: OpenCluster | None = None) -> SuiteResult:
    try:
        policy = load_policy(suite.policies)
    except PolicyError as err:
        return SuiteResult(suite.file, suite.name, "", error=f"policies: {err}")
    try:
        pods = [pod for file in suite.inputs for pod in read_inputs(file)]
        headroom, cluster_namespaces = _cluster(suite, open_cluster)
    except (DocumentError, ClusterError) as err:
        return SuiteResult(suite.file, suite.name, policy.ident, error=str(err))
    namespaces = {**cluster_namespaces, **suite.namespaces}
    cases = tuple(_case(e, pods, policy, headroom, namespaces) for e in suite.expectations)
    return SuiteResult(suite.file, suite.name, policy.ident, cases)


class ClusterError(ValueError):
    pass


def _cluster(
    suite: Suite, open_cluster: OpenCluster | None
) -> tuple[Headroom, dict[str, dict[str, str]]]:
    if suite.cluster is None:
        return NoHeadroom("no cluster file in the test suite"), {}
    if open_cluster is None:
        raise ClusterError(f"cluster: {suite.cluster}: this build cannot read cluster files")
    try:
        headroom = open_cluster(suite.cluster)
    except Exception as err:  # the loader's own errors: shown, never a traceback
        raise ClusterError(f"cluster: {err}") from None
    return headroom, namespace_labels_in(read_document(suite.cluster))


def judge(
    pod: InputPod,
    policy: Policy,
    headroom: Headroom,
    namespace_labels: Mapping[str, str] | None,
) -> Outcome:
    request = {**pod.request, "dryRun": True, "uid": pod.request.get("uid") or "policy-test"}
    with headroom.transaction(0.0) as view:
        answer = admission.mutate(request, policy, view, namespace_labels)
    response = answer.review["response"]
    encoded = response.get("patch")
    ops = orjson.loads(base64.b64decode(encoded)) if encoded else []
    original = request.get("object")
    patched = jsonpatch.apply_patch(copy.deepcopy(original), ops) if original else original
    checked = admission.validate({**request, "object": patched}, policy, namespace_labels)
    decision = answer.decision
    return Outcome(
        tier=decision.tier.name if decision else None,
        pool=decision.pool.name if decision else None,
        reason=decision.reason if decision else "",
        allowed=checked.review["response"]["allowed"],
        warnings=(
            *response.get("warnings", ()),
            *checked.review["response"].get("warnings", ()),
        ),
        violations=tuple(v.message for v in checked.violations),
        patched=patched,
    )


def compare(expected: Expectation, got: Outcome) -> list[Difference]:
    diffs = []
    checks = expected.checks
    for key in ("tier", "pool", "allowed"):
        if key in checks and checks[key] != getattr(got, key):
            diffs.append(Difference(key, _show(checks[key]), _show(getattr(got, key))))
    if "reason" in checks and checks["reason"] not in got.reason:
        diffs.append(
            Difference("reason", f"to contain {_show(checks['reason'])}", _show(got.reason))
        )
    for key in ("warnings", "violations"):
        if key not in checks:
            continue
        wanted: tuple[str, ...] = checks[key]
        have: tuple[str, ...] = getattr(got, key)
        if not wanted and have:
            diffs.append(Difference(key, "none", _show(list(have))))
        for text in wanted:
            if not any(text in item for item in have):
                diffs.append(Difference(key, f"one containing {_show(text)}", _show(list(have))))
    for shown, path, value in expected.patched:
        actual = fieldpath.lookup(got.patched, path)
        if not _same(value, actual):
            diffs.append(Difference(shown, _show(value), _show(actual)))
    return diffs


def _case(
    expected: Expectation,
    pods: list[InputPod],
    policy: Policy,
    headroom: Headroom,
    namespaces: Mapping[str, Mapping[str, str]],
) -> CaseResult:
    matches = [p for p in pods if expected.input is None or p.file == expected.input]
    if expected.pod:
        matches = [p for p in matches if expected.pod in (p.key, p.key.split("/", 1)[1])]
    if len(matches) != 1:
        wanted = " ".join(
            ([expected.pod] if expected.pod else [])
            + ([f"in {expected.input.name}"] if expected.input else [])
        )
        known = ", ".join(sorted(f"{p.key} ({p.file.name})" for p in pods)) or "none"
        problem = "no input pod" if not matches else f"{len(matches)} input pods are"
        return CaseResult(
            expected.title,
            expected.path,
            error=f"{problem} {wanted} (give input: FILE or namespace/name; inputs hold: {known})",
        )
    pod = matches[0]
    namespace = pod.key.split("/", 1)[0]
    got = judge(pod, policy, headroom, namespaces.get(namespace))
    return CaseResult(expected.title, expected.path, tuple(compare(expected, got)))


def _same(expected: Any, actual: Any) -> bool:
    if actual is fieldpath.MISSING:
        return expected is None
    if expected == actual and type(expected) is type(actual):
        return True
    scalars = (str, int, float)
    if (
        isinstance(expected, scalars)
        and isinstance(actual, scalars)
        and not isinstance(expected, bool)
        and not isinstance(actual, bool)
    ):
        return str(expected) == str(actual)  # `cpu: 1` in YAML means the quantity "1"
    return bool(expected == actual)


def _show(value: Any) -> str:
    if value is fieldpath.MISSING:
        return "(absent)"
    return json.dumps(value, sort_keys=True, default=str)
