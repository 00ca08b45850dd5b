"""A test API server that stands in for kube-apiserver (which cannot be installed here).

It speaks the real Kubernetes REST wire protocol on plain HTTP at 127.0.0.1, in a background
thread, so tests drive it with the official `kubernetes` client:

    api = KubeAPI().start()
    config = kubernetes.client.Configuration(host=api.url)
    core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))

Resources (cluster-scoped unless marked namespaced):

    core/v1                         nodes, namespaces, pods (ns), secrets (ns), configmaps (ns)
    admissionregistration.k8s.io/v1 mutatingwebhookconfigurations, validatingwebhookconfigurations
    coordination.k8s.io/v1          leases (ns)
    metrics.k8s.io/v1beta1          pods (ns; PodMetrics, only while `metrics_api` is True)
    podtier.io/v1alpha1             taskprofiles (ns; as if its CRD were registered, only while
                                    `taskprofiles_api` is True)

Discovery: `GET /apis` lists the API groups (metrics.k8s.io only while `metrics_api` is True).

Verbs, as kube-apiserver answers them:

- list: `metadata.resourceVersion` on the list, `limit`/`continue` chunking over a consistent
  snapshot (410 Expired once compacted), `labelSelector` (=, ==, !=, in, notin, exists, !exists)
  and `fieldSelector` (`metadata.name`, `metadata.namespace`, `spec.nodeName`,
  `status.phase`; =, ==, !=). `GET /api/v1/pods` lists pods in all namespaces.
- watch: `?watch=true&resourceVersion=N&allowWatchBookmarks=true&timeoutSeconds=S` streams
  chunked newline-delimited JSON events (ADDED, MODIFIED, DELETED, BOOKMARK). Without a
  resourceVersion (or "0") it first sends the current objects as ADDED. A resourceVersion older
  than the compacted history gets HTTP 200 and one ERROR event carrying a 410 Status, as the
  real server does. Selector-filtered watches see an object leaving the selection as DELETED.
- get (404 NotFound), create (409 AlreadyExists, generateName), update/PUT (409 Conflict on a
  stale resourceVersion), patch (JSON patch, merge patch, strategic merge patch with lists of
  named objects merged by name), delete (with preconditions), deletecollection, `?dryRun=All`.
  `/status` subresources are accepted for PUT and PATCH.

Controls for tests (all thread-safe): `put`/`remove` objects directly (bumping the global
resourceVersion and notifying watchers), `compact()` history so older resourceVersions get 410,
`drop_watches()`, `down()`/`up()` (the port refuses connections while down and open connections
are cut), `bookmark()`, `delete_count`, and `delete_delay`/`delete_rate` to slow deletions down
(over the rate the server answers 429 TooManyRequests with Retry-After, as API priority and
fairness does).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import itertools
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonpatch


@dataclass(frozen=True)
class Kind:
    group: str  # "" for core
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """The name objects are stored under: `pods`, or `pods.metrics.k8s.io`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


KINDS = [
    Kind("", "v1", "nodes", "Node", False),
    Kind("", "v1", "namespaces", "Namespace", False),
    Kind("", "v1", "pods", "Pod", True),
    Kind("", "v1", "secrets", "Secret", True),
    Kind("", "v1", "configmaps", "ConfigMap", True),
    Kind(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
    ),
    Kind(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
    ),
    Kind("coordination.k8s.io", "v1", "leases", "Lease", True),
    # Served only while `KubeAPI.metrics_api` is True, as when metrics-server is installed.
    Kind("metrics.k8s.io", "v1beta1", "pods", "PodMetrics", True),
    # podtier's custom resource, served only while `KubeAPI.taskprofiles_api` is True.
    Kind("podtier.io", "v1alpha1", "taskprofiles", "TaskProfile", True),
]
METRICS_GROUP = "metrics.k8s.io"
PODTIER_GROUP = "podtier.io"
_BY_PATH = {(k.group, k.version, k.plural): k for k in KINDS}
_BY_KIND = {k.kind: k for k in KINDS}

Key = tuple[str, str, str]  # (resource, namespace, name)


@dataclass
class _Event:
    rv: int
    kind: Kind
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


# --------------------------------------------------------------------------- selectors

