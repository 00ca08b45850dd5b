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

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from itertools import islice
from typing import TYPE_CHECKING, Any

import orjson

from podtier.webhook.core.pod import PodView
from podtier.webhook.core.tiering import REASON_ANNOTATION

if TYPE_CHECKING:
    from podtier.webhook.core.admission import Answer

# A decision's reason equal to the pod's REASON_ANNOTATION was copied from an earlier podtier
# decision (the API server reinvoked the webhook): the pod may have set it itself, so it is not
# logged.

_STANDARD = vars(logging.LogRecord("", 0, "", 0, "", None, None))
_STANDARD_COUNT = len(_STANDARD)
_RESERVED = frozenset(_STANDARD) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of msg
}


_HEAD_KEYS = frozenset({"time", "level", "logger", "msg"})


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "msg", ...extra fields}`; times in UTC, milliseconds."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""
        self._millis = -1
        self._millis_text = ""
        self._middles: dict[tuple[str, str, str], bytes] = {}

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
        return {
            "time": self._time(created),
            "level": level.lower(),
            "logger": logger,
            "msg": msg,
        }

    def line(
        self, created: float, level: str, logger: str, msg: str, fields: Mapping[str, Any]
    ) -> bytes:
        """`head` and `fields` as one JSON line (with its newline), as `format` would write it:
        the head's level, logger and message are made into JSON once per kind of line, and the
        fields' JSON is joined on, rather than merged in a dict per line."""
        if not _HEAD_KEYS.isdisjoint(fields):  # a field that overrides the head's
            merged = self.head(created, level, logger, msg) | dict(fields)
            return orjson.dumps(merged, default=str, option=orjson.OPT_APPEND_NEWLINE)
        kind = (level, logger, msg)
        middle = self._middles.get(kind)
        if middle is None:
            if len(self._middles) >= 256:
                self._middles.clear()
            head = {"level": level.lower(), "logger": logger, "msg": msg}
            middle = self._middles[kind] = b'",' + orjson.dumps(head)[1:-1]
        body = orjson.dumps(fields, default=str, option=orjson.OPT_APPEND_NEWLINE)
        stamp = self._time(created).encode()
        if len(body) == 3:  # b"{}\n"
            return b'{"time":"' + stamp + middle + b"}\n"
        return b'{"time":"' + stamp + middle + b"," + body[1:]

    def _time(self, created: float) -> str:
        millis = int(created * 1000)
        if millis == self._millis:  # several lines in one millisecond
            return self._millis_text
        second = millis // 1000
        if second != self._second:  # one strftime per second, not per line
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        self._millis = millis
        self._millis_text = f"{self._second_text}.{millis - second * 1000:03d}Z"
        return self._millis_text


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """podtier's own handler: JSON lines to a stream (stderr).

    `log_fields` hands it finished lines (`add_line`). In an event loop they are written
    together at the end of the loop's turn, one write for every line of the turn, instead of
    one write and one flush per line; outside a loop, at once. A record that comes through
    `logging` first writes the lines before it, and so does `flush` (logging flushes every
    handler at exit), so no line is lost or reordered."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._lines: list[bytes] = []
        self._scheduled = False
        self._loop: tuple[asyncio.AbstractEventLoop | None, int] = (None, 0)

    def add_line(self, line: bytes) -> None:
        self._lines.append(line)
        if self._scheduled:
            return
        loop = self._running_loop()
        if loop is None:
            self.write_lines()
            return
        self._scheduled = True
        loop.call_soon(self.write_lines)

    def _running_loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop running this code, if any. The last one found is checked first:
        on Python 3.11 `asyncio.get_running_loop` makes a getpid system call each time."""
        loop, thread = self._loop
        if loop is not None and thread == threading.get_ident() and loop.is_running():
            return loop
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        self._loop = (loop, threading.get_ident())
        return loop

    def write_lines(self) -> None:
        self.acquire()
        try:
            self._scheduled = False
            if not self._lines:
                return
            data = b"".join(self._lines)
            self._lines.clear()
            stream = self.stream
            binary = getattr(stream, "buffer", None)
            try:
                if binary is not None:  # the lines are UTF-8 already: skip the text layer
                    stream.flush()
                    binary.write(data)
                    binary.flush()
                else:
                    stream.write(data.decode())
                    stream.flush()
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": "podtier admission log lines"}))
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        if self._lines:
            self.write_lines()
        super().emit(record)

    def flush(self) -> None:
        if self._lines:
            self.write_lines()
        super().flush()


# The handler `configure` installed: `log_fields` hands it lines directly when it is the only
# place a line would go.
_OWN_HANDLER: LineHandler | None = None


def log_fields(logger: logging.Logger, level: int, msg: str, fields: Mapping[str, Any]) -> None:
    """Log `msg` with `fields` (as `extra`), for the admission path's per-request lines.

    When the line would reach only podtier's own JSON handler (the setup `configure` makes),
    it is made here and handed to that handler as bytes: the same line `logging` would write,
    without building a LogRecord, walking the handlers, and one write and flush per line,
    which cost as much as the rest of the line. Any other setup (another handler, a filter, a
    test's capture) takes the ordinary `logging` path."""
    if not logger.isEnabledFor(level):
        return
    handler = _OWN_HANDLER
    if handler is not None and _reaches_only(logger, handler, level):
        formatter = handler.formatter
        assert isinstance(formatter, JsonFormatter)
        name = logging.getLevelName(level)
        handler.add_line(formatter.line(time.time(), name, logger.name, msg, fields))
        return
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
    handler = LineHandler(sys.stderr)
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
    pod, decision = answer.pod, answer.decision
    if pod is not None and decision is not None:  # the usual line, made in one go
        airflow = pod.airflow
        reason = decision.reason
        if reason == pod.annotations.get(REASON_ANNOTATION):
            reason = "kept from an earlier podtier decision"
        fields: dict[str, Any] = {
            "uid": uid,
            "webhook": webhook,
            "outcome": answer.outcome,
            "namespace": pod.namespace,
            "pod": pod.name,
            "dag_id": airflow.get("dag_id", ""),
            "task_id": airflow.get("task_id", ""),
            "tier": decision.tier.name,
            "pool": decision.pool.name,
            "node": decision.node or "",
            "reason": reason,
        }
    else:
        fields = {"uid": uid, "webhook": webhook, "outcome": answer.outcome}
        fields |= pod_fields(pod)
        if decision is not None:
            fields |= {
                "tier": decision.tier.name,
                "pool": decision.pool.name,
                "node": decision.node or "",
                "reason": decision.reason,
            }
    if decision is not None and decision.escalation is not None:  # learning: OOM kill
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
