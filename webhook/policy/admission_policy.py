"""The policy's limits as a ValidatingAdmissionPolicy (`admissionregistration.k8s.io/v1`,
Kubernetes 1.30+): the API server itself denies an Airflow pod, or a resize, over the ceilings or
its tier's limits, even while podtier's webhook is unreachable. Pure: a Policy in, objects out.

    ValidatingAdmissionPolicy  the CEL below; the same for every policy (`policy_spec`)
    ValidatingAdmissionPolicyBinding  which namespaces, Deny (or Warn+Audit in audit mode),
                                      the parameters by name
    ConfigMap (the parameters) `ceiling.<resource>` and `tier.<tier>.<resource>`: the policy's
                               numbers (`parameters`), rewritten on a policy reload

Resource names are keys with `/` written `_` (`nvidia.com/gpu` -> `ceiling.nvidia.com_gpu`):
ConfigMap keys allow no `/`. What CEL judges, and what it cannot:
- every container's requests and limits against the ceilings; the `base` container's against
  the limits of the tier the pod carries (`podtier.io/tier`, of the OLD pod on UPDATE) or, for
  memory, the escalation it carries when larger (CEL cannot check podtier's seal: a forged
  escalation still stops at the ceiling; the webhook ignores it);
- podtier's annotations may not change on UPDATE (the two-step tier unlock);
- a pod created while podtier was down carries no tier: the ceilings alone hold.
"""

from __future__ import annotations

from typing import Any

from podtier.webhook.core.policy import Policy

API_VERSION = "admissionregistration.k8s.io/v1"
PODTIER = "podtier.io/"
TIER = "podtier.io/tier"
ESCALATED = "podtier.io/escalated-memory"
MAIN_CONTAINER = "base"

Manifest = dict[str, Any]


def parameter_key(*parts: str) -> str:
    """`ceiling.memory`, `tier.gpu.nvidia.com_gpu`."""
    return ".".join(part.replace("/", "_") for part in parts)


def parameters(policy: Policy) -> dict[str, str]:
    """The ConfigMap's data: the ceilings and each tier's limits, as the policy spells them."""
    data = {parameter_key("ceiling", name): q.text for name, q in policy.ceilings.items()}
    for tier in policy.tiers.values():
        for name, q in tier.limits.items():
            data[parameter_key("tier", tier.name, name)] = q.text
    return dict(sorted(data.items()))


def parameters_configmap(policy: Policy, name: str, namespace: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {"podtier.io/policy": policy.ident},
        },
        "data": parameters(policy),
    }


def _key(prefix: str, resource: str) -> str:
    return f"{prefix} + {resource}.replace('/', '_')"


def _over(value: str, cap: str) -> str:
    return f"quantity({value}).compareTo(quantity({cap})) > 0"


def _airflow(obj: str) -> str:
    labels = f"{obj}.metadata.labels"
    return (
        f"(has({labels}) && (('kubernetes_executor' in {labels} && "
        f"{labels}['kubernetes_executor'] == 'True') || 'airflow-worker' in {labels} || "
        f"('kubernetes_pod_operator' in {labels} && "
        f"{labels}['kubernetes_pod_operator'] == 'True')))"
    )


def _findings(containers: str, cap_key: str, cap_value: str, what: str) -> str:
    """CEL: one string per container with its requests and limits over the caps ("" if none),
    `cap_key(r)` the parameter's key for resource `r`, `cap_value(r)` the cap."""
    parts = []
    for kind, field in (("request", "requests"), ("limit", "limits")):
        values = f"c.resources.{field}"
        capped = f"{cap_key} in variables.params"
        over = _over(f"{values}[r]", cap_value)
        parts.append(
            f"(has(c.resources) && has({values}) ? {values}.filter(r, {capped} && {over})"
            f".map(r, 'container ' + c.name + ': ' + r + ' {kind} ' + {values}[r] + "
            f"' is above {what}' + {cap_value}) : [])"
        )
    return f"{containers}.map(c, ({' + '.join(parts)}).join('; ')).filter(s, s != '')"


