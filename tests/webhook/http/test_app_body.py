"""Reading the request body: the deadline, the size cap, a client that goes away, and a
cancellation that is not the deadline's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request

from podtier.webhook.core import review
from podtier.webhook.http import app

Message = dict[str, Any]


def request_with(receive: Callable[[], Awaitable[Message]]) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mutate",
        "headers": [],
        "query_string": b"",
    }
    return Request(scope, receive)


def messages(*items: Message) -> Callable[[], Awaitable[Message]]:
    queue = list(items)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)  # a client that sends nothing more
        raise AssertionError("unreachable")

    return receive


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        pytest.param([{"type": "http.request", "body": b"{}"}], b"{}", id="one-message"),
        pytest.param(
            [
                {"type": "http.request", "body": b'{"a":', "more_body": True},
                {"type": "http.request", "body": b"1}", "more_body": False},
            ],
            b'{"a":1}',
            id="chunks-joined",
        ),
    ],
)
def test_the_body_is_read_whole(items: list[Message], expected: bytes) -> None:
    assert asyncio.run(app._read_body(request_with(messages(*items)))) == expected


def test_a_body_that_does_not_arrive_in_time_is_a_408(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "BODY_DEADLINE_SECONDS", 0.05)
    slow = messages({"type": "http.request", "body": b"{", "more_body": True})
    with pytest.raises(review.BadReview) as caught:
        asyncio.run(app._read_body(request_with(slow)))
    assert caught.value.status == 408


def test_a_body_over_the_cap_is_a_413_even_without_content_length() -> None:
    chunk = b"x" * (1024 * 1024)
    items = [{"type": "http.request", "body": chunk, "more_body": True}] * 4
    with pytest.raises(review.BadReview) as caught:
        asyncio.run(app._read_body(request_with(messages(*items))))
    assert caught.value.status == 413


def test_a_client_that_goes_away_is_a_disconnect() -> None:
    gone = messages({"type": "http.disconnect"})
    with pytest.raises(ClientDisconnect):
        asyncio.run(app._read_body(request_with(gone)))


def test_a_cancellation_from_elsewhere_is_not_turned_into_a_408() -> None:
    async def scenario() -> None:
        task = asyncio.create_task(app._read_body(request_with(messages())))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


class FakeLoop:
    """The part of an event loop `_Deadlines` uses, with a clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        self.timers.append((when, callback))
        return object()  # a handle: the timer is armed

    def advance(self, to: float) -> None:
        self.now = to
        due = [t for t in self.timers if t[0] <= to]
        self.timers = [t for t in self.timers if t[0] > to]
        for _, callback in due:
            callback()


class FakeTask:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def test_each_read_gets_its_own_deadline_on_one_timer() -> None:
    loop = FakeLoop()
    deadlines = app._Deadlines(loop)  # type: ignore[arg-type]
    first, second, done = FakeTask(), FakeTask(), FakeTask()
    deadlines.add(first, 10)  # type: ignore[arg-type]
    loop.advance(4)
    deadlines.add(second, 10)  # type: ignore[arg-type]
    deadlines.add(done, 10)  # type: ignore[arg-type]
    deadlines.remove(done)  # type: ignore[arg-type]
    assert len(loop.timers) == 1, "one timer for all the reads"
    loop.advance(10)
    assert (first.cancelled, second.cancelled) == (True, False)
    assert deadlines.expired(first) and not deadlines.expired(second)  # type: ignore[arg-type]
    loop.advance(14)
    assert second.cancelled and not done.cancelled
    assert loop.timers == [], "no timer left once nothing is being read"