_LABEL_TERM = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9_./-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9_.-]*)|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def _split_selector(text: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        terms.append(current)
    return terms


def label_matcher(selector: str) -> Callable[[dict[str, str]], bool]:
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_selector(selector):
        m = _LABEL_TERM.match(term)
        if not m:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r}")
        key, neg = m["key"], bool(m["neg"])
        if m["op"]:
            value, op = m["value"], m["op"]
            if op == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif m["setop"]:
            values = {v.strip() for v in m["values"].split(",") if v.strip()}
            if m["setop"] == "in":
                checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif neg:
            checks.append(lambda labels, k=key: k not in labels)
        else:
            checks.append(lambda labels, k=key: k in labels)
    return lambda labels: all(check(labels) for check in checks)


_FIELDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "metadata.name": lambda o: o.get("metadata", {}).get("name", ""),
    "metadata.namespace": lambda o: o.get("metadata", {}).get("namespace", ""),
    "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", "") or "",
    "status.phase": lambda o: (o.get("status") or {}).get("phase", "") or "",
    "spec.unschedulable": lambda o: str(bool((o.get("spec") or {}).get("unschedulable"))).lower(),
}


def field_matcher(selector: str) -> Callable[[dict[str, Any]], bool]:
    checks: list[Callable[[dict[str, Any]], bool]] = []
    for term in _split_selector(selector):
        m = re.match(r"^\s*([A-Za-z.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m or m[1] not in _FIELDS:
            raise ApiError(400, "BadRequest", f'field label not supported: "{term}"')
        getter, op, value = _FIELDS[m[1]], m[2], m[3]
        if op == "!=":
            checks.append(lambda o, g=getter, v=value: g(o) != v)
        else:
            checks.append(lambda o, g=getter, v=value: g(o) == v)
    return lambda obj: all(check(obj) for check in checks)


# --------------------------------------------------------------------------- patches


def merge_patch(target: Any, patch: Any, strategic: bool = False) -> Any:
    """RFC 7386 merge patch; `strategic` also merges lists of objects by their `name`."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif (
            strategic
            and isinstance(value, list)
            and _named_list(value)
            and _named_list(result.get(key))
        ):
            merged = {item["name"]: item for item in result[key]}
            order = [item["name"] for item in result[key]]
            for item in value:
                if item.get("$patch") == "delete":
                    merged.pop(item["name"], None)
                    continue
                if item["name"] not in merged:
                    order.append(item["name"])
                merged[item["name"]] = merge_patch(merged.get(item["name"], {}), item, strategic)
            result[key] = [merged[name] for name in order if name in merged]
        else:
            result[key] = merge_patch(result.get(key), value, strategic)
    return result


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, dict) and "name" in i for i in value)


# --------------------------------------------------------------------------- the store


class KubeAPI:
    """The server. `start()` binds 127.0.0.1 on a free port (or `port`) and serves in a thread."""

    def __init__(self, port: int = 0, page_snapshot_limit: int = 64) -> None:
        self._lock = threading.Condition(threading.RLock())
        self._objects: dict[Key, dict[str, Any]] = {}
        self._rv = 1
        self._history: list[_Event] = []
        self._compacted_rv = 1  # resourceVersions below this are gone (410)
        self._snapshots: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self._snapshot_ids = itertools.count(1)
        self._page_snapshot_limit = page_snapshot_limit
        self._watch_generation = 0
        self._bookmark_generation = 0
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._is_down = False
        self.delete_count = 0
        self.delete_delay = 0.0
        self.delete_rate: float | None = None  # deletions per second before 429
        self._delete_times: list[float] = []
        self.requests: list[tuple[str, str]] = []  # (method, path?query) seen, for assertions
        self.open_watches = 0
        self.metrics_api = False  # serve metrics.k8s.io (PodMetrics), as metrics-server does
        self.taskprofiles_api = True  # serve podtier.io (TaskProfiles), as if the CRD were in

    # ----------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> KubeAPI:
        api = self

        class Handler(_Handler):
            server_api = api

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name="kubeapi",
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()
        self._is_down = False
        return self

    def stop(self) -> None:
        self.down()

    def down(self) -> None:
        """Stop listening (new connections are refused) and cut every open connection."""
        with self._lock:
            self._is_down = True
            self._watch_generation += 1
            self._lock.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def up(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            self.start()

    def __enter__(self) -> KubeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- test controls

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object directly (ADDED or MODIFIED); returns the stored copy."""
        kind = _BY_KIND[obj["kind"]]
        meta = obj.get("metadata", {})
        with self._lock:
            namespace = meta.get("namespace", "") if kind.namespaced else ""
            key = (kind.resource, namespace, meta["name"])
            old = self._objects.get(key)
            return self._store(kind, key, copy.deepcopy(obj), old)

    def remove(self, kind_name: str, name: str, namespace: str = "") -> None:
        """Delete an object directly (DELETED event)."""
        kind = _BY_KIND[kind_name]
        with self._lock:
            key = (kind.resource, namespace if kind.namespaced else "", name)
            old = self._objects.pop(key)
            self._record(kind, "DELETED", self._bump(copy.deepcopy(old)), old)

    def get(self, kind_name: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        kind = _BY_KIND[kind_name]
        with self._lock:
            obj = self._objects.get((kind.resource, namespace if kind.namespaced else "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def objects(self, kind_name: str) -> list[dict[str, Any]]:
        plural = _BY_KIND[kind_name].resource
        with self._lock:
            return [copy.deepcopy(o) for k, o in sorted(self._objects.items()) if k[0] == plural]

    def compact(self) -> None:
        """Forget history: every resourceVersion before the current one now gets 410 Gone."""
        with self._lock:
            self._rv += 1
            self._compacted_rv = self._rv
            self._history.clear()
            self._snapshots.clear()

    def drop_watches(self) -> None:
        """Close every open watch stream (clients see the stream end)."""
        with self._lock:
            self._watch_generation += 1
            self._lock.notify_all()

    def bookmark(self) -> None:
        """Send a BOOKMARK with the current resourceVersion to watches that asked for them."""
        with self._lock:
            self._bookmark_generation += 1
            self._lock.notify_all()

    # ----------------------------------------------------------------- internals

    def _bump(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        return obj

    def _record(
        self, kind: Kind, type_: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        self._history.append(_Event(self._rv, kind, type_, obj, old))
        self._lock.notify_all()

    def _store(
        self, kind: Kind, key: Key, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> dict[str, Any]:
        obj["kind"], obj["apiVersion"] = kind.kind, kind.api_version
        meta = obj.setdefault("metadata", {})
        if kind.namespaced:
            meta["namespace"] = key[1]
        if old is None:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        else:
            meta["uid"] = old["metadata"]["uid"]
            meta["creationTimestamp"] = old["metadata"].get("creationTimestamp")
        self._bump(obj)
        self._objects[key] = obj
        self._record(kind, "ADDED" if old is None else "MODIFIED", obj, old)
        return copy.deepcopy(obj)

    def _snapshot_page(
        self, kind: Kind, namespace: str | None, query: dict[str, str]
    ) -> dict[str, Any]:
        labels = label_matcher(query.get("labelSelector", ""))
        fields = field_matcher(query.get("fieldSelector", ""))
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        with self._lock:
            if token:
                try:
                    snap_id, offset = json.loads(base64.b64decode(token))
                except ValueError:
                    raise ApiError(400, "BadRequest", "invalid continue token") from None
                if snap_id not in self._snapshots:
                    raise ApiError(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to "
                        "display a consistent list result. You can start a new list "
                        "without the continue parameter.",
                    )
                rv, items = self._snapshots[snap_id]
            else:
                rv, offset = self._rv, 0
                items = [
                    copy.deepcopy(o)
                    for k, o in sorted(self._objects.items())
                    if k[0] == kind.resource
                    and (namespace is None or k[1] == namespace)
                    and labels(o.get("metadata", {}).get("labels") or {})
                    and fields(o)
                ]
                snap_id = str(next(self._snapshot_ids))
            page = items[offset : offset + limit] if limit else items[offset:]
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            if limit and offset + limit < len(items):
                self._snapshots[snap_id] = (rv, items)
                while len(self._snapshots) > self._page_snapshot_limit:
                    self._snapshots.pop(next(iter(self._snapshots)))
                meta["continue"] = base64.b64encode(
                    json.dumps([snap_id, offset + limit]).encode()
                ).decode()
                meta["remainingItemCount"] = len(items) - offset - limit
            else:
                self._snapshots.pop(snap_id, None)
        return {
            "kind": f"{kind.kind}List",
            "apiVersion": kind.api_version,
            "metadata": meta,
            "items": page,
        }

    def _watch(
        self, kind: Kind, namespace: str | None, query: dict[str, str]
    ) -> Iterator[dict[str, Any]]:
        labels = label_matcher(query.get("labelSelector", ""))
        fields = field_matcher(query.get("fieldSelector", ""))
        bookmarks = query.get("allowWatchBookmarks", "").lower() in ("true", "1")
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        rv_text = query.get("resourceVersion", "")

        def selected(obj: dict[str, Any] | None) -> bool:
            if obj is None:
                return False
            meta = obj.get("metadata", {})
            if namespace is not None and meta.get("namespace") != namespace:
                return False
            return labels(meta.get("labels") or {}) and fields(obj)

        with self._lock:
            generation = self._watch_generation
            bookmark_gen = self._bookmark_generation
            if rv_text in ("", "0"):
                position = self._rv
                initial = [
                    copy.deepcopy(o)
                    for k, o in sorted(self._objects.items())
                    if k[0] == kind.resource and selected(o)
                ]
            else:
                try:
                    position = int(rv_text)
                except ValueError:
                    raise ApiError(
                        400, "BadRequest", f"invalid resource version: {rv_text}"
                    ) from None
                initial = []
            gone = position < self._compacted_rv
        if gone:
            yield _gone(position, self._compacted_rv)
            return
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        with self._lock:
            self.open_watches += 1
        try:
            while True:
                with self._lock:
                    events: list[dict[str, Any]] = []
                    while True:
                        if self._watch_generation != generation:
                            return
                        if position < self._compacted_rv:
                            events = [_gone(position, self._compacted_rv)]
                            break
                        for event in self._history_after(position):
                            position = event.rv
                            if event.kind is not kind:
                                continue
                            was, now = selected(event.old), selected(event.obj)
                            if event.type == "DELETED":
                                if was:
                                    events.append({"type": "DELETED", "object": event.obj})
                            elif now and was:
                                events.append({"type": "MODIFIED", "object": event.obj})
                            elif now:
                                events.append({"type": "ADDED", "object": event.obj})
                            elif was:
                                events.append({"type": "DELETED", "object": event.obj})
                        if self._bookmark_generation != bookmark_gen:
                            bookmark_gen = self._bookmark_generation
                            if bookmarks:
                                events.append(
                                    {
                                        "type": "BOOKMARK",
                                        "object": {
                                            "kind": kind.kind,
                                            "apiVersion": kind.api_version,
                                            "metadata": {"resourceVersion": str(self._rv)},
                                        },
                                    }
                                )
                        if events:
                            break
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return
                        self._lock.wait(min(remaining, 0.5))
                for event in events:
                    yield {"type": event["type"], "object": copy.deepcopy(event["object"])}
                    if event["type"] == "ERROR":
                        return
        finally:
            with self._lock:
                self.open_watches -= 1

    def _history_after(self, rv: int) -> list[_Event]:
        # history is sorted by rv; binary search for the first event after rv
        lo, hi = 0, len(self._history)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._history[mid].rv <= rv:
                lo = mid + 1
            else:
                hi = mid
        return self._history[lo:]

    # ----------------------------------------------------------------- verbs

    def handle(
        self, method: str, path: str, query: dict[str, str], body: bytes, content_type: str
    ) -> tuple[int, Any]:
        kind, namespace, name, sub = self._route(path)
        dry_run = "dryRun" in query
        if method == "GET":
            if name is None:
                return 200, self._snapshot_page(kind, namespace, query)
            return 200, self._get(kind, namespace or "", name)
        if method == "POST" and name is None:
            return 201, self._create(kind, namespace or "", _json(body), dry_run)
        if method == "PUT" and name is not None:
            return 200, self._update(kind, namespace or "", name, _json(body), dry_run)
        if method == "PATCH" and name is not None:
            return 200, self._patch(kind, namespace or "", name, body, content_type, dry_run)
        if method == "DELETE" and name is not None:
            return 200, self._delete(
                kind, namespace or "", name, _json(body) if body else {}, dry_run
            )
        if method == "DELETE":
            return 200, self._delete_collection(kind, namespace, query, dry_run)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")

    def _route(self, path: str) -> tuple[Kind, str | None, str | None, str | None]:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({path})"
            )
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        kind = _BY_PATH.get((group, version, rest[0]))
        if kind is not None and not self._serves(kind.group):
            kind = None
        if kind is None or len(rest) > 3:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({path})"
            )
        if kind.namespaced is False and namespace is not None:
            raise ApiError(404, "NotFound", f"{kind.plural} is not namespaced")
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        if sub not in (None, "status"):
            raise ApiError(404, "NotFound", f"subresource {sub} not found")
        if kind.namespaced and name is not None and namespace is None:
            raise ApiError(404, "NotFound", f"{kind.plural} is namespaced")
        return kind, namespace, name, sub

    def _serves(self, group: str) -> bool:
        if group == METRICS_GROUP:
            return self.metrics_api
        if group == PODTIER_GROUP:
            return self.taskprofiles_api
        return True

    def api_groups(self) -> dict[str, Any]:
        """`GET /apis`: the APIGroupList discovery answers with."""
        groups: dict[str, list[str]] = {}
        for kind in KINDS:
            if kind.group and self._serves(kind.group):
                versions = groups.setdefault(kind.group, [])
                if kind.version not in versions:
                    versions.append(kind.version)
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": name,
                    "versions": [{"groupVersion": f"{name}/{v}", "version": v} for v in versions],
                    "preferredVersion": {
                        "groupVersion": f"{name}/{versions[0]}",
                        "version": versions[0],
                    },
                }
                for name, versions in groups.items()
            ],
        }

    def _key(self, kind: Kind, namespace: str, name: str) -> Key:
        return (kind.resource, namespace if kind.namespaced else "", name)

    def _not_found(self, kind: Kind, name: str) -> ApiError:
        return ApiError(
            404,
            "NotFound",
            f'{kind.plural} "{name}" not found',
            {"name": name, "kind": kind.plural, "group": kind.group},
        )

    def _get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            obj = self._objects.get(self._key(kind, namespace, name))
            if obj is None:
                raise self._not_found(kind, name)
            return copy.deepcopy(obj)

    def _create(
        self, kind: Kind, namespace: str, obj: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(
                    422, "Invalid", f"{kind.kind} is invalid: metadata.name: Required value"
                )
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if kind.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not "
                "match the namespace sent on the request",
            )
        meta.pop("resourceVersion", None)
        with self._lock:
            key = self._key(kind, namespace, meta["name"])
            if key in self._objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{kind.plural} "{meta["name"]}" already exists',
                    {"name": meta["name"], "kind": kind.plural, "group": kind.group},
                )
            if dry_run:
                return obj
            return self._store(kind, key, obj, None)

    def _update(
        self, kind: Kind, namespace: str, name: str, obj: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        with self._lock:
            key = self._key(kind, namespace, name)
            old = self._objects.get(key)
            if old is None:
                raise self._not_found(kind, name)
            given = obj.get("metadata", {}).get("resourceVersion")
            if given and given != old["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on {kind.plural} "
                    f'"{name}": the object has been modified; please apply your changes '
                    "to the latest version and try again",
                    {"name": name, "kind": kind.plural, "group": kind.group},
                )
            obj.setdefault("metadata", {})["name"] = name
            if dry_run:
                return obj
            return self._store(kind, key, obj, old)

    def _patch(
        self, kind: Kind, namespace: str, name: str, body: bytes, content_type: str, dry_run: bool
    ) -> dict[str, Any]:
        with self._lock:
            old = self._objects.get(self._key(kind, namespace, name))
            if old is None:
                raise self._not_found(kind, name)
            patch = _json(body)
            if "json-patch" in content_type:
                try:
                    new = jsonpatch.apply_patch(old, patch)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
                    raise ApiError(
                        422, "Invalid", f"the server rejected our request: {err}"
                    ) from None
            elif "merge-patch" in content_type:
                new = merge_patch(old, patch, strategic="strategic" in content_type)
            else:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format: {content_type}",
                )
            meta = new.setdefault("metadata", {})
            if meta.get("resourceVersion") not in (None, old["metadata"]["resourceVersion"]):
                raise ApiError(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on {kind.plural} "
                    f'"{name}": the object has been modified',
                )
            meta["name"] = name
            if dry_run:
                return new
            return self._store(kind, self._key(kind, namespace, name), new, old)

    def _delete(
        self, kind: Kind, namespace: str, name: str, options: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        self._throttle_delete()
        with self._lock:
            key = self._key(kind, namespace, name)
            old = self._objects.get(key)
            if old is None:
                raise self._not_found(kind, name)
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: UID in precondition: "
                    f"{pre['uid']}, UID in object meta: {old['metadata']['uid']}",
                )
            if (
                pre.get("resourceVersion")
                and pre["resourceVersion"] != old["metadata"]["resourceVersion"]
            ):
                raise ApiError(
                    409,
                    "Conflict",
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                    f"{old['metadata']['resourceVersion']}",
                )
            if dry_run:
                return copy.deepcopy(old)
            del self._objects[key]
            self.delete_count += 1
            gone = self._bump(copy.deepcopy(old))
            self._record(kind, "DELETED", gone, old)
            return copy.deepcopy(gone)

    def _delete_collection(
        self, kind: Kind, namespace: str | None, query: dict[str, str], dry_run: bool
    ) -> dict[str, Any]:
        page = self._snapshot_page(
            kind,
            namespace,
            {k: v for k, v in query.items() if k in ("labelSelector", "fieldSelector")},
        )
        deleted = []
        for item in page["items"]:
            meta = item["metadata"]
            try:
                deleted.append(
                    self._delete(kind, meta.get("namespace", ""), meta["name"], {}, dry_run)
                )
            except ApiError as err:
                if err.code != 404:
                    raise
        return {
            "kind": f"{kind.kind}List",
            "apiVersion": kind.api_version,
            "metadata": {"resourceVersion": str(self.resource_version)},
            "items": deleted,
        }

    def _throttle_delete(self) -> None:
        if self.delete_delay:
            time.sleep(self.delete_delay)
        if self.delete_rate is not None:
            with self._lock:
                now = time.monotonic()
                self._delete_times = [t for t in self._delete_times if now - t < 1.0]
                if len(self._delete_times) >= self.delete_rate:
                    raise ApiError(
                        429,
                        "TooManyRequests",
                        "Too many requests, please try again later.",
                        {"retryAfterSeconds": 1},
                    )
                self._delete_times.append(now)


_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def discovery(path: str) -> dict[str, Any] | None:
    """Legacy discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION`), enough
    for `kubectl get` to find the resources served here."""
    versions: dict[str, str] = {}
    for k in KINDS:
        if k.group:
            versions.setdefault(k.group, k.version)
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{version}", "version": version}],
                    "preferredVersion": {"groupVersion": f"{group}/{version}", "version": version},
                }
                for group, version in sorted(versions.items())
            ],
        }
    parts = path.split("/")
    if path == "/api/v1":
        group_version = "v1"
    elif len(parts) == 4 and parts[1] == "apis" and versions.get(parts[2]) == parts[3]:
        group_version = f"{parts[2]}/{parts[3]}"
    else:
        return None
    resources = [
        {
            "name": k.plural,
            "singularName": k.kind.lower(),
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": _VERBS,
        }
        for k in KINDS
        if k.api_version == group_version
    ]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def _gone(position: int, oldest: int) -> dict[str, Any]:
    message = f"too old resource version: {position} ({oldest})"
    return {"type": "ERROR", "object": status_body(410, "Expired", message)}


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"{}")
    except ValueError as err:
        raise ApiError(400, "BadRequest", f"invalid JSON body: {err}") from None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_api: KubeAPI

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return

    def setup(self) -> None:
        super().setup()
        # headers and body are separate writes: without this, Nagle + delayed ACK add 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server_api._connections.add(self.connection)

    def finish(self) -> None:
        self.server_api._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        api = self.server_api
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        api.requests.append((method, self.path))
        if parts.path.rstrip("/") == "/apis" and method == "GET":
            self._send(200, api.api_groups())
            return
        if parts.path == "/version":
            self._send(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-kubeapi"})
            return
        if method == "GET" and (found := discovery(parts.path.rstrip("/"))) is not None:
            self._send(200, found)
            return
        try:
            if method == "GET" and query.get("watch", "").lower() in ("true", "1"):
                kind, namespace, name, _ = api._route(parts.path)
                if name is not None:
                    raise ApiError(404, "NotFound", "watch on a single object: use a fieldSelector")
                self._stream(api._watch(kind, namespace, query))
                return
            code, payload = api.handle(
                method, parts.path, query, body, self.headers.get("Content-Type", "")
            )
        except ApiError as err:
            headers = {}
            if err.code == 429:
                headers["Retry-After"] = str(err.details.get("retryAfterSeconds", 1))
            self._send(
                err.code, status_body(err.code, err.reason, err.message, err.details), headers
            )
            return
        self._send(code, payload)

    def _send(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def _stream(self, events: Iterator[dict[str, Any]]) -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for event in events:
                line = json.dumps(event).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True
