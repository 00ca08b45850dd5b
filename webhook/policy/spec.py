"""Every field of the policy's tiers, pools and learning sections, declared once.

Each `Field` (see `policy.declare`) gives the key, the model attribute it fills, its kind with
its bounds, a default where the model has none, and the doc line. The reader (`policy.build`),
`policies/schema.json` and the tables of docs/policy.md are made from these tuples:

    python tests/webhook/policy/policy_doc.py --write

To add a field: one `Field` in its tuple here, the attribute in the model (`core/policy.py`,
with its default), and its use; then regenerate the schema and the docs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podtier.webhook.core.policy import (
    CPU_LIMIT_MODES,
    OVERRIDE_MODES,
    PLACEMENT_MODES,
    RIGHT_SIZING_MODES,
    SIZING_MODES,
    Cost,
    Learning,
    PolicyError,
    Scaling,
)
from podtier.webhook.policy.declare import (
    Choice,
    Count,
    Custom,
    Field,
    Flag,
    Names,
    Number,
    Price,
    Quantities,
    Section,
    Text,
)
from podtier.webhook.policy.fields import (
    as_list,
    as_map,
    as_string_map,
    check_fields,
    expected,
    show,
)

MARGIN = Number(least=0.0, most=10.0)

OOM_ESCALATION = (
    Field(
        "enabled",
        "oom_escalation",
        Flag(),
        "The next pod of a task instance whose previous pod was OOMKilled gets at least "
        "max(1.2 × its memory limit, limit + 256Mi), capped by the memory ceiling, in the next "
        "tier up that covers it.",
    ),
    Field(
        "explicitResources",
        "escalate_explicit",
        Flag(),
        "Also raise pods whose `base` container sets its own cpu or memory.",
    ),
)

# A rule's `learning:` (what it leaves out comes from spec.learning). Each is `$defs/<key>`.
RULE_LEARNING = (
    Field(
        "oomEscalation",
        "",
        Section(OOM_ESCALATION, model=Learning),
        "After a task instance's pod is OOMKilled, give its next pod at least max(1.2 x the "
        "killed pod's memory limit, that limit + 256Mi), up to the memory ceiling.",
        ref="oomEscalation",
    ),
    Field(
        "rightSizing",
        "right_sizing",
        Choice(RIGHT_SIZING_MODES),
        "`recommend`: write the recommendation (`podtier.io/recommended-tier`, `-cpu`, "
        "`-memory`, `-memory-limit`); `apply`: also size the pod by it (pods that set no cpu "
        "or memory of their own, or any under `override: always`).",
        ref="rightSizing",
    ),
    Field(
        "sizing",
        "sizing",
        Choice(SIZING_MODES),
        "`resources`: cpu and memory sized each from the task's figures, inside its tier's "
        "limits (a bigger tier when they cannot hold it), the floor and the ceilings; `tier`: "
        "the smallest tier that covers the task, with the tier's own sizes.",
        ref="sizing",
    ),
    Field(
        "minRuns",
        "min_runs",
        Count(least=1),
        "Finished runs before a task gets a recommendation.",
        ref="minRuns",
    ),
    Field(
        "margin",
        "margin",
        MARGIN,
        "Memory request: the memory peak × (1 + margin); with `sizing: tier`, the recommended "
        "tier's memory limit covers it.",
        ref="margin",
    ),
    Field(
        "cpuMargin",
        "cpu_margin",
        MARGIN,
        "CPU request: the cpu p95 × (1 + cpuMargin).",
        ref="cpuMargin",
    ),
    Field(
        "limitMargin",
        "limit_margin",
        MARGIN,
        "Memory limit: the memory peak × (1 + limitMargin), never below the memory request.",
        ref="limitMargin",
    ),
    Field(
        "cpuLimit",
        "cpu_limit",
        Choice(CPU_LIMIT_MODES),
        "A right-sized pod keeps its tier's cpu limit, or gets none.",
        ref="cpuLimit",
    ),
    Field(
        "floor",
        "floor",
        Quantities(only=("cpu", "memory"), milli=True),
        "The least a recommendation requests.",
        ref="floor",
    ),
)

# spec.learning: the rule's fields, and what only the policy-wide section may set.
LEARNING = (
    *RULE_LEARNING,
    Field(
        "halfLifeHours",
        "half_life_hours",
        Number(above=0.0),
        "Half-life of a run's weight in the decaying memory peak and cpu p95 (policy-wide only).",
    ),
)

TIER = (
    Field(
        "requests",
        "requests",
        Quantities(),
        "Requests the tier gives the main (`base`) container.",
        default={},
    ),
    Field(
        "limits",
        "limits",
        Quantities(),
        "Limits it gives; also the most the `base` container may have in this tier "
        "(validation). A limit below the tier's own request is an error.",
        default={},
    ),
    Field(
        "placement",
        "placement",
        Names(at_least_one=True),
        "Pools to try, in order.",
        required=True,
        nullable=False,
        missing="is empty (expected at least one pool name)",
    ),
    Field(
        "placementMode",
        "placement_mode",
        Choice(PLACEMENT_MODES),
        "How the pod is sent to its pool: pinned with the pool's nodeSelector, or preferred "
        "through node affinity with the scheduler choosing. See "
        "[Placement modes](#placement-modes-pin-and-prefer).",
        nullable=False,
    ),
    Field(
        "downgradeTo",
        "downgrade_to",
        Text(what="tier name"),
        "When no pool of this tier has room, try this tier (see below).",
    ),
    Field(
        "override",
        "override",
        Choice(OVERRIDE_MODES),
        "How the tier's values meet the pod's own. See [Override modes](#override-modes).",
        nullable=False,
        ref="override",
    ),
)

SCALING = (
    Field(
        "podsPerNode",
        "pods_per_node",
        Count(least=1),
        "k: how many pending Airflow pods one node takes.",
        required=True,
        nullable=False,
    ),
    Field("minNodes", "min_nodes", Count(least=0), "N_min.", nullable=False, default=0),
    Field("maxNodes", "max_nodes", Count(least=0), "N_max.", required=True, nullable=False),
)

COST = (
    Field(
        "cpuHour",
        "cpu_hour",
        Price(),
        "Price of one cpu core for one hour.",
        nullable=False,
        default=0.0,
    ),
    Field(
        "memoryGiBHour",
        "memory_gib_hour",
        Price(),
        "Price of one GiB of memory for one hour.",
        nullable=False,
        default=0.0,
    ),
    Field(
        "gpuHour",
        "gpu_hour",
        Price(),
        "Price of one GPU (nvidia.com/gpu or any */gpu resource) for one hour.",
        nullable=False,
        default=0.0,
    ),
)

POOL_SCALING = Field(
    "scaling",
    "scaling",
    Section(SCALING, build=Scaling),
    "The pool's scaling signal, `podtier_pool_desired_nodes{pool}` = min(max(ceil(pending "
    "Airflow pods / podsPerNode), minNodes), maxNodes); maxNodes below minNodes is an error. "
    "Without it the pool has none.",
    ref="scaling",
)
POOL_COST = Field(
    "cost",
    "cost",
    Section(COST, build=Cost, at_least_one=True),
    "What the pool's capacity costs per hour, in `spec.currency`, for `podtier report`: a pod "
    "costs its requests times these for its run time. A price left out is 0. Without it the "
    "report shows the pool in resource·hours, not money.",
    ref="cost",
)


def _node_selector(source: str, raw: Any, path: str) -> dict[str, str]:
    selector = as_string_map(source, raw, path)
    if not selector:
        raise PolicyError(source, path, "needs at least one node label")
    return selector


TOLERATION_FIELDS = ("key", "operator", "value", "effect", "tolerationSeconds")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _tolerations(source: str, raw: Any, path: str) -> tuple[Mapping[str, Any], ...]:
    tolerations = []
    for i, item in enumerate(as_list(source, raw, path)):
        tpath = f"{path}[{i}]"
        item = as_map(source, item, tpath)
        check_fields(source, item, tpath, TOLERATION_FIELDS)
        operator = item.get("operator", "Equal")
        if operator not in ("Equal", "Exists"):
            raise PolicyError(source, f"{tpath}.operator", expected(operator, ("Equal", "Exists")))
        effect = item.get("effect", "")
        if effect not in ("", *TAINT_EFFECTS):
            raise PolicyError(source, f"{tpath}.effect", expected(effect, TAINT_EFFECTS))
        for key in ("key", "value"):
            if key in item and not isinstance(item[key], str):
                raise PolicyError(source, f"{tpath}.{key}", f"{show(item[key])} is not a string")
        seconds = item.get("tolerationSeconds")
        if "tolerationSeconds" in item and (
            not isinstance(seconds, int) or isinstance(seconds, bool)
        ):
            raise PolicyError(
                source,
                f"{tpath}.tolerationSeconds",
                f"{show(seconds)} is not a whole number of seconds",
            )
        tolerations.append(dict(item))
    return tuple(tolerations)


POOL = (
    Field(
        "nodeSelector",
        "node_selector",
        Custom(
            _node_selector,
            {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}},
            "map of string to string, at least one pair",
        ),
        "Written into the pod's `nodeSelector`. The pool owns these keys; the pod's other keys "
        "are kept.",
        required=True,
        nullable=False,
        missing="needs at least one node label",
    ),
    Field(
        "tolerations",
        "tolerations",
        Custom(
            _tolerations,
            {"type": ["array", "null"], "items": {"$ref": "#/$defs/toleration"}},
            "list of tolerations",
        ),
        "Added to the pod's tolerations (never duplicated, never removed): `key`, `operator` "
        "(`Equal` default, or `Exists`), `value`, `effect` (`NoSchedule`, `PreferNoSchedule`, "
        "`NoExecute`, or empty for all), `tolerationSeconds` (whole seconds).",
        default=(),
    ),
    POOL_SCALING,
    POOL_COST,
)
