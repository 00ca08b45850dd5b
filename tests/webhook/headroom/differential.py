"""The differential test of podtier's fit rule: one generated case (`scheduler_cases.py`) asked of
the real kube-scheduler and of podtier's headroom, and the two answers compared.

    clear the last case -> nodes, existing pods -> barrier -> list for podtier -> probe
    -> podtier: find_node(pool selector, pool tolerations, probe's effective requests)
    -> scheduler: the probe (pool nodeSelector and tolerations) bound, or Unschedulable on all

They agree when both find no room, or when the scheduler binds the probe to a node on which
podtier finds room too (a node of the pool that passes podtier's `fits`).

The barrier: the scheduler learns of nodes and pods through its own watches, a moment after
they are written. So that it judges the probe against the whole case, and none of the last one,
a barrier node is created after every other node write and a barrier pod after every pod
write; once the scheduler has bound the barrier pod to the barrier node (tainted, and labelled
for it alone) it has seen the barrier node's final state, hence every node event before it (one
watch delivers events in order), and the pod events before the barrier pod's. The barrier node
counts in the scheduler's "0/N nodes are available".

Node names carry the case index, so nothing from an earlier case can stand in for a node of
this one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kubernetes
import orjson
from kubernetes.client.exceptions import ApiException

from podtier.webhook.core.resources import effective_requests
from podtier.webhook.headroom import ClusterHeadroom
from podtier.webhook.headroom.state import ClusterState
from podtier.webhook.headroom.taints import Taint, parse_tolerations, tolerates, tolerates_all
from tests.controlplane import ControlPlane
from tests.webhook.headroom.scheduler_cases import (
    CASE_LABEL,
    NOT_READY_KEY,
    RUNTIME_CLASSES,
    UNREACHABLE_KEY,
    UNSCHEDULABLE_KEY,
    Case,
    NodeCase,
)

NAMESPACE = "differential"
BARRIER = "podtier-differential/barrier"
SETTLE_TIMEOUT = 30.0
POLL = 0.01
# The tolerations the DefaultTolerationSeconds admission plugin gives every pod (NoExecute).
DEFAULT_TOLERATED = (NOT_READY_KEY, UNREACHABLE_KEY)


class HarnessError(AssertionError):
    """The control plane did not do what the run needs (not a disagreement)."""


@dataclass(frozen=True)
class Verdict:
    case: Case
    requests: Mapping[str, int]  # the probe's effective requests, as podtier computes them
    podtier: str | None  # find_node's answer
    fitting: tuple[str, ...]  # every node of the pool podtier finds room on
    scheduler: str | None  # where the scheduler bound the probe
    message: str  # the scheduler's Unschedulable message, "" once bound
    reasons: Mapping[str, str]  # node -> why podtier would not use it ("" when it would)
    stored: frozenset[str]  # what the API server kept: "sidecars", "overhead" (see `stored`)
    documented: str = ""  # for a disagreement: the documented scheduler rule behind it

    @property
    def agrees(self) -> bool:
        if self.scheduler is None:
            return self.podtier is None
        return self.podtier is not None and self.scheduler in self.fitting

    def report(self) -> str:
        """The case, both answers and, per node, podtier's view of it."""
        pool = self.case.probe.pool
        asks = ", ".join(f"{r}={v}m" for r, v in sorted(self.requests.items()))
        lines = [
            f"{self.case.id}: pool {pool.name} {dict(pool.node_selector)}, probe asks {asks}",
            f"  podtier: {self.podtier or 'no room'} (room on {list(self.fitting) or 'none'})",
            f"  scheduler: {self.scheduler or 'Unschedulable: ' + self.message}",
        ]
        if self.documented:
            lines.append(f"  documented difference: {self.documented}")
        for node in self.case.nodes:
            mark = " <- bound" if node.name == self.scheduler else ""
            lines.append(f"    {node.name}: {self.reasons.get(node.name) or 'room'}{mark}")
        return "\n".join(lines)


