"""The live feed: list, then watch, Nodes and Pods through the official `kubernetes` client.

One thread per kind. Each lists in pages (`limit`/`continue`), hands the pages to
`ClusterHeadroom.relist`, then watches from the list's resourceVersion with bookmarks,
reading the raw stream (`_preload_content=False`) and decoding each page and line with
`headroom.decode` (pods keep only the fields podtier reads). The client's model objects cost ~30x
more per pod than a whole parse with orjson, which costs ~4x more than the typed decode.
A watch that ends normally is resumed from the last resourceVersion; a 410 Gone (history
compacted) means a fresh relist; any other failure (API down, connection cut, read timeout)
is retried after an exponential backoff with full jitter. Pods are first listed after the
nodes, so pending pods can be held on a node. A stream silent for half the staleness bound is
dropped and resumed (the API server sends bookmarks about once a minute), so a half-open
connection cannot pass for a live one.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client
from urllib3.exceptions import ReadTimeoutError

from podtier.webhook.headroom.decode import decode_event, decode_page
from podtier.webhook.headroom.state import NAMESPACE, NODE, POD
from podtier.webhook.headroom.tracker import ClusterHeadroom

log = logging.getLogger("podtier.headroom")


class Gone(Exception):
    """The watch's resourceVersion is too old: relist."""


class WatchFailed(Exception):
    pass


class Backoff:
    """Exponential backoff with full jitter: a random wait in [0, min(cap, base * 2**n)]."""

    def __init__(self, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None):
        self.base, self.cap = base, cap
        self.rng = rng or random.Random()
        self.failures = 0

    def next(self) -> float:
        delay = self.rng.uniform(0, min(self.cap, self.base * 2**self.failures))
        self.failures = min(self.failures + 1, 32)
        return delay

    def reset(self) -> None:
        self.failures = 0


class ClusterWatcher:
    def __init__(
        self,
        headroom: ClusterHeadroom,
        api_client: client.ApiClient,
        *,
        page_size: int = 500,
        watch_seconds: tuple[int, int] = (240, 300),
        backoff: Callable[[], Backoff] = Backoff,
        connect_timeout: float = 10.0,
    ) -> None:
        self.headroom = headroom
        core = client.CoreV1Api(api_client)
        self._list: dict[str, Callable[..., Any]] = {
            NODE: core.list_node,
            POD: core.list_pod_for_all_namespaces,
            NAMESPACE: core.list_namespace,
        }
        self.page_size = page_size
        self.watch_seconds = watch_seconds
        self.make_backoff = backoff
        self.connect_timeout = connect_timeout
        self._stop = threading.Event()
        self._nodes_listed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._responses: dict[str, Any] = {}
        self.relists = dict.fromkeys(headroom.kinds, 0)
        self._rvs: dict[str, str] = {}  # kind -> resourceVersion to resume from

    def start(self) -> None:
        for kind in self.headroom.kinds:
            thread = threading.Thread(
                target=self._run, args=(kind,), name=f"headroom-{kind.lower()}s", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for response in list(self._responses.values()):
            interrupt(response)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    # ------------------------------------------------------------------ loop

    def _run(self, kind: str) -> None:
        backoff = self.make_backoff()
        self._rvs[kind] = ""  # "" = relist first
        while not self._stop.is_set():
            try:
                if kind == POD:
                    while not self._nodes_listed.wait(0.1):
                        if self._stop.is_set():
                            return
                if not self._rvs[kind]:
                    self._rvs[kind] = self._relist(kind)
                    if kind == NODE:
                        self._nodes_listed.set()
                self._watch(kind)
                backoff.reset()
            except Gone:
                log.info("headroom: %s watch history expired; relisting", kind.lower())
                self._rvs[kind] = ""
            except Exception as err:  # noqa: BLE001 - every failure is retried, after a wait
                if self._stop.is_set():
                    return
                reason = describe_failure(err)
                self.headroom.disconnected(kind, reason)
                if isinstance(err, ReadTimeoutError) or "Read timed out" in str(err):
                    # a silent stream: resume at once from the last resourceVersion
                    log.debug("headroom: %s watch silent; resuming", kind.lower())
                    continue
                delay = backoff.next()
                log.warning(
                    "headroom: %s feed failed (%s); retrying in %.1fs", kind.lower(), reason, delay
                )
                self._stop.wait(delay)

    def _relist(self, kind: str) -> str:
        self.relists[kind] += 1
        list_fn = self._list[kind]
        resource_version = ""

        def pages() -> Iterator[list[Any]]:
            nonlocal resource_version
            token = None
            while True:
                kwargs: dict[str, Any] = {
                    "limit": self.page_size,
                    "_preload_content": False,
                    "_request_timeout": (self.connect_timeout, 60),
                }
                if token:
                    kwargs["_continue"] = token
                page = decode_page(kind, list_fn(**kwargs).data, self.headroom.pod_fields)
                if not resource_version:
                    resource_version = str(page.metadata.get("resourceVersion") or "")
                for item in page.items:  # one at a time, each applied as it is decoded
                    yield [item]
                token = page.metadata.get("continue")
                if not token or self._stop.is_set():
                    return

        try:
            self.headroom.relist(kind, pages())
        except client.ApiException as err:
            if err.status == 410:  # the continue token expired mid-list
                raise Gone() from None
            raise
        return resource_version

    def _watch(self, kind: str) -> None:
        """Follow the watch from the last resourceVersion until the stream ends; every event
        moves `_rvs[kind]` on, so a broken stream resumes where it stopped."""
        timeout = random.randint(*self.watch_seconds)
        response = self._list[kind](
            watch=True,
            resource_version=self._rvs[kind],
            allow_watch_bookmarks=True,
            timeout_seconds=timeout,
            _preload_content=False,
            _request_timeout=(self.connect_timeout, max(self.headroom.stale_after / 2, 1.0)),
        )
        self._responses[kind] = response
        headroom = self.headroom
        rvs = self._rvs
        headroom.connected(kind)
        fields = headroom.pod_fields
        try:
            for line in watch_lines(response):
                event = decode_event(kind, line, fields)
                event_type = event.get("type")
                obj = event.get("object") or {}
                if event_type == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise WatchFailed(f"watch error: {obj.get('message') or obj}")
                if event_type == "BOOKMARK":
                    headroom.touched(kind)
                else:
                    headroom.apply(kind, event_type, obj)
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if rv:
                    rvs[kind] = str(rv)
        finally:
            self._responses.pop(kind, None)
            headroom.disconnected(kind)
            response.release_conn()


def watch_lines(response: Any) -> Iterator[bytes]:
    buffer = b""
    for chunk in response.stream(65536, decode_content=True):
        buffer += chunk
        if b"\n" in buffer:
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    yield line
    if buffer.strip():
        yield buffer


def interrupt(response: Any) -> None:
    try:
        shutdown = getattr(response, "shutdown", None)
        if shutdown is not None:
            shutdown()
        response.close()
    except Exception:  # noqa: BLE001 - best effort while stopping
        pass


def describe_failure(err: Exception) -> str:
    if isinstance(err, client.ApiException):
        return f"API server answered {err.status} {err.reason}"
    text = str(err) or type(err).__name__
    if "refused" in text.lower():
        return "API server unreachable (connection refused)"
    if "timed out" in text.lower() or "timeout" in text.lower():
        return "API server timed out"
    return text if len(text) <= 160 else text[:157] + "..."
