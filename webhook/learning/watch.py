"""The profiles every replica decides from: a list+watch of TaskProfiles into a `ProfileStore`.

The store keeps the readable profiles by task key and publishes them as one immutable mapping,
swapped whole after each change (as headroom's snapshot is), so a request reads one consistent
set. `view(now)` adds the store's status: profiles are unknown until the first list, and again
once the watch has been silent longer than `stale_after` (then the decision falls back to the
rules and says so). Objects that fail `profiles.parse_profile` are left out, with one log line
per object version, and counted in `podtier_profiles{state="ignored"}`.

`ProfileWatch` is the feed: one thread, pages of raw JSON (orjson), a watch from the list's
resourceVersion with bookmarks, a relist on 410 Gone, backoff with jitter on other failures (a
404 means the CRD is not installed, and the status says so). It uses the headroom watch's
stream helpers.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import orjson
from kubernetes import client
from urllib3.exceptions import ReadTimeoutError

from podtier.webhook.core.profile import (
    ProfilesStatus,
    RunRecord,
    TaskInstance,
    TaskKey,
    TaskProfile,
)
from podtier.webhook.headroom.watch import (
    Backoff,
    Gone,
    WatchFailed,
    describe_failure,
    interrupt,
    watch_lines,
)
from podtier.webhook.learning.fold import known, run_record
from podtier.webhook.learning.names import profile_name
from podtier.webhook.learning.outcome import Outcome
from podtier.webhook.learning.profiles import (
    GROUP,
    LAST_RUNS,
    MAX_OBJECT_BYTES,
    PLURAL,
    VERSION,
    ProfileError,
    parse_profile,
)
from podtier.webhook.observability.metrics import PROFILES

log = logging.getLogger("podtier.learning")

ObjectKey = tuple[str, str]  # (namespace, name)
SEEN_TASKS = 10_000  # tasks with runs seen but not yet published, at most
SEEN_FOR = 600.0  # seconds after its end a run seen but never published stops counting


@dataclass(frozen=True)
class ProfileSnapshot:
    """One request's `ProfilesView`: the published profiles, with the runs this replica saw
    end that they do not show yet (`seen`, see `ProfileStore.saw_end`)."""

    profiles: Mapping[TaskKey, TaskProfile]
    status: ProfilesStatus
    seen: Mapping[TaskKey, TaskProfile] = field(default_factory=dict)

    def get(self, key: TaskKey) -> TaskProfile | None:
        profile = self.seen.get(key)
        return self.profiles.get(key) if profile is None else profile


class ProfileStore:
    def __init__(
        self,
        *,
        source: str,
        stale_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        static: bool = False,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.stale_after = stale_after
        self.clock = clock
        self.static = static
        self.wall_clock = wall_clock  # runs' end times are wall-clock times
        self._lock = threading.Lock()
        self._objects: dict[ObjectKey, TaskProfile] = {}
        self._ignored: dict[ObjectKey, str] = {}  # object -> resourceVersion refused
        self._published: Mapping[TaskKey, TaskProfile] = MappingProxyType({})
        # Runs this replica's pod watch saw end that the task's published profile does not
        # show yet (the writer writes every few seconds, and only on the Lease holder), and
        # the published profiles with them among their last runs.
        self._runs_seen: dict[TaskKey, tuple[TaskInstance, tuple[RunRecord, ...]]] = {}
        self._seen: Mapping[TaskKey, TaskProfile] = MappingProxyType({})
        self._synced = False
        self._connected = False
        self._last_contact = 0.0
        self._error = ""

    # ------------------------------------------------------------------ reading

    def view(self, now: float | None = None) -> ProfileSnapshot:
        now = self.clock() if now is None else now
        with self._lock:
            return ProfileSnapshot(self._published, self._status(now), self._seen)

    def get(self, key: TaskKey) -> TaskProfile | None:
        """The published profile (what the writer folds into), without runs only seen."""
        return self._published.get(key)

    def saw_end(self, outcome: Outcome) -> None:
        """A run of the task ended, as this replica's pod watch saw it (the recorder calls
        this for every outcome, on every replica). Decisions see it among the task's last runs
        at once, so a pod Airflow relaunches or retries a second after an OOM kill is raised
        from that kill, not from an older one; it stops being added once the published profile
        has it."""
        key = outcome.instance.key
        with self._lock:
            if known(self._published.get(key), outcome):
                return
            _, runs = self._runs_seen.pop(key, (outcome.instance, ()))
            self._runs_seen[key] = (outcome.instance, (*runs, run_record(outcome))[-LAST_RUNS:])
            while len(self._runs_seen) > SEEN_TASKS:
                del self._runs_seen[next(iter(self._runs_seen))]  # the longest unwritten
            self._merge_seen()

    def counts(self) -> tuple[int, int]:
        """(readable profiles, ignored objects)."""
        with self._lock:
            return len(self._objects), len(self._ignored)

    def _status(self, now: float) -> ProfilesStatus:
        if not self._synced:
            why = f": {self._error}" if self._error else ""
            return ProfilesStatus(False, f"profiles not listed yet from {self.source}{why}")
        if self.static or self._connected:
            return ProfilesStatus(True, f"profiles from {self.source}")
        age = now - self._last_contact
        if age > self.stale_after:
            why = f": {self._error}" if self._error else ""
            return ProfilesStatus(
                False,
                f"profiles are stale: no word from {self.source} for {age:.0f}s "
                f"(limit {self.stale_after:.0f}s){why}",
            )
        return ProfilesStatus(True, f"profiles from {self.source}")

    # ------------------------------------------------------------------ feeding

    def relist(self, items: Iterable[Mapping[str, Any]]) -> None:
        objects: dict[ObjectKey, TaskProfile] = {}
        ignored: dict[ObjectKey, str] = {}
        with self._lock:
            logged = dict(self._ignored)
        for raw in items:
            self._read(raw, objects, ignored, logged)
        with self._lock:
            self._objects, self._ignored = objects, ignored
            self._synced = True
            self._error = ""
            self._last_contact = self.clock()
            self._publish()

    def apply(self, event_type: str, raw: Mapping[str, Any]) -> None:
        with self._lock:
            if event_type == "DELETED":
                key = _object_key(raw)
                self._objects.pop(key, None)
                self._ignored.pop(key, None)
            else:
                self._read(raw, self._objects, self._ignored, self._ignored)
            self._last_contact = self.clock()
            self._publish()

    def put(self, profile: TaskProfile) -> None:
        """A profile this replica just wrote (the watch will say the same shortly)."""
        with self._lock:
            key = (profile.namespace, profile.name)
            current = self._objects.get(key)
            if current is not None and _newer(current.resource_version, profile.resource_version):
                return
            self._objects[key] = profile
            self._ignored.pop(key, None)
            self._publish()

    def connected(self) -> None:
        with self._lock:
            self._connected = True
            self._last_contact = self.clock()
            self._error = ""

    def touched(self) -> None:
        with self._lock:
            self._last_contact = self.clock()

    def disconnected(self, error: str = "") -> None:
        with self._lock:
            self._connected = False
            if error:
                self._error = error

    def _read(
        self,
        raw: Mapping[str, Any],
        objects: dict[ObjectKey, TaskProfile],
        ignored: dict[ObjectKey, str],
        logged: Mapping[ObjectKey, str],
    ) -> None:
        """Read `raw` into `objects`, or into `ignored` with a log line (unless `logged`
        already has this very version)."""
        key = _object_key(raw)
        version = str((raw.get("metadata") or {}).get("resourceVersion") or "")
        try:
            size = len(orjson.dumps(raw))
            if size > MAX_OBJECT_BYTES:
                raise ProfileError(f"{size} bytes, at most {MAX_OBJECT_BYTES}")
            profile = parse_profile(raw)
        except (ProfileError, orjson.JSONEncodeError, TypeError) as err:
            objects.pop(key, None)
            if logged.get(key) != version:
                log.warning(
                    "learning: TaskProfile %s/%s ignored: %s",
                    key[0],
                    key[1],
                    err,
                    extra={"namespace": key[0], "profile": key[1]},
                )
            ignored[key] = version
            return
        ignored.pop(key, None)
        objects[key] = profile

    def _publish(self) -> None:
        self._published = MappingProxyType({p.key: p for p in self._objects.values()})
        if self._runs_seen:
            self._merge_seen()
        PROFILES.labels("valid").set(len(self._objects))
        PROFILES.labels("ignored").set(len(self._ignored))

    def _merge_seen(self) -> None:
        """`_seen`: each published profile (or, for a task without one, an empty one) with the
        runs seen that it does not show yet; runs it shows are forgotten, and so are runs the
        writer never wrote (its API calls failing) once `SEEN_FOR` has passed."""
        merged: dict[TaskKey, TaskProfile] = {}
        cutoff = self.wall_clock() - SEEN_FOR
        for key, (instance, runs) in list(self._runs_seen.items()):
            base = self._published.get(key)
            shown = {run.pod_uid for run in base.last_runs} if base is not None else set()
            fresh = tuple(r for r in runs if r.pod_uid not in shown and r.finished_at > cutoff)
            if not fresh:
                del self._runs_seen[key]
                continue
            self._runs_seen[key] = (instance, fresh)
            if base is None:
                base = TaskProfile(
                    namespace=key.namespace,
                    name=profile_name(key),
                    dag_id=instance.dag_id,
                    task_id=instance.task_id,
                )
            last = sorted((*base.last_runs, *fresh), key=lambda run: run.finished_at)
            merged[key] = replace(base, last_runs=tuple(last[-LAST_RUNS:]))
        self._seen = MappingProxyType(merged)


def _object_key(raw: Mapping[str, Any]) -> ObjectKey:
    meta = raw.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _newer(held: str, given: str) -> bool:
    """resourceVersions are opaque, but etcd's are integers: keep the higher one."""
    try:
        return int(held) > int(given)
    except ValueError:
        return False


