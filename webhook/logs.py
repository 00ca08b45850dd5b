"""Structured JSON log lines, one object per line.

What is logged about a pod is chosen field by field (`pod_fields`): identity, never the spec.
Pods carry secrets in env values, in args (Airflow's workload JSON holds a task token) and in
annotations, so nothing else of a pod may reach a log line at any level.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson

from webhook.pod import PodView

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key != "color_message" and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
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
