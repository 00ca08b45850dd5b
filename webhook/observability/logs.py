"""Structured JSON log lines, one object per line.

What is logged about a pod is chosen field by field: identity (uid, namespace, pod, dag_id,
task_id) and podtier's own verdict (tier, pool, outcome, reason), never the spec. Pods carry
secrets in env values, in args (Airflow's workload JSON holds a task token) and in annotations,
so nothing else of a pod may reach a log line at any level:

- `request_fields`: the debug line for every admission request, from the request envelope;
- `decision_fields`: the info line for every decision;
- `error_fields`: where podtier failed on a request (exception type and stack frames). The
  exception's message is left out: it may quote pod data (`KeyError('the value')`).
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Mapping
from itertools import islice
from typing import TYPE_CHECKING, Any

import orjson

from podtier.webhook.core.pod import PodView

if TYPE_CHECKING:
    from podtier.webhook.core.admission import Answer

# podtier's own annotation, copied into the decision when the API server reinvokes the webhook:
# the pod may have set it itself, so it is not logged.
_EARLIER_REASON_KEY = "podtier.io/reason"

_STANDARD = vars(logging.LogRecord("", 0, "", 0, "", None, None))
_STANDARD_COUNT = len(_STANDARD)
_RESERVED = frozenset(_STANDARD) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of msg
}


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "msg", ...extra fields}`; times in UTC, milliseconds."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        line = self.head(record.created, record.levelname, record.name, record.getMessage())
        attributes = record.__dict__
        if len(attributes) > _STANDARD_COUNT:  # extras come after LogRecord's own attributes
            for key, value in islice(attributes.items(), _STANDARD_COUNT, None):
                if key not in _RESERVED and key[0] != "_":
                    line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()

    def head(self, created: float, level: str, logger: str, msg: str) -> dict[str, Any]:
        second = int(created)
        if second != self._second:  # one strftime per second, not per line
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        millis = int((created - second) * 1000)
        return {
            "time": f"{self._second_text}.{millis:03d}Z",
            "level": level.lower(),
            "logger": logger,
            "msg": msg,
        }


# The handler `configure` installed: `log_fields` writes to it directly when it is the only
# place a line would go.
_OWN_HANDLER: logging.StreamHandler | None = None  # type: ignore[type-arg]


def log_fields(logger: logging.Logger, level: int, msg: str, fields: Mapping[str, Any]) -> None:
    """Log `msg` with `fields` (as `extra`), for the admission path's per-request lines.

    When the line would reach only podtier's own JSON handler (the setup `configure` makes),
    it is written straight to that handler's stream: the same line `logging` would write,
    without building a LogRecord and walking the handlers, which cost as much as the rest of
    the line. Any other setup (another handler, a filter, a test's capture) takes the
    ordinary `logging` path."""
    if not logger.isEnabledFor(level):
        return
    handler = _OWN_HANDLER
    if handler is not None and _reaches_only(logger, handler, level):
        formatter = handler.formatter
        assert isinstance(formatter, JsonFormatter)
        line = formatter.head(time.time(), logging.getLevelName(level), logger.name, msg)
        line.update(fields)
        text = orjson.dumps(line, default=str).decode() + handler.terminator
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
            return
        except Exception:  # noqa: S110 - let logging report it in its own way, below
            pass
        finally:
            handler.release()
    logger.log(level, "%s", msg, extra=fields)


def _reaches_only(logger: logging.Logger, handler: logging.Handler, level: int) -> bool:
    """True when a record of `level` from `logger` would be handled by `handler` alone."""
    if logger.disabled or logger.filters or handler.filters:
        return False
    found = False
    node: logging.Logger | None = logger
    while node is not None:
        for each in node.handlers:
            if level >= each.level:
                if each is not handler or found:
                    return False
                found = True
        node = node.parent if node.propagate else None
    return found


def configure(level: str = "info") -> None:
    # Skip what no line shows: the caller's frame lookup, thread and process names
    # (the optimizations the logging HOWTO lists).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    global _OWN_HANDLER
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    _OWN_HANDLER = handler
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def pod_fields(pod: PodView | None) -> Mapping[str, str]:
    """The only pod facts that go into logs: where it is and which Airflow task it runs."""
    if pod is None:
        return {}
    return {
        "namespace": pod.namespace,
        "pod": pod.name,
        "dag_id": pod.airflow.get("dag_id", ""),
        "task_id": pod.airflow.get("task_id", ""),
    }


def request_fields(request: Mapping[str, Any], webhook: str) -> dict[str, Any]:
    """The debug line for one admission request: the envelope, never the object."""
    kind = request.get("kind")
    return {
        "uid": request.get("uid"),
        "webhook": webhook,
        "operation": request.get("operation"),
        "kind": kind.get("kind") if isinstance(kind, Mapping) else None,
        "namespace": request.get("namespace"),
        "pod": request.get("name"),
        "dry_run": bool(request.get("dryRun")),
    }


def decision_fields(uid: str, webhook: str, answer: Answer) -> dict[str, Any]:
    """The info line for one decision: identity, tier, pool, outcome, and podtier's reason."""
    fields: dict[str, Any] = {"uid": uid, "webhook": webhook, "outcome": answer.outcome}
    fields |= pod_fields(answer.pod)
    decision = answer.decision
    if decision is not None:
        reason = decision.reason
        if answer.pod is not None and reason == answer.pod.annotations.get(_EARLIER_REASON_KEY):
            reason = "kept from an earlier podtier decision"
        fields |= {
            "tier": decision.tier.name,
            "pool": decision.pool.name,
            "node": decision.node or "",
            "reason": reason,
        }
        if decision.escalation is not None:  # learning: more memory after an OOM kill
            fields["oom_killed_at_bytes"] = decision.escalation.killed_at
            fields["memory_raised_to_bytes"] = decision.escalation.memory
    if answer.violations:
        fields["violations"] = [v.message for v in answer.violations]
    return fields


def error_fields(error: BaseException) -> dict[str, Any]:
    """Where podtier failed: the exception type and the frames, innermost last. Not the
    message, not the source lines, not the locals."""
    frames = traceback.extract_tb(error.__traceback__)
    return {
        "error": type(error).__name__,
        "stack": [f"{_short(f.filename)}:{f.lineno} in {f.name}" for f in frames],
    }


def _short(filename: str) -> str:
    parts = filename.replace("\\", "/").split("/")
    return "/".join(parts[-2:])