class Differential:
    """Runs cases on one control plane, one after the other."""

    def __init__(self, plane: ControlPlane, threads: int = 8) -> None:
        self.plane = plane
        self.api = plane.api_client(pool_size=threads)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.threads = ThreadPoolExecutor(threads)
        plane.ensure_namespace(NAMESPACE)
        node_api = kubernetes.client.NodeV1Api(self.api)
        for name, overhead in RUNTIME_CLASSES.items():
            body: dict[str, Any] = {"metadata": {"name": name}, "handler": name}
            if overhead:
                body["overhead"] = {"podFixed": overhead}
            try:
                node_api.create_runtime_class(body)
            except ApiException as err:
                if err.status != 409:
                    raise

    def close(self) -> None:
        self.threads.shutdown()
        self.api.close()  # type: ignore[no-untyped-call]

    # ------------------------------------------------------------------ one case

    def run(self, case: Case) -> Verdict:
        self.clear()
        self._nodes(case)
        self._pods(case)
        barrier_nodes = self._barrier(case)
        headroom, pods = self._podtier_view()
        state = headroom.state
        probe = case.probe
        free = 0
        if probe.boundary is not None:
            free = state.free(probe.boundary.node, probe.boundary.resource)
        name = f"c{case.index}-probe"
        manifest = probe.manifest(name, {CASE_LABEL: str(case.index)}, free)
        created = self._create_pod(manifest)
        requests = effective_requests(created["spec"])
        kept = stored([*pods, created])

        selector, tolerations = dict(probe.pool.node_selector), list(probe.pool.tolerations)
        with headroom.transaction(time.monotonic()) as view:
            assert view.status.known, view.status.reason
            found = view.find_node(selector, tolerations, requests)
        eligible = state.eligible_nodes(selector, tolerations)
        fitting = tuple(sorted(n for n in eligible if state.fits(n, requests)))
        if (found is None) != (not fitting) or (found is not None and found not in fitting):
            raise AssertionError(f"{case.id}: find_node gave {found}, room on {fitting}")
        reasons = {
            n.name: podtier_reason(state, n.name, selector, tolerations, requests)
            for n in case.nodes
        }

        bound, message = self._settle(name, len(case.nodes) + barrier_nodes)
        verdict = Verdict(case, requests, found, fitting, bound, message, reasons, kept)
        if verdict.agrees:
            return verdict
        return dataclasses.replace(verdict, documented=documented_rule(case, bound, reasons))

    def clear(self) -> None:
        """Delete the last case's pods and nodes, and wait until the API no longer has them."""
        selector = CASE_LABEL
        self.core.delete_collection_namespaced_pod(
            NAMESPACE, label_selector=selector, grace_period_seconds=0
        )
        self.core.delete_collection_node(label_selector=selector)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while (
            self.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
            or self.core.list_node(label_selector=selector).items
        ):
            if time.monotonic() > deadline:
                raise HarnessError("the last case's pods or nodes are still there")
            time.sleep(POLL)

    # ------------------------------------------------------------------ building a case

    def _nodes(self, case: Case) -> None:
        self._parallel(lambda node: self._create_node(node, case.index), case.nodes)

    def _create_node(self, node: NodeCase, index: int) -> None:
        """As a kubelet registers a node and the node lifecycle controller then taints it: the
        API server adds `node.kubernetes.io/not-ready:NoSchedule` on create; the status
        (allocatable, Ready condition) is written; then the taints are what the case says."""
        labels = {"kubernetes.io/hostname": node.name, CASE_LABEL: str(index), **node.labels}
        self.core.create_node(
            {
                "metadata": {"name": node.name, "labels": labels},
                "spec": {"unschedulable": node.unschedulable},
            }
        )
        condition = {
            "type": "Ready",
            "status": node.ready,
            "reason": "KubeletReady" if node.ready == "True" else "KubeletNotReady",
        }
        status = {
            "capacity": dict(node.allocatable),
            "allocatable": dict(node.allocatable),
            "conditions": [condition],
        }
        self.core.patch_node_status(node.name, {"status": status})
        taints = [dict(t) for t in node.taints]
        self.core.patch_node(node.name, [{"op": "add", "path": "/spec/taints", "value": taints}])

    def _pods(self, case: Case) -> None:
        labels = {CASE_LABEL: str(case.index)}

        def make(pod: Any) -> None:
            manifest = {**pod.manifest, "metadata": {**pod.manifest["metadata"], "labels": labels}}
            self._create_pod(manifest)
            name = manifest["metadata"]["name"]
            if pod.phase:
                self.plane.set_pod_status(NAMESPACE, name, pod.phase)
            if pod.terminating:  # no kubelet confirms it: it stays, deletionTimestamp set
                self.core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=30)

        self._parallel(make, case.pods)

    def _barrier(self, case: Case) -> int:
        """See the module docstring; returns how many nodes it added (1)."""
        name = f"c{case.index}-barrier"
        barrier = NodeCase(
            name,
            {BARRIER: name},
            ({"key": BARRIER, "value": name, "effect": "NoSchedule"},),
            "True",
            False,
            {"cpu": "1", "memory": "1Gi", "pods": "10"},
        )
        self._create_node(barrier, case.index)
        pod = {
            "metadata": {"name": name, "labels": {CASE_LABEL: str(case.index)}},
            "spec": {
                "nodeSelector": {BARRIER: name},
                "tolerations": [{"key": BARRIER, "operator": "Equal", "value": name}],
                "containers": [{"name": "barrier", "image": "busybox"}],
            },
        }
        self._create_pod(pod)
        bound, message = self._settle(name, len(case.nodes) + 1, bound_only=True)
        if bound != name:
            raise HarnessError(f"the barrier pod went to {bound}: {message}")
        return 1

    def _podtier_view(self) -> tuple[ClusterHeadroom, list[dict[str, Any]]]:
        """podtier's headroom, fed with a full list of nodes and pods as its watch starts; and
        the pods listed."""
        headroom = ClusterHeadroom(source="differential")
        nodes = self.core.list_node(_preload_content=False)
        pods = orjson.loads(self.core.list_pod_for_all_namespaces(_preload_content=False).data)
        headroom.relist("Node", [orjson.loads(nodes.data)["items"]])
        headroom.relist("Pod", [pods["items"]])
        assert not headroom.skipped, headroom.skip_errors
        return headroom, pods["items"]

    # ------------------------------------------------------------------ the scheduler's answer

    def _settle(self, name: str, nodes: int, bound_only: bool = False) -> tuple[str | None, str]:
        """Wait until the pod is bound, or Unschedulable on all `nodes` nodes (the count in the
        scheduler's message: a judgement against fewer nodes is not final)."""
        every_node = f"0/{nodes} nodes are available"
        deadline = time.monotonic() + SETTLE_TIMEOUT
        message = ""
        while True:
            pod = self.core.read_namespaced_pod(name, NAMESPACE)
            if pod.spec.node_name:
                return pod.spec.node_name, ""
            for condition in pod.status.conditions or ():
                if condition.type == "PodScheduled" and condition.reason == "Unschedulable":
                    message = condition.message or ""
            if message.startswith(every_node) and not bound_only:
                return None, message
            if time.monotonic() > deadline:
                raise HarnessError(f"{name} not settled after {SETTLE_TIMEOUT:g} s: {message}")
            time.sleep(POLL)

    # ------------------------------------------------------------------ plumbing

    def _create_pod(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        response = self.core.create_namespaced_pod(NAMESPACE, manifest, _preload_content=False)
        created: dict[str, Any] = orjson.loads(response.data)
        return created

    def _parallel(self, work: Callable[[Any], None], items: Sequence[Any]) -> None:
        for future in [self.threads.submit(work, item) for item in items]:
            future.result()


def stored(pods: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    """What the API server kept of the shapes it may change: init containers with
    `restartPolicy: Always` ("sidecars": dropped unless the SidecarContainers gate is on) and
    `spec.overhead` ("overhead": filled in from the RuntimeClass)."""
    out = set()
    for pod in pods:
        spec = pod.get("spec") or {}
        if any(c.get("restartPolicy") == "Always" for c in spec.get("initContainers") or ()):
            out.add("sidecars")
        if spec.get("overhead"):
            out.add("overhead")
    return frozenset(out)


def podtier_reason(
    state: ClusterState,
    name: str,
    selector: Mapping[str, str],
    tolerations: Sequence[Mapping[str, Any]],
    requests: Mapping[str, int],
) -> str:
    """Why podtier would not put the probe on node `name`, from its own records ("" if it
    would): the reasons are those of `NodeGroup.admits` and `ClusterState.fits`."""
    record = state.nodes[name]
    reasons = []
    if not record.ready:
        reasons.append("NotReady")
    if record.unschedulable:
        reasons.append("cordoned")
    if any(record.labels.get(k) != v for k, v in selector.items()):
        reasons.append("labels do not match")
    parsed = parse_tolerations(list(tolerations))
    untolerated = [t for t in record.taints if not tolerates_all(parsed, [t])]
    if untolerated:
        reasons.append("taints " + ", ".join(f"{t.key}={t.value}:{t.effect}" for t in untolerated))
    if not state.fits(name, requests):
        short = [
            f"{r} {v}m > free {state.free(name, r)}m"
            for r, v in sorted(requests.items())
            if v > 0 and v > state.free(name, r)
        ]
        reasons.append("insufficient " + ", ".join(short))
    return "; ".join(reasons)


def documented_rule(case: Case, bound: str | None, reasons: Mapping[str, str]) -> str:
    """The documented scheduler rules behind a disagreement, or "" for an unexplained one.

    Each is a case where the scheduler binds and podtier finds no room on the node, because it
    is cordoned or NotReady (docs/operations.md, "Where podtier's fit rule and the scheduler's
    differ"); any other objection of podtier's to the node leaves the disagreement unexplained.
    """
    if bound is None or not reasons.get(bound):
        return ""
    tolerations = parse_tolerations(list(case.probe.pool.tolerations))
    rules = []
    for objection in reasons[bound].split("; "):
        if objection == "cordoned" and any(
            tolerates(t, Taint(UNSCHEDULABLE_KEY, "", "NoSchedule")) for t in tolerations
        ):
            rules.append(
                "NodeUnschedulable: the pool tolerates node.kubernetes.io/unschedulable:NoSchedule"
                ", so the scheduler binds to a cordoned node"
            )
        elif objection == "NotReady":
            rules.append(
                "TaintToleration: the scheduler does not read the Ready condition, only the "
                "node.kubernetes.io/not-ready and unreachable taints"
            )
        elif objection.startswith("taints ") and all(
            taint.endswith(":NoExecute") and taint.split("=")[0] in DEFAULT_TOLERATED
            for taint in objection.removeprefix("taints ").split(", ")
        ):
            rules.append(
                "DefaultTolerationSeconds: every pod tolerates node.kubernetes.io/not-ready and "
                "unreachable NoExecute taints for 300 s"
            )
        else:
            return ""
    return "; ".join(rules)