def policy_spec() -> Manifest:
    """The ValidatingAdmissionPolicy's spec: the same CEL for every policy, its numbers read
    from the parameters."""
    ceiling_key = _key("'ceiling.'", "r")
    ceiling = f"variables.params[{ceiling_key}]"
    tier_key = _key("'tier.' + variables.tier + '.'", "r")
    tier_limit = f"variables.params[{tier_key}]"
    # memory: the escalation the pod carries, when above the tier's limit
    tier_cap = (
        f"(r == 'memory' && variables.escalated != '' && "
        f"{_over('variables.escalated', tier_limit)} ? variables.escalated : {tier_limit})"
    )
    notes_changed = (
        "request.operation == 'UPDATE' && ("
        "(has(object.metadata.annotations) && object.metadata.annotations.exists(k, "
        f"k.startsWith('{PODTIER}') && !(has(oldObject.metadata.annotations) && "
        "k in oldObject.metadata.annotations && "
        "oldObject.metadata.annotations[k] == object.metadata.annotations[k]))) || "
        "(has(oldObject.metadata.annotations) && oldObject.metadata.annotations.exists(k, "
        f"k.startsWith('{PODTIER}') && !(has(object.metadata.annotations) && "
        "k in object.metadata.annotations))))"
    )
    return {
        "failurePolicy": "Fail",
        "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["pods", "pods/resize"],
                }
            ]
        },
        "matchConditions": [
            {
                "name": "spec-or-podtier-annotations-change",
                "expression": "request.operation != 'UPDATE' || object.spec != oldObject.spec || "
                + notes_changed,
            },
            {
                "name": "airflow-pods",
                "expression": f"{_airflow('object')} || "
                f"(request.operation == 'UPDATE' && {_airflow('oldObject')})",
            },
        ],
        "variables": [
            {"name": "params", "expression": "has(params.data) ? params.data : {}"},
            {
                "name": "meta",
                "expression": "request.operation == 'UPDATE' ? oldObject.metadata : "
                "object.metadata",
            },
            {
                "name": "notes",
                "expression": "has(variables.meta.annotations) ? variables.meta.annotations : {}",
            },
            {
                "name": "tier",
                "expression": f"'{TIER}' in variables.notes ? variables.notes['{TIER}'] : ''",
            },
            {
                "name": "escalated",
                "expression": f"'{ESCALATED}' in variables.notes && "
                f"isQuantity(variables.notes['{ESCALATED}']) ? variables.notes['{ESCALATED}'] : ''",
            },
            {
                "name": "containers",
                "expression": "object.spec.containers + (has(object.spec.initContainers) ? "
                "object.spec.initContainers : [])",
            },
            {
                "name": "overCeilings",
                "expression": _findings(
                    "variables.containers", ceiling_key, ceiling, "the policy ceiling "
                ),
            },
            {
                "name": "overTier",
                "expression": _findings(
                    f"object.spec.containers.filter(c, c.name == '{MAIN_CONTAINER}')",
                    tier_key,
                    tier_cap,
                    "tier ' + variables.tier + '\\'s limit ",
                ),
            },
        ],
        "validations": [
            {
                "expression": "size(variables.overCeilings) == 0",
                "messageExpression": "'podtier (admission policy): ' + "
                "variables.overCeilings.join('; ')",
                "reason": "Forbidden",
            },
            {
                "expression": "variables.tier == '' || size(variables.overTier) == 0",
                "messageExpression": "'podtier (admission policy): ' + "
                "variables.overTier.join('; ')",
                "reason": "Forbidden",
            },
            {
                "expression": f"!({notes_changed})",
                "message": "podtier (admission policy): podtier's annotations are written at "
                "creation and may not change",
                "reason": "Forbidden",
            },
        ],
    }


def admission_policy(
    policy: Policy,
    name: str = "podtier",
    namespace: str = "podtier",
    namespaces: list[str] | None = None,
) -> list[Manifest]:
    """The ValidatingAdmissionPolicy, its binding (for pods in `namespaces`, else every
    namespace but `namespace` and kube-system) and the parameters' ConfigMap."""
    selector: Manifest = {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": sorted({namespace, "kube-system"}),
            }
        ]
    }
    if namespaces:
        selector["matchExpressions"].append(
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(namespaces)}
        )
    actions = ["Warn", "Audit"] if policy.mode == "audit" else ["Deny"]
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": policy_spec(),
        },
        {
            "apiVersion": API_VERSION,
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": actions,
                "paramRef": {
                    "name": name,
                    "namespace": namespace,
                    "parameterNotFoundAction": "Deny",
                },
                "matchResources": {"namespaceSelector": selector},
            },
        },
        parameters_configmap(policy, name, namespace),
    ]
