"""The HTTP edge: Starlette routes around the pure admission core.

It only reads the body (capped, with a deadline), decodes it, takes a consistent headroom view,
calls the core, reserves what the core placed (unless dryRun), and records metrics and one log
line. A broken request gets a 4xx with a JSON message. podtier's own trouble never blocks a
pod: the pod is allowed without a patch and the warning says why.

`POST /mutate` and `POST /validate` are answered in plain ASGI, in front of Starlette: its
router, middleware, `Request` and `Response` cost more per review than the rest of the edge.
Everything else (health, readiness, metrics, 404 and 405, the same paths with other methods)
goes through Starlette.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from podtier.webhook.core import admission, review
from podtier.webhook.core.capacity import Headroom
from podtier.webhook.core.decide import Decision
from podtier.webhook.core.escalation_seal import EscalationSeal
from podtier.webhook.core.memo import AdmissionMemo
from podtier.webhook.core.profile import ProfilesSource
from podtier.webhook.http.protocol import LOOP_KEY
from podtier.webhook.observability import logs, metrics
from podtier.webhook.policy import Policy

log = logging.getLogger("podtier.admission")

BODY_DEADLINE_SECONDS = 10.0


@dataclass
class AppState:
    """What the handlers read. `policy` is replaced whole by the reloader (one reference read
    per request, so no request sees half a policy)."""

    policy: Policy
    headroom: Headroom
    profiles: ProfilesSource | None = None  # learned task profiles; None: learning off
    clock: Callable[[], float] = time.monotonic
    tls_ready: Callable[[], bool] = lambda: True
    shutting_down: bool = False
    memo: AdmissionMemo | None = None  # /mutate answers under `policy`; remade when it changes
    seal: EscalationSeal | None = None  # signs and checks OOM escalations; None: none believed

    def not_ready(self) -> list[str]:
        reasons = []
        if self.shutting_down:
            reasons.append("shutting down")
        if not self.tls_ready():
            reasons.append("certificates not loaded")
        if not self.headroom.ready():
            reasons.append("headroom not synced yet")
        return reasons


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else orjson.dumps(content)


def create_app(state: AppState) -> ASGIApp:
    routes = Starlette(routes=_routes(state), exception_handlers=_ERROR_HANDLERS)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            webhook = _WEBHOOKS.get(scope["path"])
            if webhook is not None:
                await _admit(_Incoming(scope, receive), send, state, webhook)
                return
        await routes(scope, receive, send)

    return app


def create_health_app(state: AppState) -> Starlette:
    """The plain-HTTP side listener: health and metrics only, never the admission handlers."""
    routes = [r for r in _routes(state) if r.path not in _WEBHOOKS]
    return Starlette(routes=routes, exception_handlers=_ERROR_HANDLERS)


_WEBHOOKS = {"/mutate": "mutate", "/validate": "validate"}


def _routes(state: AppState) -> list[Route]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        reasons = state.not_ready()
        if reasons:
            return JSONResponse({"ready": False, "reasons": reasons}, status_code=503)
        return JSONResponse({"ready": True, "policy": state.policy.ident})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def unreachable(request: Request) -> Response:  # POSTs are answered by create_app
        raise AssertionError("admission requests do not go through the router")

    return [
        # Only here so that other methods get 405, as the admission paths are POST only.
        Route("/mutate", unreachable, methods=["POST"]),
        Route("/validate", unreachable, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]


class _Incoming(NamedTuple):
    """What `_read_body` reads of a request (a Starlette `Request` has them too)."""

    scope: Scope
    receive: Receive


async def _admit(request: _Incoming, send: Send, state: AppState, webhook: str) -> None:
    started = time.perf_counter()
    try:
        body = await _read_body(request)
        decoded = review.decode_review(body)
    except review.BadReview as bad:
        metrics.observe_admission(webhook, "bad_request", "", "", time.perf_counter() - started)
        error = orjson.dumps({"error": bad.message, "code": bad.status})
        # After 408 and 413 the rest of the body is unread: close rather than read it as HTTP.
        await _respond(send, bad.status, error, close=bad.status in (408, 413))
        return
    except ClientDisconnect:
        await _respond(send, 400, b"")
        return
    if log.isEnabledFor(logging.DEBUG):
        fields = logs.request_fields(decoded, webhook)
        logs.log_fields(log, logging.DEBUG, "admission request", fields)

    policy = state.policy
    try:
        labels = state.headroom.namespace_labels(str(decoded.get("namespace") or ""))
        if webhook == "mutate":
            answer = _mutate(decoded, policy, state, labels)
        else:
            answer = admission.validate(decoded, policy, labels, state.seal)
    except Exception as exc:
        log.error(
            "podtier failed on this request; the pod is allowed unchanged",
            extra={"uid": decoded["uid"], "webhook": webhook, **logs.error_fields(exc)},
        )
        warning = f"podtier: internal error, the pod was admitted unchanged (uid {decoded['uid']})"
        answer = admission.Answer(
            review.response(decoded["uid"], True, warnings=[warning]), "error"
        )

    decision = answer.decision
    tier = decision.tier.name if decision else ""
    pool = decision.pool.name if decision else ""
    encoded = review.encode(answer.review)
    metrics.observe_admission(webhook, answer.outcome, tier, pool, time.perf_counter() - started)
    if answer.pod is not None and log.isEnabledFor(logging.INFO):
        fields = logs.decision_fields(decoded["uid"], webhook, answer)
        logs.log_fields(log, logging.INFO, f"{webhook} {answer.outcome}", fields)
    await _respond(send, 200, encoded)


_JSON = (b"content-type", b"application/json")
_CLOSE = (b"connection", b"close")


async def _respond(send: Send, status: int, body: bytes, close: bool = False) -> None:
    """What `JSONResponse` sends, without building one."""
    headers = [_JSON, (b"content-length", b"%d" % len(body))]
    if close:
        headers.append(_CLOSE)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _mutate(
    request: Any, policy: Policy, state: AppState, labels: Mapping[str, str] | None
) -> admission.Answer:
    memo = state.memo
    if memo is None or memo.policy is not policy:
        memo = state.memo = AdmissionMemo(policy, state.seal)
    now = state.clock()
    profiles = state.profiles.view(now) if state.profiles is not None else None
    with state.headroom.transaction(now) as view:
        answer = memo.mutate(request, view, labels, profiles)
        decision = answer.decision
        held = decision.node or decision.hold_on if decision is not None else None
        if decision is not None and held and answer.pod and not request.get("dryRun"):
            view.reserve(held, decision.requests, answer.pod.key)
    if decision is not None and not request.get("dryRun"):
        if decision.escalation is not None:
            metrics.OOM_ESCALATIONS.labels(decision.tier.name).inc()
        if decision.recommended is not None:
            _count_right_sizing(decision)
    return answer


def _count_right_sizing(decision: Decision) -> None:
    """What the recommendation frees (or adds) against the tier's own requests."""
    assert decision.recommended is not None
    mode = "applied" if decision.right_sized else "recommended"
    tier = decision.tier.request_milli()
    for resource, counter, unit in (
        ("cpu", metrics.RIGHT_SIZED_CPU, 1000),
        ("memory", metrics.RIGHT_SIZED_MEMORY, 1000),
    ):
        change = tier.get(resource, 0) - decision.recommended.requests.get(resource, 0)
        if change:
            direction = "freed" if change > 0 else "added"
            counter.labels(direction, mode).inc(abs(change) / unit)


