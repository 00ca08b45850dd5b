"""Where a report's facts come from: a `kubectl get -o json` file, or the cluster itself.

    kubectl get nodes,pods,taskprofiles,podmetrics -A -o json > dump.json   # anywhere
    podtier report --cluster dump.json                                      # anywhere else

A file is read as a stream (`headroom.dump`), live lists a page at a time, and both feed the
same folds (`Observed.add_*`): each pod is reduced to a `PodRun` as it comes (the cyclic garbage
collector paused, as the headroom relist does), so a 150,000-pod dump never becomes one tree of
Python objects. TaskProfiles and PodMetrics are optional: without them the report has less
to say, and its notes say what was missing. An object that cannot be read is skipped and
counted in the notes, never fatal.

`now` of a file is the latest moment the file shows (a PodMetrics sample, a profile update, a
pod's creation, binding, start or finish), so a dump reported a week later gives the figures
of the day it was taken. Live, it is the clock after the lists.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from podtier.webhook.headroom.tracker import collector_paused
from podtier.webhook.policy import Policy
from podtier.webhook.report.decode import (
    decode_pod,
    decode_pod_metrics,
    decode_pods,
    decode_pods_metrics,
)
from podtier.webhook.report.facts import (
    FactError,
    PodRun,
    Profile,
    TaskKey,
    Usage,
    metrics_usage,
    pod_run,
    task_profile,
)

TASK_PROFILE = "TaskProfile"
POD_METRICS = "PodMetrics"
PROFILE_API = ("podtier.io", "v1alpha1", "taskprofiles")


class SourceError(ValueError):
    """The pods cannot be read at all; the message names the file or the cluster."""


@dataclass
class Observed:
    source: str
    policy: Policy
    pods: list[PodRun] = field(default_factory=list)
    metrics: dict[str, Usage] = field(default_factory=dict)
    profiles: dict[TaskKey, Profile] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    latest: float | None = None  # the latest moment the objects show
    skipped: dict[str, list[str]] = field(default_factory=dict)  # kind -> errors

    def add_pods(self, page: Iterable[Mapping[str, Any]]) -> None:
        latest = self.latest or 0.0
        for raw in page:
            try:
                run = pod_run(raw, self.policy)
            except FactError as err:
                self._skip("Pod", err)
                continue
            if run is None:
                continue
            self.pods.append(run)
            for moment in (run.finished, run.started, run.bound, run.created):
                if moment is not None and moment > latest:
                    latest = moment
        self.latest = latest or self.latest

    def add_metrics(self, items: Iterable[Mapping[str, Any]]) -> None:
        for item in items:
            try:
                key, usage, sampled = metrics_usage(item)
            except FactError as err:
                self._skip(POD_METRICS, err)
                continue
            self.metrics[key] = usage
            self._saw(sampled)

    def add_profiles(self, items: Iterable[Mapping[str, Any]]) -> None:
        for item in items:
            try:
                profile = task_profile(item)
            except FactError as err:
                self._skip(TASK_PROFILE, err)
                continue
            self.profiles[profile.task] = profile
            self._saw(profile.updated)

    def finish(self) -> None:
        for kind, errors in self.skipped.items():
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            self.notes.append(f"{len(errors)} {kind} objects skipped: {errors[0]}{more}")

    def _saw(self, moment: float | None) -> None:
        if moment is not None and (self.latest is None or moment > self.latest):
            self.latest = moment

    def _skip(self, kind: str, err: Exception) -> None:
        self.skipped.setdefault(kind, []).append(str(err))


def from_file(path: str, policy: Policy) -> Observed:
    """The file's pods, TaskProfiles and PodMetrics folded in as the stream reaches them, in
    file order (one read; only the fields the facts read are decoded: `report.decode`)."""
    from podtier.webhook.headroom.snapshot import POD, ClusterFileError, cluster_objects, paged

    observed = Observed(f"file {path}", policy)
    decoders = {POD: decode_pod, TASK_PROFILE: orjson.loads, POD_METRICS: decode_pod_metrics}
    many = {POD: decode_pods, POD_METRICS: decode_pods_metrics}
    saw = dict.fromkeys((TASK_PROFILE, POD_METRICS), False)
    folds = {TASK_PROFILE: observed.add_profiles, POD_METRICS: observed.add_metrics}

    def pods(objects: Iterator[tuple[str, Any]]) -> Iterator[Mapping[str, Any]]:
        for kind, obj in objects:
            if kind == POD:
                yield obj
            else:
                saw[kind] = True
                folds[kind]((obj,))

    try:
        with collector_paused():
            objects = cluster_objects(path, decoders, many)
            for page in paged(pods(objects)):
                observed.add_pods(page)
    except ClusterFileError as err:
        raise SourceError(str(err)) from None
    if not saw[TASK_PROFILE]:
        observed.notes.append(
            "no TaskProfiles in the file (kubectl get nodes,pods,taskprofiles -A -o json): "
            "no recommendations, and usage only from PodMetrics"
        )
    if not saw[POD_METRICS]:
        observed.notes.append(
            "no PodMetrics in the file (add podmetrics to kubectl get): running pods' usage "
            "only from their task profiles"
        )
    observed.finish()
    return observed


def from_cluster(
    kubeconfig: str | None, policy: Policy, clock: Callable[[], float] = time.time
) -> Observed:
    from kubernetes import client

    from podtier.webhook.headroom import HeadroomConfigError, cluster_configuration
    from podtier.webhook.insight.listing import ListError, list_pages
    from podtier.webhook.insight.utilization import GROUP, metrics_version

    try:
        configuration = cluster_configuration(kubeconfig)
    except HeadroomConfigError as err:
        raise SourceError(str(err)) from None
    observed = Observed(configuration.host, policy)
    with client.ApiClient(configuration) as api_client:
        core = client.CoreV1Api(api_client)
        custom = client.CustomObjectsApi(api_client)
        try:
            with collector_paused():
                for page in list_pages(core.list_pod_for_all_namespaces, what="pods"):
                    observed.add_pods(page)
        except ListError as err:
            raise SourceError(f"{configuration.host}: {err}") from None
        try:
            for page in list_pages(
                custom.list_cluster_custom_object, *PROFILE_API, what="TaskProfiles"
            ):
                observed.add_profiles(page)
        except ListError as err:
            observed.notes.append(
                "no TaskProfiles (the podtier.io CRD is not installed): no recommendations"
                if err.status == 404
                else f"no TaskProfiles: {err}"
            )
        try:
            version = metrics_version(client.ApisApi(api_client))
            if version is None:
                observed.notes.append("no metrics.k8s.io API (metrics-server): no PodMetrics")
            else:
                pages = list_pages(
                    custom.list_cluster_custom_object, GROUP, version, "pods", what="PodMetrics"
                )
                for page in pages:
                    observed.add_metrics(page)
        except (ListError, client.ApiException) as err:
            observed.notes.append(f"no PodMetrics: {err}")
    observed.latest = clock()
    observed.finish()
    return observed