class ProfileWatch:
    """Feeds a `ProfileStore` from the API server until `stop()`."""

    def __init__(
        self,
        store: ProfileStore,
        api_client: client.ApiClient,
        *,
        page_size: int = 500,
        watch_seconds: tuple[int, int] = (240, 300),
        backoff: Callable[[], Backoff] = Backoff,
        connect_timeout: float = 10.0,
    ) -> None:
        self.store = store
        self.api: Any = client.CustomObjectsApi(api_client)  # raw JSON in and out
        self.page_size = page_size
        self.watch_seconds = watch_seconds
        self.make_backoff = backoff
        self.connect_timeout = connect_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None
        self._rv = ""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="taskprofiles", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._response is not None:
            interrupt(self._response)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        backoff = self.make_backoff()
        while not self._stop.is_set():
            try:
                if not self._rv:
                    self._rv = self._relist()
                self._watch()
                backoff.reset()
            except Gone:
                log.info("learning: TaskProfile watch history expired; relisting")
                self._rv = ""
            except Exception as err:  # noqa: BLE001 - every failure is retried, after a wait
                if self._stop.is_set():
                    return
                reason = _why(err)
                self.store.disconnected(reason)
                if isinstance(err, ReadTimeoutError) or "Read timed out" in str(err):
                    continue
                delay = backoff.next()
                log.warning("learning: TaskProfile feed failed (%s); retry in %.1fs", reason, delay)
                self._stop.wait(delay)

    def _relist(self) -> str:
        items: list[Mapping[str, Any]] = []
        token, version = None, ""
        while True:
            kwargs: dict[str, Any] = {
                "limit": self.page_size,
                "_preload_content": False,
                "_request_timeout": (self.connect_timeout, 60),
            }
            if token:
                kwargs["_continue"] = token
            try:
                response = self.api.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kwargs)
            except client.ApiException as err:
                if err.status == 410:
                    raise Gone() from None
                raise
            page = orjson.loads(response.data)
            response.release_conn()
            meta = page.get("metadata") or {}
            version = version or str(meta.get("resourceVersion") or "")
            items += page.get("items") or []
            token = meta.get("continue")
            if not token:
                break
        self.store.relist(items)
        return version

    def _watch(self) -> None:
        response = self.api.list_cluster_custom_object(
            GROUP,
            VERSION,
            PLURAL,
            watch=True,
            resource_version=self._rv,
            allow_watch_bookmarks=True,
            timeout_seconds=random.randint(*self.watch_seconds),
            _preload_content=False,
            _request_timeout=(self.connect_timeout, max(self.store.stale_after / 2, 1.0)),
        )
        self._response = response
        self.store.connected()
        try:
            for line in watch_lines(response):
                event = orjson.loads(line)
                event_type = event.get("type")
                obj = event.get("object") or {}
                if event_type == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise WatchFailed(f"watch error: {obj.get('message') or obj}")
                if event_type == "BOOKMARK":
                    self.store.touched()
                elif isinstance(obj, dict):
                    self.store.apply(str(event_type), obj)
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if rv:
                    self._rv = str(rv)
        finally:
            self._response = None
            self.store.disconnected()
            response.release_conn()


def _why(err: Exception) -> str:
    if isinstance(err, client.ApiException) and err.status == 404:
        return "the API server has no taskprofiles.podtier.io (is the TaskProfile CRD installed?)"
    if isinstance(err, client.ApiException) and err.status == 403:
        return "not allowed to list taskprofiles.podtier.io (RBAC: is learning on in the chart?)"
    return describe_failure(err)
