"""Folding finished runs into a profile: counts, run time, last runs (10, newest last), the
decaying memory peak and cpu p95, an OOM kill counted as needing more than its limit, the
recommendation, and runs the profile already has (a restart's first list) left out."""

from __future__ import annotations

from dataclasses import replace

from podtier.webhook.core.matching import airflow_label_value
from podtier.webhook.core.profile import TaskProfile
from podtier.webhook.learning.fold import fold, known
from podtier.webhook.learning.outcome import Outcome, outcome_of
from podtier.webhook.learning.profiles import parse_profile, profile_object
from tests.webhook.core.fakes import POLICY
from tests.webhook.learning.pods import T0, ended, worker_pod

GI = 2**30
MI = 2**20


def finished(
    i: int,
    *,
    reason: str = "Completed",
    peak: int | None = 300 * MI,
    cpu: int | None = 150,
    **pod: object,
) -> Outcome:
    raw = ended(
        worker_pod(f"p{i}", **pod),  # type: ignore[arg-type]
        reason=reason,
        exit_code=137 if reason == "OOMKilled" else 0,
        started=T0 + i * 600,
        finished=T0 + i * 600 + 120,
    )
    outcome = outcome_of(raw, POLICY)
    assert outcome is not None
    return replace(outcome, memory_peak_bytes=peak, cpu_p95_milli=cpu)


def folded(*outcomes: Outcome, profile: TaskProfile | None = None) -> TaskProfile | None:
    for outcome in outcomes:
        profile = fold(profile, outcome, POLICY, T0 + 10**5)
    return profile


def test_runs_are_counted_and_the_last_ten_kept_newest_last() -> None:
    profile = folded(*[finished(i) for i in range(12)])
    assert profile is not None
    assert (profile.runs, profile.oom_kills, profile.run_seconds) == (12, 0, 12 * 120)
    assert [r.finished_at for r in profile.last_runs] == [T0 + i * 600 + 120 for i in range(2, 12)]
    assert profile.memory_peak_bytes is not None
    assert 300 * MI <= profile.memory_peak_bytes <= 315 * MI
    assert profile.cpu_p95_milli is not None and 150 <= profile.cpu_p95_milli <= 158
    assert (profile.tier, profile.pool) == ("medium", "worker")
    assert profile.recommended_tier == "light"  # 12 runs, 300Mi x 1.15 < 512Mi, cpu 150m


def test_no_recommendation_before_min_runs() -> None:
    profile = folded(*[finished(i) for i in range(4)])
    assert profile is not None and profile.recommended_tier is None


def test_an_oom_kill_counts_as_needing_more_than_the_limit() -> None:
    profile = folded(finished(0, reason="OOMKilled", peak=None, cpu=None))
    assert profile is not None
    assert profile.oom_kills == 1
    assert profile.memory_peak_bytes is not None
    assert profile.memory_peak_bytes >= 4.8 * GI  # 1.2 x the 4Gi limit
    assert profile.last_runs[-1].oom_killed
    assert profile.last_runs[-1].memory_limit_bytes == 4 * GI


def test_outcomes_without_usage_still_count() -> None:
    profile = folded(*[finished(i, peak=None, cpu=None) for i in range(6)])
    assert profile is not None
    assert profile.runs == 6 and profile.memory_peak_bytes is None
    assert profile.cpu_p95_milli is None and profile.recommended_tier is None


def test_a_profile_knows_its_runs() -> None:
    first, second = finished(0), finished(1)
    profile = folded(first, second)
    assert known(profile, first) and known(profile, second)
    assert not known(profile, finished(2))
    # first seen finished (a restart's list) and no newer than the newest run: known
    older = replace(finished(1), uid="another", seen_finished=True)
    assert known(profile, older)
    assert not known(profile, replace(finished(3), seen_finished=True))


def test_the_raw_id_is_kept_over_its_label_form() -> None:
    long = "nightly_" + "revenue_reconciliation_" * 4
    label = airflow_label_value(long)
    by_label = finished(0, dag_id=label)
    by_annotation = finished(1, dag_id=long)
    profile = folded(by_label)
    assert profile is not None and profile.dag_id == label
    profile = folded(by_annotation, profile=profile)
    assert profile is not None and profile.dag_id == long
    profile = folded(finished(2, dag_id=label), profile=profile)
    assert profile is not None and profile.dag_id == long


def test_a_folded_profile_reads_back_from_its_object() -> None:
    profile = folded(
        *[finished(i, reason="OOMKilled" if i == 3 else "Completed") for i in range(8)]
    )
    assert profile is not None
    assert parse_profile(profile_object(profile)) == profile