async def _read_body(request: _Incoming | Request) -> bytes:
    declared = _content_length(request.scope)
    if declared is not None and declared.isdigit() and int(declared) > review.MAX_BODY_BYTES:
        raise review.BadReview(
            413, f"body of {declared} bytes is over the {review.MAX_BODY_BYTES} byte cap"
        )

    loop = request.scope.get(LOOP_KEY) or asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    assert task is not None
    deadlines = _Deadlines.of(loop)
    deadlines.add(task, BODY_DEADLINE_SECONDS)
    try:
        return await _receive_body(request)
    except asyncio.CancelledError:
        if deadlines.expired(task) and task.uncancel() == 0:
            late = f"body not received within {BODY_DEADLINE_SECONDS:g} s"
            raise review.BadReview(408, late) from None
        raise
    finally:
        deadlines.remove(task)


class _Deadlines:
    """The body deadlines of the requests reading a body, on one timer per event loop.

    A read notes its task and when it is due; the timer, armed for the earliest, cancels the
    tasks that are late and arms itself for the next. A read that ends in time only takes its
    note back: no timer is made and cancelled per request (which costs more than the rest of
    the read). A cancellation from anywhere else passes through."""

    _current: _Deadlines | None = None  # the running loop's

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.due: dict[asyncio.Task[Any], float] = {}
        self.late: set[asyncio.Task[Any]] = set()
        self.timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Deadlines:
        current = cls._current
        if current is None or current.loop is not loop:
            current = cls._current = cls(loop)
        return current

    def add(self, task: asyncio.Task[Any], seconds: float) -> None:
        due = self.due[task] = self.loop.time() + seconds
        if self.timer is None:
            self.timer = self.loop.call_at(due, self._expire)

    def remove(self, task: asyncio.Task[Any]) -> None:
        self.due.pop(task, None)
        self.late.discard(task)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        if task in self.late:
            self.late.discard(task)
            return True
        return False

    def _expire(self) -> None:
        self.timer = None
        now = self.loop.time()
        for task in [t for t, due in self.due.items() if due <= now]:
            del self.due[task]
            self.late.add(task)
            task.cancel()
        if self.due:
            self.timer = self.loop.call_at(min(self.due.values()), self._expire)


def _content_length(scope: Scope) -> str | None:
    """The Content-Length header as sent (from the raw headers, not through a `Headers`)."""
    value = dict(scope["headers"]).get(b"content-length")
    return None if value is None else str(value.decode("latin-1"))


async def _receive_body(request: _Incoming | Request) -> bytes:
    """The body, read from the ASGI `receive` channel (as `Request.stream` does, without the
    async generator), capped at `MAX_BODY_BYTES`."""
    chunks = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        if message["type"] != "http.request":
            continue
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > review.MAX_BODY_BYTES:
            raise review.BadReview(413, f"body is over the {review.MAX_BODY_BYTES} byte cap")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": f"no such endpoint: {request.url.path}", "code": 404}, status_code=404
    )


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": f"method {request.method} is not allowed on {request.url.path}", "code": 405},
        status_code=405,
    )


_ERROR_HANDLERS: Any = {404: _not_found, 405: _not_allowed}
