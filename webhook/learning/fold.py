"""One finished run into its task's profile. Pure: the time is passed in.

    outcome ─► known already? (its pod uid among the last runs, or first seen finished and
               no newer than the newest run recorded: a restart's first list)
            ─► runs, OOM kills, run time ─► decaying memory peak and cpu p95 (`decay`)
            ─► last runs (10, newest last) ─► the recommendation, for people to read

The memory sample of a run is its peak working set; an OOMKilled run needed more than its
limit, so it counts as max(peak, 1.2 x limit, limit + 256Mi), as the VPA recommender counts an
OOM kill. The decision recomputes the recommendation itself, with the settings of the rule that
matches the pod; the one written here uses the settings of the rule the last run matched.
"""

from __future__ import annotations

from dataclasses import replace

from podtier.webhook.core.learned import ESCALATION_FACTOR, ESCALATION_MIN_STEP
from podtier.webhook.core.matching import airflow_label_value, first_rule
from podtier.webhook.core.pod import PodView, identity_view
from podtier.webhook.core.profile import RunRecord, TaskProfile
from podtier.webhook.core.rightsizing import recommend
from podtier.webhook.learning import decay
from podtier.webhook.learning.names import profile_name
from podtier.webhook.learning.outcome import Outcome
from podtier.webhook.learning.profiles import LAST_RUNS, rfc3339
from podtier.webhook.policy import Policy

PERCENTILE = 0.95


def known(profile: TaskProfile | None, outcome: Outcome) -> bool:
    if profile is None:
        return False
    if outcome.uid and any(run.pod_uid == outcome.uid for run in profile.last_runs):
        return True
    newest = max((run.finished_at for run in profile.last_runs), default=None)
    return outcome.seen_finished and newest is not None and outcome.finished_at <= newest


def fold(profile: TaskProfile | None, outcome: Outcome, policy: Policy, now: float) -> TaskProfile:
    instance = outcome.instance
    if profile is None:
        profile = TaskProfile(
            namespace=instance.key.namespace,
            name=profile_name(instance.key),
            dag_id=instance.dag_id,
            task_id=instance.task_id,
        )
    half_life = policy.learning.half_life_hours * 3600
    memory_histogram = profile.memory_histogram
    sample = memory_sample(outcome)
    if sample is not None:
        memory_histogram = decay.add(
            memory_histogram, sample, outcome.finished_at, half_life, decay.MEMORY
        )
    cpu_histogram = profile.cpu_histogram
    if outcome.cpu_p95_milli is not None:
        cpu_histogram = decay.add(
            cpu_histogram, outcome.cpu_p95_milli, outcome.finished_at, half_life, decay.CPU
        )
    runs = sorted((*profile.last_runs, run_record(outcome)), key=lambda r: r.finished_at)
    folded = TaskProfile(
        namespace=profile.namespace,
        name=profile.name,
        dag_id=_raw_id(profile.dag_id, instance.dag_id),
        task_id=_raw_id(profile.task_id, instance.task_id),
        runs=profile.runs + 1,
        oom_kills=profile.oom_kills + (1 if outcome.oom_killed else 0),
        run_seconds=profile.run_seconds + (outcome.run_seconds or 0.0),
        memory_peak_bytes=decay.percentile(memory_histogram, PERCENTILE, decay.MEMORY),
        cpu_p95_milli=decay.percentile(cpu_histogram, PERCENTILE, decay.CPU),
        requests=outcome.requests or profile.requests,
        limits=outcome.limits or profile.limits,
        tier=outcome.tier,
        pool=outcome.pool,
        recommended_tier=None,
        last_runs=tuple(runs[-LAST_RUNS:]),
        updated_at=rfc3339(now),
        memory_histogram=memory_histogram,
        cpu_histogram=cpu_histogram,
        resource_version=profile.resource_version,
    )
    settings = policy.learning_for(first_rule(policy, _matchable(outcome)))
    if settings.right_sizing == "off":
        return folded
    recommended = recommend(folded, policy, settings).tier
    return replace(folded, recommended_tier=recommended.name if recommended else None)


def memory_sample(outcome: Outcome) -> int | None:
    peak = outcome.memory_peak_bytes
    limit = outcome.memory_limit_bytes
    if outcome.oom_killed and limit:
        bumped = max(int(limit * ESCALATION_FACTOR), limit + ESCALATION_MIN_STEP)
        return max(peak or 0, bumped)
    return peak


def run_record(outcome: Outcome) -> RunRecord:
    instance = outcome.instance
    return RunRecord(
        run_id=instance.run_id,
        try_number=instance.try_number,
        map_index=instance.map_index,
        exit_code=outcome.exit_code,
        reason=outcome.reason,
        oom_killed=outcome.oom_killed,
        run_seconds=outcome.run_seconds,
        finished_at=outcome.finished_at,
        memory_limit_bytes=outcome.memory_limit_bytes,
        memory_peak_bytes=outcome.memory_peak_bytes,
        cpu_p95_milli=outcome.cpu_p95_milli,
        pod_uid=outcome.uid,
        kind=instance.kind,
        escalated_bytes=outcome.escalated_bytes,
    )


def _raw_id(kept: str, seen: str) -> str:
    """The raw id (from annotations) over its label form: a label form is its own label
    value, a raw id that Airflow had to cut or clean is not."""
    return kept if airflow_label_value(kept) != kept else seen


def _matchable(outcome: Outcome) -> PodView:
    namespace, _, name = outcome.pod.partition("/")
    return identity_view(namespace, name, outcome.labels, outcome.annotations)
