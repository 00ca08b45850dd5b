"""RBAC: only what each enabled feature needs, named where Kubernetes allows naming."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.chart_rendering import Manifest, of_kind, one, render, serve_flags

ALL_FEATURES = {"cleanup": {"enabled": True}, "certs": {"mode": "self"}}
ROLE_KINDS = ("Role", "ClusterRole")
# Each replica's own peer Lease (headroom on): the nodes it may promise are split by them.
PEER_LEASES = {("leases", verb, "*any*") for verb in ("get", "list", "create", "patch", "delete")}
# Learning is on by default; the tests of other features' grants turn it off to see theirs alone.
NO_LEARNING: dict[str, Any] = {"learning": {"enabled": False}}
LEADER_LEASE = {("leases", verb, "*any*") for verb in ("get", "create", "update")}


def rules_of(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [rule for role in of_kind(objects, kind) for rule in role["rules"]]


def grants(objects: list[Manifest], kind: str, role: str = "") -> set[tuple[str, str, str]]:
    """{(resource, verb, name or "*any*")} granted by every role of that kind (whose name ends
    with `role`, when given)."""
    found = set()
    roles = [r for r in of_kind(objects, kind) if r["metadata"]["name"].endswith(role)]
    for rule in (rule for r in roles for rule in r["rules"]):
        for resource in rule["resources"]:
            for verb in rule["verbs"]:
                for name in rule.get("resourceNames") or ["*any*"]:
                    found.add((resource, verb, name))
    return found


SCENARIOS = [
    pytest.param({}, id="default"),
    pytest.param(ALL_FEATURES, id="everything-on"),
    pytest.param({**ALL_FEATURES, "webhook": {"namespaces": ["airflow"]}}, id="namespaced"),
    pytest.param({"certs": {"mode": "cert-manager"}}, id="cert-manager"),
]


@pytest.mark.parametrize("values", SCENARIOS)
def test_no_wildcards_anywhere(values: dict[str, Any]) -> None:
    objects = render(values)
    for kind in ROLE_KINDS:
        for rule in rules_of(objects, kind):
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in (rule.get(field) or []), (kind, rule)
            assert "nonResourceURLs" not in rule


@pytest.mark.parametrize("values", SCENARIOS)
def test_secrets_are_never_granted_cluster_wide(values: dict[str, Any]) -> None:
    objects = render(values)
    for rule in rules_of(objects, "ClusterRole"):
        assert "secrets" not in rule["resources"]


@pytest.mark.parametrize("values", SCENARIOS)
def test_every_binding_ties_a_rendered_role_to_the_rendered_service_account(
    values: dict[str, Any],
) -> None:
    objects = render(values)
    account = one(objects, "ServiceAccount")["metadata"]["name"]
    roles = {(obj["kind"], obj["metadata"]["name"]) for obj in objects if obj["kind"] in ROLE_KINDS}
    bindings = of_kind(objects, "RoleBinding") + of_kind(objects, "ClusterRoleBinding")
    assert bindings
    for binding in bindings:
        assert (binding["roleRef"]["kind"], binding["roleRef"]["name"]) in roles
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": "podtier"}
        ]


def test_headroom_reads_nodes_and_pods_and_keeps_its_peer_lease_and_nothing_more() -> None:
    objects = render({"certs": {"mode": "cert-manager"}, **NO_LEARNING})
    assert grants(objects, "ClusterRole") == {
        (resource, verb, "*any*")
        for resource in ("nodes", "pods")
        for verb in ("get", "list", "watch")
    }
    (role,) = of_kind(objects, "Role")
    assert role["metadata"]["namespace"] == "podtier"
    assert grants(objects, "Role") == PEER_LEASES
    flags = serve_flags(objects)
    assert flags["--peers"] == "podtier"
    assert "--namespace-labels" not in flags


def test_namespace_labels_add_read_access_to_namespaces_and_the_flag() -> None:
    objects = render(
        {"certs": {"mode": "cert-manager"}, "headroom": {"namespaceLabels": True}, **NO_LEARNING}
    )
    assert grants(objects, "ClusterRole") == {
        (resource, verb, "*any*")
        for resource in ("nodes", "pods", "namespaces")
        for verb in ("get", "list", "watch")
    }
    assert "--namespace-labels" in serve_flags(objects)


def test_self_mode_may_touch_only_its_own_secret_and_webhooks() -> None:
    objects = render(NO_LEARNING)
    flags = serve_flags(objects)
    secret = flags["--cert-secret"]
    assert {role["metadata"]["namespace"] for role in of_kind(objects, "Role")} == {"podtier"}
    assert grants(objects, "Role") - PEER_LEASES == {
        ("secrets", "create", "*any*"),  # a create has no name to match yet
        ("secrets", "get", secret),
        ("secrets", "update", secret),
    }
    mutating = one(objects, "MutatingWebhookConfiguration")["metadata"]["name"]
    validating = one(objects, "ValidatingWebhookConfiguration")["metadata"]["name"]
    assert (flags["--mutating-webhook"], flags["--validating-webhook"]) == (mutating, validating)
    webhook_grants = {grant for grant in grants(objects, "ClusterRole") if "webhook" in grant[0]}
    assert webhook_grants == {
        ("mutatingwebhookconfigurations", "get", mutating),
        ("mutatingwebhookconfigurations", "patch", mutating),
        ("validatingwebhookconfigurations", "get", validating),
        ("validatingwebhookconfigurations", "patch", validating),
    }


@pytest.mark.parametrize("mode", ["cert-manager", "secret"])
def test_other_cert_modes_grant_nothing_on_secrets_or_webhooks(mode: str) -> None:
    values: dict[str, Any] = {"certs": {"mode": mode}, **NO_LEARNING}
    if mode == "secret":
        values["certs"]["secret"] = {"name": "mine", "caBundle": "Q0E="}
    objects = render(values)
    for kind in ROLE_KINDS:
        for resource, _, _ in grants(objects, kind):
            assert resource in {"nodes", "pods", "leases"}
    assert grants(objects, "Role") == PEER_LEASES


def test_cleanup_off_grants_no_pod_delete_and_no_leader_lease() -> None:
    objects = render(NO_LEARNING)
    for kind in ROLE_KINDS:
        assert ("pods", "delete", "*any*") not in grants(objects, kind)
    assert grants(objects, "Role", role="-leader") == set()
    assert "--cleanup-after" not in serve_flags(objects)


def test_cleanup_on_grants_pod_delete_cluster_wide_and_a_lease_in_the_release_namespace() -> None:
    objects = render({"cleanup": {"enabled": True, "after": "2h"}})
    assert ("pods", "delete", "*any*") in grants(objects, "ClusterRole")
    lease_roles = [
        role for role in of_kind(objects, "Role") if role["metadata"]["name"].endswith("-leader")
    ]
    assert len(lease_roles) == 1 and lease_roles[0]["metadata"]["namespace"] == "podtier"
    assert {verb for rule in lease_roles[0]["rules"] for verb in rule["verbs"]} == {
        "get",
        "create",
        "update",
    }
    assert serve_flags(objects)["--cleanup-after"] == "2h"


def test_cleanup_deletes_only_in_listed_namespaces_when_they_are_listed() -> None:
    objects = render({"cleanup": {"enabled": True}, "webhook": {"namespaces": ["a", "b"]}})
    delete_role = next(
        role["metadata"]["name"]
        for role in of_kind(objects, "ClusterRole")
        if any("delete" in rule["verbs"] for rule in role["rules"])
    )
    bindings_to_delete = [
        binding
        for binding in of_kind(objects, "RoleBinding") + of_kind(objects, "ClusterRoleBinding")
        if binding["roleRef"]["name"] == delete_role
    ]
    assert {(b["kind"], b["metadata"]["namespace"]) for b in bindings_to_delete} == {
        ("RoleBinding", "a"),
        ("RoleBinding", "b"),
    }


def test_no_api_access_means_no_token_and_no_roles() -> None:
    values = {
        "headroom": {"enabled": False},
        "certs": {"mode": "cert-manager"},
    }
    objects = render(values)
    assert [obj for obj in objects if obj["kind"] in ROLE_KINDS] == []
    assert one(objects, "ServiceAccount")["automountServiceAccountToken"] is False
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert serve_flags(objects)["--cluster"] == "none"


def test_learning_reads_profiles_and_podmetrics_writes_profiles_and_holds_a_lease() -> None:
    objects = render()
    assert grants(objects, "ClusterRole", role="-learning-read") == {
        ("taskprofiles", "get", "*any*"),
        ("taskprofiles", "list", "*any*"),
        ("taskprofiles", "watch", "*any*"),
        ("pods", "list", "*any*"),  # metrics.k8s.io
    }
    read = next(
        r
        for r in of_kind(objects, "ClusterRole")
        if r["metadata"]["name"].endswith("-learning-read")
    )
    assert {g for rule in read["rules"] for g in rule["apiGroups"]} == {
        "podtier.io",
        "metrics.k8s.io",
    }
    assert grants(objects, "ClusterRole", role="-learning-write") == {
        ("taskprofiles", "create", "*any*"),
        ("taskprofiles", "update", "*any*"),
    }
    bound = [b["roleRef"]["name"] for b in of_kind(objects, "ClusterRoleBinding")]
    for role in ("-learning-read", "-learning-write"):
        assert sum(name.endswith(role) for name in bound) == 1
    assert grants(objects, "Role", role="-leader") == LEADER_LEASE
    flags = serve_flags(objects)
    assert "--learning" in flags and "--usage-prometheus" not in flags


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(NO_LEARNING, id="learning-off"),
        pytest.param({"headroom": {"enabled": False}}, id="headroom-off"),
    ],
)
def test_without_learning_nothing_on_taskprofiles(values: dict[str, Any]) -> None:
    objects = render(values)
    for kind in ROLE_KINDS:
        assert all(resource != "taskprofiles" for resource, _, _ in grants(objects, kind))
    assert "--learning" not in serve_flags(objects)
    assert grants(objects, "Role", role="-leader") == set()


def test_learning_writes_profiles_only_in_listed_namespaces_when_they_are_listed() -> None:
    objects = render({"webhook": {"namespaces": ["a", "b"]}})
    writes = [
        b
        for b in of_kind(objects, "RoleBinding") + of_kind(objects, "ClusterRoleBinding")
        if b["roleRef"]["name"].endswith("-learning-write")
    ]
    assert {(b["kind"], b["metadata"]["namespace"]) for b in writes} == {
        ("RoleBinding", "a"),
        ("RoleBinding", "b"),
    }
    reads = [
        b
        for b in of_kind(objects, "ClusterRoleBinding")
        if b["roleRef"]["name"].endswith("-learning-read")
    ]
    assert len(reads) == 1  # the watch is cluster-wide


def test_cluster_scoped_names_carry_the_release_namespace() -> None:
    first = render(namespace="team-a")
    second = render(namespace="team-b")
    cluster_scoped = (
        "ClusterRole",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    )
    names_a = {(o["kind"], o["metadata"]["name"]) for o in first if o["kind"] in cluster_scoped}
    names_b = {(o["kind"], o["metadata"]["name"]) for o in second if o["kind"] in cluster_scoped}
    assert names_a and names_a.isdisjoint(names_b)
