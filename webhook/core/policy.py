"""The policy as immutable values: plain data the core reads (matching a pod against it is
`core.matching`; reading policy files is `webhook.policy`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

OverrideMode = Literal["missing", "always", "never"]
ValidationMode = Literal["enforce", "audit"]
RightSizing = Literal["off", "recommend", "apply"]
OVERRIDE_MODES: tuple[OverrideMode, ...] = ("missing", "always", "never")
# pin: the chosen pool's nodeSelector and tolerations (podtier's headroom decides);
# prefer: node affinity over the allowed pools, in order (the scheduler decides).
PlacementMode = Literal["pin", "prefer"]
PLACEMENT_MODES: tuple[PlacementMode, ...] = ("pin", "prefer")
VALIDATION_MODES: tuple[ValidationMode, ...] = ("enforce", "audit")
RIGHT_SIZING_MODES: tuple[RightSizing, ...] = ("off", "recommend", "apply")
# resources: each resource sized from the task's history inside the tier's guard-rails;
# tier: the smallest tier that covers the task, with the tier's own requests and limits.
SizingMode = Literal["tier", "resources"]
SIZING_MODES: tuple[SizingMode, ...] = ("tier", "resources")
# tier: a right-sized pod keeps its tier's cpu limit; none: it gets no cpu limit (it may burst).
CpuLimitMode = Literal["tier", "none"]
CPU_LIMIT_MODES: tuple[CpuLimitMode, ...] = ("tier", "none")


class PolicyError(ValueError):
    """A policy that cannot be used. `str()` is `file: field.path: message`."""

    def __init__(self, source: str, path: str, message: str) -> None:
        self.source = source
        self.path = path
        self.message = message
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Quantity:
    """A quantity as the policy file spells it, and its value in milli-units."""

    text: str
    milli: int


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector: every matchLabels pair and every expression must hold."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    # (key, operator, values) with operator In, NotIn, Exists or DoesNotExist.
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Tier:
    name: str
    requests: Mapping[str, Quantity]
    limits: Mapping[str, Quantity]
    placement: tuple[str, ...]
    downgrade_to: str | None = None
    override: OverrideMode = "missing"
    placement_mode: PlacementMode = "pin"
    # How long a pod may wait for room in its first pool (a node finishing its pods, or a new
    # node) before it spills or steps down; None: it never waits (`core.waiting`).
    max_wait_seconds: float | None = None

    def request_milli(self) -> dict[str, int]:
        return {name: q.milli for name, q in self.requests.items()}


@dataclass(frozen=True)
class Scaling:
    """How many nodes a pool wants for its pending Airflow pods (`webhook.insight.scaling`)."""

    pods_per_node: int  # k >= 1
    min_nodes: int  # N_min >= 0
    max_nodes: int  # N_max >= N_min


@dataclass(frozen=True)
class Autoscaling:
    """How a pool grows (its node group, or Karpenter NodePool): up to `max_nodes` nodes of
    `node` allocatable (milli-units), each Ready `provision_seconds` after pods pend for it."""

    max_nodes: int
    node: Mapping[str, Quantity]
    provision_seconds: float

    def node_milli(self) -> dict[str, int]:
        return {name: q.milli for name, q in self.node.items()}


@dataclass(frozen=True)
class Cost:
    """What a pool's capacity costs per hour, in the policy's `currency` (`podtier report`):
    a pod's price per hour is its requests times these."""

    cpu_hour: float  # per cpu core
    memory_gib_hour: float  # per GiB of memory
    gpu_hour: float  # per GPU (any `*/gpu` resource)


@dataclass(frozen=True)
class Pool:
    name: str
    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    scaling: Scaling | None = None
    cost: Cost | None = None
    autoscaling: Autoscaling | None = None


@dataclass(frozen=True)
class RuleMatch:
    """All given conditions must hold (`core.matching.rule_matches`). Globs (`sales_*`) in
    namespaces, dagId and taskId."""

    namespaces: tuple[str, ...] = ()
    namespace_selector: LabelSelector | None = None
    labels: LabelSelector | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    dag_id: str | None = None
    task_id: str | None = None


# The label the API server sets on every namespace: its name.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

