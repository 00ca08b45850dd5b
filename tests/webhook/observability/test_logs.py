"""The JSON log line format, and what the admission helpers put in it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from podtier.webhook.observability import logs


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


@pytest.fixture
def own_logging() -> Iterator[io.StringIO]:
    """`logs.configure` as `podtier serve` runs it, writing to a string; restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logs._OWN_HANDLER)
    logs.configure("debug")
    stream = io.StringIO()
    assert logs._OWN_HANDLER is not None
    logs._OWN_HANDLER.setStream(stream)
    yield stream
    root.handlers[:], level, logs._OWN_HANDLER = saved
    root.setLevel(level)


FIELDS = {"uid": "u-3", "webhook": "mutate", "outcome": "patched", "tier": "medium"}


def test_log_fields_writes_the_same_line_as_logging(own_logging: io.StringIO) -> None:
    log = logging.getLogger("podtier.admission")
    logs.log_fields(log, logging.INFO, "mutate patched", FIELDS)  # straight to the handler
    log.info("%s", "mutate patched", extra=FIELDS)  # through logging
    direct, through = (orjson.loads(line) for line in own_logging.getvalue().splitlines())
    assert direct.pop("time") and through.pop("time")
    assert (
        direct
        == through
        == {"level": "info", "logger": "podtier.admission", "msg": "mutate patched", **FIELDS}
    )


def test_log_fields_honours_the_level(own_logging: io.StringIO) -> None:
    logging.getLogger().setLevel(logging.INFO)
    logs.log_fields(logging.getLogger("podtier.admission"), logging.DEBUG, "hidden", FIELDS)
    assert own_logging.getvalue() == ""


def test_log_fields_goes_through_logging_when_anything_else_listens(
    own_logging: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="podtier.admission"):
        logs.log_fields(logging.getLogger("podtier.admission"), logging.INFO, "seen", FIELDS)
    assert [(r.getMessage(), r.uid) for r in caplog.records] == [("seen", "u-3")]  # type: ignore[attr-defined]
    assert orjson.loads(own_logging.getvalue())["msg"] == "seen"


class CountingStream(io.TextIOWrapper):
    """A text stream over bytes, as stderr is, that counts the writes reaching its bytes."""

    def __init__(self) -> None:
        self.raw_writes = 0
        outer = self

        class Bytes(io.BytesIO):
            def write(self, data: bytes) -> int:  # type: ignore[override]
                outer.raw_writes += 1
                return super().write(data)

        self.bytes = Bytes()
        super().__init__(self.bytes, encoding="utf-8", line_buffering=True)

    def text(self) -> str:
        self.flush()
        return self.bytes.getvalue().decode()


@pytest.fixture
def counted_logging(own_logging: io.StringIO) -> Iterator[CountingStream]:
    """podtier's handler alone, on a `CountingStream`."""
    stream = CountingStream()
    assert logs._OWN_HANDLER is not None
    logs._OWN_HANDLER.setStream(stream)
    yield stream


def alone() -> None:
    """Take pytest's capture handler off the root logger for the rest of the test: the lines
    then reach podtier's handler only, as in `podtier serve`."""
    root = logging.getLogger()
    root.handlers[:] = [logs._OWN_HANDLER]
    root.setLevel(logging.INFO)


def test_lines_of_one_loop_turn_are_written_together_at_its_end(
    counted_logging: CountingStream,
) -> None:
    import asyncio

    log = logging.getLogger("podtier.admission")
    alone()

    async def one_turn() -> str:
        for n in range(5):
            logs.log_fields(log, logging.INFO, "mutate patched", {**FIELDS, "uid": f"u-{n}"})
        written_during_the_turn = counted_logging.text()
        await asyncio.sleep(0)
        return written_during_the_turn

    assert asyncio.run(one_turn()) == ""
    lines = [orjson.loads(line) for line in counted_logging.text().splitlines()]
    assert [line["uid"] for line in lines] == [f"u-{n}" for n in range(5)]
    assert counted_logging.raw_writes == 1


def test_a_record_through_logging_comes_after_the_lines_before_it(
    counted_logging: CountingStream,
) -> None:
    import asyncio

    log = logging.getLogger("podtier.admission")
    alone()

    async def turn() -> None:
        logs.log_fields(log, logging.INFO, "first", FIELDS)
        log.warning("second")
        logs.log_fields(log, logging.INFO, "third", FIELDS)

    asyncio.run(turn())
    assert logs._OWN_HANDLER is not None
    logs._OWN_HANDLER.flush()  # as logging does at exit
    messages = [orjson.loads(line)["msg"] for line in counted_logging.text().splitlines()]
    assert messages == ["first", "second", "third"]


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({}, id="no-fields"),
        pytest.param(FIELDS, id="decision-fields"),
        pytest.param({"msg": "overridden", "uid": "u"}, id="a-field-named-like-the-head"),
        pytest.param({"when": __import__("datetime").date(2026, 1, 2)}, id="not-json-as-str"),
        pytest.param({"reason": 'quote " and \\u00e9 \u00e9'}, id="escapes"),
    ],
)
def test_a_joined_line_is_the_merged_line(fields: dict[str, object]) -> None:
    formatter = logs.JsonFormatter()
    created = 1_780_000_000.123
    joined = formatter.line(created, "INFO", "podtier.admission", "mutate patched", fields)
    merged = formatter.head(created, "INFO", "podtier.admission", "mutate patched") | fields
    assert joined.endswith(b"\n")
    assert orjson.loads(joined) == orjson.loads(orjson.dumps(merged, default=str))
    assert list(orjson.loads(joined)) == list(merged)
