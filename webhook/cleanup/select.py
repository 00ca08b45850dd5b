"""Which finished Airflow pods cleanup may delete now: pure, from the census's picture.

A pod may go when all of these hold:
- its phase is Succeeded or Failed;
- it carries Airflow's worker labels (the current policy's `airflowPods` selectors);
- it has a finish time (the latest container `terminated.finishedAt`) older than `after`;
- it is not a KubernetesPodOperator pod (`kubernetes_pod_operator=True`) without Airflow's
  `already_checked=True` label (Airflow still has to read its result);
- it has a uid (deletes are conditional on it).
The oldest go first, at most `limit` at a time.
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Iterable

from podtier.webhook.insight.facts import FINISHED_PHASES, PodFacts, is_airflow, is_unchecked_kpo
from podtier.webhook.policy import Policy


def may_delete(pod: PodFacts, policy: Policy, now: float, after: float) -> bool:
    return (
        pod.phase in FINISHED_PHASES
        and pod.finished is not None
        and now - pod.finished > after
        and bool(pod.uid)
        and is_airflow(pod.labels, policy.airflow_pods)
        and not is_unchecked_kpo(pod.labels)
    )


def pick(
    pods: Iterable[PodFacts],
    policy: Policy,
    now: float,
    after: float,
    limit: int,
    skip: Container[str] = (),
) -> list[PodFacts]:
    """Up to `limit` pods that may be deleted now, oldest finish first; `skip` holds uids
    already deleted (the watch has not shown them gone yet)."""
    eligible = (p for p in pods if p.uid not in skip and may_delete(p, policy, now, after))
    return heapq.nsmallest(limit, eligible, key=lambda p: p.finished or 0.0)
