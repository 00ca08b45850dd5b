"""The JSON log line format, and what the admission helpers put in it."""

from __future__ import annotations

import logging

import orjson
import pytest

from webhook import logs


def format_line(msg: str, args: tuple[object, ...] = (), **extra: object) -> dict[str, object]:
    logger = logging.getLogger("podtier.test")
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, msg, args, None, extra=extra)
    line: dict[str, object] = orjson.loads(logs.JsonFormatter().format(record))
    return line


def test_a_line_carries_time_level_logger_message_and_the_extra_fields_in_order() -> None:
    line = format_line("mutate %s", ("patched",), uid="u-1", tier="medium", pool="worker")
    assert list(line) == ["time", "level", "logger", "msg", "uid", "tier", "pool"]
    assert line["level"] == "info" and line["msg"] == "mutate patched"
    assert str(line["time"]).endswith("Z") and len(str(line["time"])) == len(
        "2026-11-26T06:46:05.980Z"
    )


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"color_message": "\x1b[36mcoloured\x1b[0m"}, id="uvicorn-colour-copy"),
        pytest.param({"_private": "x"}, id="underscore-names"),
    ],
)
def test_internal_attributes_are_left_out(extra: dict[str, object]) -> None:
    assert set(format_line("hello", **extra)) == {"time", "level", "logger", "msg"}


def test_error_fields_name_the_type_and_frames_but_not_the_message() -> None:
    def failing() -> None:
        raise KeyError("the-value-from-the-pod")

    try:
        failing()
    except KeyError as err:
        fields = logs.error_fields(err)
    assert fields["error"] == "KeyError"
    assert fields["stack"][-1].endswith(" in failing")
    assert "the-value-from-the-pod" not in orjson.dumps(fields).decode()


def test_request_fields_take_the_envelope_not_the_object() -> None:
    request = {
        "uid": "u-2",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "CREATE",
        "namespace": "airflow",
        "name": "task-pod",
        "object": {"spec": {"containers": [{"env": [{"name": "A", "value": "secret"}]}]}},
        "dryRun": True,
    }
    assert logs.request_fields(request, "mutate") == {
        "uid": "u-2",
        "webhook": "mutate",
        "operation": "CREATE",
        "kind": "Pod",
        "namespace": "airflow",
        "pod": "task-pod",
        "dry_run": True,
    }
