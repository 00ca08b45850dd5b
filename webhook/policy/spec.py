"""Every field of a policy file's spec, tiers, pools, rules and learning, declared once.

Each `Field` (see `policy.declare`) gives the key, the model attribute it fills, its kind with
its bounds, a default where the model has none, and the doc line. The reader (`policy.build`),
`policies/schema.json` and the field tables of docs/policy.md are made from these tuples.

To add a field: one `Field` in its section's tuple here, the attribute (with its default) in
the model (`core/policy.py`), and its use; then regenerate the schema and the docs with

    python tests/webhook/policy/policy_doc.py --write

For example, a tier's `maxWaitSeconds`:

    # here, in TIER:
    Field("maxWaitSeconds", "max_wait_seconds", Number(above=0.0),
          "How long a pod may wait for room in its pools before it is downgraded."),
    # core/policy.py, class Tier:
    max_wait_seconds: float | None = None

A nested map is a `Section` of its own tuple (`build=` the model class it makes); a shape with
its own reader is `Custom` (`policy.shapes`). Checks between fields or sections (a limit below
its request, names of tiers and pools) stay code in `policy.build`.
"""

from __future__ import annotations

from typing import Any

from podtier.webhook.core.policy import (
    CPU_LIMIT_MODES,
    OVERRIDE_MODES,
    PLACEMENT_MODES,
    RIGHT_SIZING_MODES,
    SIZING_MODES,
    VALIDATION_MODES,
    Autoscaling,
    Cost,
    Learning,
    LearningOverride,
    RuleMatch,
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
from podtier.webhook.policy.shapes import (
    as_given,
    label_selector,
    label_selectors,
    name,
    node_selector,
    node_shape,
    string_map,
    strings,
    tolerations,
)

NAME = {"$ref": "#/$defs/name"}
DAY = 86_400.0  # a wait or a provisioning delay longer than a day is a typo
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
    Field(
        "maxWaitSeconds",
        "max_wait_seconds",
        Number(least=0.0, most=DAY),
        "How long a pod of this tier may wait for room in its first pool (running pods "
        "finishing, from their tasks' learned run times, or a new node of an autoscaling pool) "
        "before it spills to the next pool or steps down. Unset: it never waits.",
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
AUTOSCALING = (
    Field(
        "maxNodes",
        "max_nodes",
        Count(least=1, most=5_000),  # the Kubernetes scalability limit
        "The most nodes the pool grows to.",
        required=True,
        nullable=False,
    ),
    Field(
        "node",
        "node",
        Custom(
            node_shape,
            {"$ref": "#/$defs/quantities", "type": "object", "required": ["cpu", "memory"]},
            "map of resource to quantity, with cpu and memory",
        ),
        "A new node's allocatable: cpu and memory (above 0, at most 1024 cpu and 64Ti), and "
        "any other resource such as nvidia.com/gpu.",
        required=True,
        nullable=False,
    ),
    Field(
        "provisionSeconds",
        "provision_seconds",
        Number(least=0.0, most=DAY),
        "How long a new node takes to be Ready once pods pend for it.",
        required=True,
        nullable=False,
    ),
)
POOL_AUTOSCALING = Field(
    "autoscaling",
    "autoscaling",
    Section(AUTOSCALING, build=Autoscaling),
    "How the pool grows (its node group or Karpenter NodePool): up to maxNodes nodes of the "
    "node shape, each Ready provisionSeconds after pods pend for it. A tier's maxWaitSeconds "
    "lets its pods wait for such a node.",
    ref="autoscaling",
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


POOL = (
    Field(
        "nodeSelector",
        "node_selector",
        Custom(
            node_selector,
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
            tolerations,
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
    POOL_AUTOSCALING,
)


def _learning(**given: Any) -> Learning:
    """spec.learning: what it gives over the defaults."""
    return LearningOverride(**given).over(Learning())


# The spec's settings: each comes from exactly one of the policy's files.
SETTINGS = (
    Field(
        "airflowPods",
        "airflow_pods",
        Custom(
            label_selectors,
            {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/labelSelector"}},
            "list of label selectors, at least one",
        ),
        "A pod is an Airflow pod when **any** selector matches its labels. Every other pod is "
        "admitted unchanged.",
        required=True,
        nullable=False,
        missing="is required (set it in one policy file)",
    ),
    Field(
        "tierKeys",
        "tier_keys",
        Custom(strings, {"type": ["array", "null"], "items": NAME}, "list of strings"),
        "Label or annotation keys a pod asks for a tier with. For each key in order, the label "
        "is read first, then the annotation; the first found wins. A value naming no tier is a "
        "warning, and the tier is chosen as if none were asked.",
        nullable=False,
        default=("podtier.io/tier",),
    ),
    Field(
        "defaultTier",
        "default_tier",
        Custom(as_given, NAME, "tier name"),
        "The tier of a pod that asks for none, matches no rule with a tier, and has no "
        "requests of its own.",
        required=True,
        nullable=False,
        missing="is required (set it in one policy file)",
    ),
    Field(
        "mode",
        "mode",
        Choice(VALIDATION_MODES),
        "What validation does with findings: deny, or allow with warnings. See "
        "[Validation](#validation-modes-and-ceilings).",
        nullable=False,
        default="enforce",
    ),
    Field(
        "ceilings",
        "ceilings",
        Quantities(),
        "No container may request or be limited above these, whatever its tier.",
        default={},
    ),
    Field(
        "currency",
        "currency",
        Text(),
        "The label of the pools' `cost` figures in `podtier report` (`USD`, `EUR`, ...). Only "
        "a label: podtier converts nothing.",
        nullable=False,
    ),
    Field(
        "learning",
        "learning",
        Section(LEARNING, build=_learning, model=Learning),
        "What podtier does with what it learned of each task: OOM escalation, right-sizing. "
        "See [docs/learning.md](learning.md).",
        shown_default="see below",
    ),
)


def _merged(source: str, raw: object, path: str) -> None:
    raise AssertionError("tiers, pools and rules are read file by file (policy.build)")


# spec: the settings, and the tiers, pools and rules that several files pool together.
SPEC = (
    *SETTINGS,
    Field(
        "tiers",
        "tiers",
        Custom(
            _merged,
            {"type": ["object", "null"], "additionalProperties": {"$ref": "#/$defs/tier"}},
            "map of name to tier",
        ),
        "In the order written, smallest first: a pod with requests but no tier goes to the "
        "first tier whose requests cover them.",
        shown_default="required (one at least)",
    ),
    Field(
        "pools",
        "pools",
        Custom(
            _merged,
            {"type": ["object", "null"], "additionalProperties": {"$ref": "#/$defs/pool"}},
            "map of name to pool",
        ),
        "Node pools.",
        shown_default="required (one at least)",
    ),
    Field(
        "rules",
        "rules",
        Custom(
            _merged,
            {"type": ["array", "null"], "items": {"$ref": "#/$defs/rule"}},
            "list of rules",
        ),
        "First match wins.",
    ),
)


GLOB = "name or glob"
SELECTOR = Custom(label_selector, {"$ref": "#/$defs/optionalSelector"}, "label selector")

# A rule's `match:`: every condition given must hold (`core.matching.rule_matches`).
MATCH = (
    Field(
        "namespaces",
        "namespaces",
        Custom(strings, {"type": ["array", "null"], "items": NAME}, "list of names or globs"),
        "The pod's namespace matches one of them (`data-*`, `team-?`, `[ab]-etl`).",
    ),
    Field(
        "namespaceSelector",
        "namespace_selector",
        SELECTOR,
        "The labels of the pod's namespace match (see below where they come from).",
    ),
    Field("labels", "labels", SELECTOR, "The pod's labels match."),
    Field(
        "annotations",
        "annotations",
        Custom(string_map, {"$ref": "#/$defs/stringMap"}, "map of string to string"),
        "The pod carries every one of these annotations with exactly this value.",
    ),
    Field("dagId", "dag_id", Text(), "The pod's Airflow `dag_id` matches.", type_text=GLOB),
    Field("taskId", "task_id", Text(), "The pod's Airflow `task_id` matches.", type_text=GLOB),
)

# A rule: what it matches, and what it gives the pods it matches.
RULE = (
    Field(
        "name",
        "name",
        Custom(name, NAME, "string"),
        "Shown in `podtier.io/reason` and in errors.",
        nullable=False,
        shown_default="`rule N`",
    ),
    Field(
        "match",
        "match",
        Section(MATCH, build=RuleMatch),
        "Every condition given must hold; no condition at all matches every Airflow pod.",
        ref="match",
        shown_default="matches every Airflow pod",
    ),
    Field(
        "tier",
        "tier",
        Text(),
        "The tier for pods this rule matches (unless they ask for one).",
        type_text="tier name",
    ),
    Field(
        "pools",
        "pools",
        Names(at_least_one=True),
        "Pools to try instead of the tier's.",
        shown_default="the tier's `placement`",
    ),
    Field(
        "override",
        "override",
        Custom(
            Choice(OVERRIDE_MODES).read,
            {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/override"}]},
            "`missing`, `always`, `never`",
        ),
        "Override mode for pods this rule matches.",
        shown_default="the tier's `override`",
    ),
    Field(
        "learning",
        "learning",
        Section(RULE_LEARNING, build=LearningOverride, model=Learning),
        "Learning settings for pods this rule matches; what it leaves out comes from "
        "`spec.learning`.",
        ref="ruleLearning",
        type_text="map (below, without `halfLifeHours`)",
        shown_default="`spec.learning`",
    ),
)
