"""The HTTP edge: Starlette routes around the pure admission core.

It only reads the body (capped, with a deadline), decodes it, takes a consistent headroom view,
calls the core, reserves what the core placed (unless dryRun), and records metrics and one log
line. A broken request gets a 4xx with a JSON message. podtier's own trouble never blocks a
pod: the pod is allowed without a patch and the warning says why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from podtier.webhook.core import admission, review
from podtier.webhook.core.capacity import Headroom
from podtier.webhook.core.profile import ProfilesSource
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


def create_app(state: AppState) -> Starlette:
    async def mutate(request: Request) -> Response:
        return await _admit(request, state, "mutate")

    async def validate(request: Request) -> Response:
        return await _admit(request, state, "validate")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        reasons = state.not_ready()
        if reasons:
            return JSONResponse({"ready": False, "reasons": reasons}, status_code=503)
        return JSONResponse({"ready": True, "policy": state.policy.ident})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/mutate", mutate, methods=["POST"]),
            Route("/validate", validate, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        exception_handlers={404: _not_found, 405: _not_allowed},
    )
    app.state.podtier = state
    return app


def create_health_app(state: AppState) -> Starlette:
    """The plain-HTTP side listener: health and metrics only, never the admission handlers."""
    full = create_app(state)
    routes = [r for r in full.routes if getattr(r, "path", "") not in ("/mutate", "/validate")]
    return Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed})


async def _admit(request: Request, state: AppState, webhook: str) -> Response:
    started = time.perf_counter()
    try:
        body = await _read_body(request)
        decoded = review.decode_review(body)
    except review.BadReview as bad:
        metrics.observe_admission(webhook, "bad_request", "", "", time.perf_counter() - started)
        # After 408 and 413 the rest of the body is unread: close rather than read it as HTTP.
        close = {"connection": "close"} if bad.status in (408, 413) else None
        error = {"error": bad.message, "code": bad.status}
        return JSONResponse(error, status_code=bad.status, headers=close)
    except ClientDisconnect:
        return Response(status_code=400)
    if log.isEnabledFor(logging.DEBUG):
        fields = logs.request_fields(decoded, webhook)
        logs.log_fields(log, logging.DEBUG, "admission request", fields)

    policy = state.policy
    try:
        labels = state.headroom.namespace_labels(str(decoded.get("namespace") or ""))
        if webhook == "mutate":
            answer = _mutate(decoded, policy, state, labels)
        else:
            answer = admission.validate(decoded, policy, labels)
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
    return JSONResponse(encoded)


def _mutate(
    request: Any, policy: Policy, state: AppState, labels: Mapping[str, str] | None
) -> admission.Answer:
    now = state.clock()
    profiles = state.profiles.view(now) if state.profiles is not None else None
    with state.headroom.transaction(now) as view:
        answer = admission.mutate(request, policy, view, labels, profiles)
        decision = answer.decision
        if decision is not None and decision.node and answer.pod and not request.get("dryRun"):
            view.reserve(decision.node, decision.requests, answer.pod.key)
    if decision is not None and decision.escalation is not None and not request.get("dryRun"):
        metrics.OOM_ESCALATIONS.labels(decision.tier.name).inc()
    return answer


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > review.MAX_BODY_BYTES:
        raise review.BadReview(
            413, f"body of {declared} bytes is over the {review.MAX_BODY_BYTES} byte cap"
        )

    # The deadline is one timer handle that cancels this task (what asyncio.timeout does, at a
    # third of its cost per request); a cancellation from anywhere else passes through.
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(BODY_DEADLINE_SECONDS, expire)
    try:
        return await _receive_body(request)
    except asyncio.CancelledError:
        if expired and task.uncancel() == 0:
            late = f"body not received within {BODY_DEADLINE_SECONDS:g} s"
            raise review.BadReview(408, late) from None
        raise
    finally:
        timer.cancel()


async def _receive_body(request: Request) -> bytes:
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
