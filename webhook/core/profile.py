"""What podtier learned of each Airflow task, as the decision reads it: the `TaskProfile`
model (one per task), the task's identity, and the `ProfilesView` the edge hands in.

A task is keyed by namespace, dag_id and task_id in the form Airflow writes into labels
(`airflow_label_value`): a KubernetesExecutor pod carries the raw ids in annotations, a
KubernetesPodOperator pod only the labels, cut and hashed when long; both give the same key.
A task instance adds run_id (also in label form) and map_index; `try_number` counts its tries.

The model is plain frozen values; reading and writing the custom resource (and refusing
hostile objects) is `webhook.learning.profiles`, the aggregates' arithmetic
`webhook.learning.decay`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from podtier.webhook.core.matching import airflow_label_value
from podtier.webhook.core.pod import PodView

KPO_LABEL = "kubernetes_pod_operator"
MEMORY_UNIT = 1000  # milli-units per byte: quantities are kept in milli-units


@dataclass(frozen=True)
class TaskKey:
    """A task: namespace, and dag_id and task_id as Airflow writes them into labels."""

    namespace: str
    dag: str
    task: str


@dataclass(frozen=True)
class TaskInstance:
    """Who a pod runs for. `dag_id`/`task_id`/`run_id` are the raw ids when the annotations
    carry them, else the label values; `kind` is "kpo" for KubernetesPodOperator pods."""

    key: TaskKey
    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    map_index: int  # -1 for a task that is not mapped
    kind: str  # executor | kpo

    @property
    def run_key(self) -> str:
        return airflow_label_value(self.run_id)


def task_key(namespace: str, dag_id: str, task_id: str) -> TaskKey:
    return TaskKey(namespace, airflow_label_value(dag_id), airflow_label_value(task_id))


def task_instance(
    namespace: str, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> TaskInstance | None:
    """The Airflow task instance a pod runs; None without a dag_id and a task_id."""

    def read(key: str) -> str:
        value = annotations.get(key)
        if not isinstance(value, str) or not value:
            value = labels.get(key)
        return value if isinstance(value, str) else ""

    dag_id, task_id = read("dag_id"), read("task_id")
    if not dag_id or not task_id:
        return None
    return TaskInstance(
        key=task_key(namespace, dag_id, task_id),
        dag_id=dag_id,
        task_id=task_id,
        run_id=read("run_id"),
        try_number=_whole(read("try_number"), 1),
        map_index=_whole(read("map_index"), -1),
        kind="kpo" if labels.get(KPO_LABEL) == "True" else "executor",
    )


def pod_instance(pod: PodView) -> TaskInstance | None:
    return task_instance(pod.namespace, pod.labels, pod.annotations)


def _whole(text: str, default: int) -> int:
    try:
        value = int(text)
    except ValueError:
        return default
    return value if -1 <= value < 1_000_000 else default


@dataclass(frozen=True)
class RunRecord:
    """One finished pod of the task (`status.lastRuns[]`)."""

    run_id: str
    try_number: int
    map_index: int
    exit_code: int | None
    reason: str
    oom_killed: bool
    run_seconds: float | None
    finished_at: float  # Unix seconds
    memory_limit_bytes: int | None
    memory_peak_bytes: int | None
    cpu_p95_milli: int | None
    pod_uid: str = ""
    kind: str = "executor"
    # The memory limit podtier raised this pod to after an earlier OOM kill (None: not raised).
    escalated_bytes: int | None = None

    @property
    def run_key(self) -> str:
        return airflow_label_value(self.run_id)


@dataclass(frozen=True)
class Histogram:
    """A decaying histogram as stored (`webhook.learning.decay` does the arithmetic):
    exponential buckets, each with a weight relative to `reference` (Unix seconds)."""

    reference: float = 0.0
    buckets: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class TaskProfile:
    namespace: str
    name: str
    dag_id: str
    task_id: str
    runs: int = 0
    oom_kills: int = 0
    run_seconds: float = 0.0
    memory_peak_bytes: int | None = None
    cpu_p95_milli: int | None = None
    requests: Mapping[str, int] = field(default_factory=dict)  # milli-units, last run's base
    limits: Mapping[str, int] = field(default_factory=dict)
    tier: str = ""
    pool: str = ""
    recommended_tier: str | None = None
    last_runs: tuple[RunRecord, ...] = ()
    updated_at: str = ""
    memory_histogram: Histogram = field(default_factory=Histogram)
    cpu_histogram: Histogram = field(default_factory=Histogram)
    resource_version: str = ""

    @property
    def key(self) -> TaskKey:
        return task_key(self.namespace, self.dag_id, self.task_id)


@dataclass(frozen=True)
class ProfilesStatus:
    """`known` is False while the profiles cannot be trusted; `reason` says why."""

    known: bool
    reason: str


class ProfilesView(Protocol):
    """The task profiles as one request sees them (read once per request)."""

    @property
    def status(self) -> ProfilesStatus: ...

    def get(self, key: TaskKey) -> TaskProfile | None: ...


class ProfilesSource(Protocol):
    """Where the edge gets a view for each request (the profile store)."""

    def view(self, now: float) -> ProfilesView:
        """The profiles at monotonic time `now` (the same clock as the headroom's)."""
        ...


@dataclass(frozen=True)
class StaticProfiles:
    """A fixed set of profiles (a file, a test, a replay): always known."""

    profiles: Mapping[TaskKey, TaskProfile] = field(default_factory=dict)
    status: ProfilesStatus = ProfilesStatus(True, "profiles from a fixed set")

    def get(self, key: TaskKey) -> TaskProfile | None:
        return self.profiles.get(key)