DEFAULT_FLOOR: Mapping[str, int] = {"cpu": 10, "memory": 64 * 2**20 * 1000}  # 10m, 64Mi


@dataclass(frozen=True)
class Learning:
    """What podtier does with what it learned of each task (`spec.learning`, see
    docs/learning.md). The defaults are the policy's when it says nothing."""

    # Raise the memory of a task instance's next pod after its previous pod was OOMKilled.
    oom_escalation: bool = True
    # ... also when the pod asked for explicit resources (its base container set them).
    escalate_explicit: bool = False
    # off: nothing; recommend: the recommendation annotations; apply: also size the pod by it.
    right_sizing: RightSizing = "recommend"
    # resources: cpu and memory sized each from the task's figures; tier: a whole tier.
    sizing: SizingMode = "resources"
    min_runs: int = 5  # finished runs before a task gets a recommendation
    margin: float = 0.15  # memory request: the task's memory peak x (1 + margin)
    # cpu request: the task's cpu p95 x (1 + cpu_margin); cpu is throttled, not killed, and the
    # p95 already holds 95% of the run's samples (the tier's limit lets it burst above)
    cpu_margin: float = 0.0
    limit_margin: float = 0.3  # memory limit: the task's memory peak x (1 + limit_margin)
    cpu_limit: CpuLimitMode = "tier"
    # The least a recommendation requests (milli-units), so that no task is sized to nothing.
    floor: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_FLOOR))
    half_life_hours: float = 24.0  # how fast old runs fade from the profile's aggregates


@dataclass(frozen=True)
class LearningOverride:
    """`spec.learning` or a rule's `learning:`: the settings it gives, None where the
    defaults (or the policy's) apply."""

    oom_escalation: bool | None = None
    escalate_explicit: bool | None = None
    right_sizing: RightSizing | None = None
    min_runs: int | None = None
    margin: float | None = None
    sizing: SizingMode | None = None
    cpu_margin: float | None = None
    limit_margin: float | None = None
    cpu_limit: CpuLimitMode | None = None
    floor: Mapping[str, int] | None = None
    half_life_hours: float | None = None  # spec.learning only

    def over(self, base: Learning) -> Learning:
        """`base` with what this gives (a floor adds to the base's floor)."""
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        given = {name: value for name, value in given.items() if value is not None}
        if self.floor is not None:
            given["floor"] = {**base.floor, **self.floor}
        return replace(base, **given)


@dataclass(frozen=True)
class Rule:
    name: str
    source: str
    path: str
    match: RuleMatch = field(default_factory=RuleMatch)
    tier: str | None = None
    pools: tuple[str, ...] | None = None
    override: OverrideMode | None = None
    learning: LearningOverride | None = None


@dataclass(frozen=True)
class Policy:
    name: str
    digest: str
    sources: tuple[str, ...]
    airflow_pods: tuple[LabelSelector, ...]
    tier_keys: tuple[str, ...]
    default_tier: str
    mode: ValidationMode
    ceilings: Mapping[str, Quantity]
    tiers: Mapping[str, Tier]  # in the policy's order, smallest first
    pools: Mapping[str, Pool]
    rules: tuple[Rule, ...]
    learning: Learning = field(default_factory=Learning)
    currency: str = ""  # the label of the pools' `cost`; "" when the policy names none

    @property
    def ident(self) -> str:
        """What `podtier.io/policy` says: the name and the content hash."""
        return f"{self.name}@sha256:{self.digest[:16]}"

    def namespace_label_keys(self) -> set[str]:
        """The namespace labels the rules' `namespaceSelector`s read, besides the name label
        every namespace carries: a server needs the namespace watch for these."""
        keys: set[str] = set()
        for rule in self.rules:
            selector = rule.match.namespace_selector
            if selector is not None:
                keys |= set(selector.match_labels) | {e[0] for e in selector.match_expressions}
        return keys - {NAMESPACE_NAME_LABEL}

    def learning_for(self, rule: Rule | None) -> Learning:
        """The learning settings for a pod that `rule` (None: no rule) matched."""
        if rule is None or rule.learning is None:
            return self.learning
        return rule.learning.over(self.learning)
