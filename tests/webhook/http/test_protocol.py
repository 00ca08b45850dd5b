"""The guarded protocol's head deadline on a kept-alive connection: each request's head gets
its own `HEAD_DEADLINE_SECONDS`, on the one timer the connection keeps; headers as the app sees
them; a response's head written with its body, whatever shape the response has; and writes
held to the end of the event loop's turn, in order with a close."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import uvicorn
from uvicorn.server import ServerState

from podtier.webhook.http import protocol


class Transport:
    def __init__(self) -> None:
        self.written = b""
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8443), "peername": ("127.0.0.1", 5555)}.get(name)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def until(done: Callable[[], bool]) -> None:
    for _ in range(1000):  # up to about 10 s
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the protocol never got there")


def new_connection(app: Any, transport: Any = None, **config: Any) -> tuple[Any, Any]:
    """A guarded protocol serving `app`, connected to `transport` (a fresh `Transport` if None)."""
    loaded = uvicorn.Config(app, http=protocol.GuardedHttpToolsProtocol, lifespan="off", **config)
    loaded.load()
    conn = protocol.GuardedHttpToolsProtocol(
        config=loaded, server_state=ServerState(), app_state={}
    )
    transport = Transport() if transport is None else transport
    conn.connection_made(transport)
    return conn, transport


async def ok(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_a_slow_head_after_a_served_request_gets_408_at_its_own_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(protocol, "HEAD_DEADLINE_SECONDS", 1.0)

    async def scenario() -> tuple[bytes, bytes, bool]:
        conn, transport = new_connection(ok)
        conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await until(lambda: b"ok" in transport.written)
        served = transport.written
        transport.written = b""
        await asyncio.sleep(0.6)  # the connection's timer is armed for the first head still
        conn.data_received(b"GET / HTTP/1.1\r\nHo")
        await asyncio.sleep(0.6)  # past the first head's deadline, 0.4 s before the second's
        in_time = transport.written
        await until(lambda: transport.closed)
        return served, in_time, transport.written

    served, in_time, refused = asyncio.run(scenario())
    assert served.startswith(b"HTTP/1.1 200 ")
    assert in_time == b"", "the second head was refused on the first head's deadline"
    assert refused.startswith(b"HTTP/1.1 408 ")
    body = orjson.loads(refused.split(b"\r\n\r\n", 1)[1])
    assert body["code"] == 408


async def echo_headers(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    body = orjson.dumps([[name.decode(), value.decode()] for name, value in scope["headers"]])
    length = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": length})
    await send({"type": "http.response.body", "body": body})


def test_headers_reach_the_app_lowercased_and_expect_100_continue_is_answered() -> None:
    async def scenario() -> bytes:
        conn, transport = new_connection(echo_headers)
        conn.data_received(
            b"POST /x HTTP/1.1\r\nHost: x\r\nX-Mixed-Case: Value\r\nExpect: 100-Continue\r\n"
            b"Content-Length: 2\r\n\r\n"
        )
        await until(lambda: b"100 Continue" in transport.written)
        conn.data_received(b"{}")
        await until(lambda: b"HTTP/1.1 200" in transport.written)
        return transport.written

    written = asyncio.run(scenario())
    assert written.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    headers = orjson.loads(written.rsplit(b"\r\n\r\n", 1)[1])
    assert ["x-mixed-case", "Value"] in headers and ["expect", "100-Continue"] in headers


async def one_part(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [LENGTH_2]})
    await send({"type": "http.response.body", "body": b"ok"})


async def streamed(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"o", "more_body": True})
    await send({"type": "http.response.body", "body": b"k"})


async def streamed_over_turns(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"o", "more_body": True})
    await asyncio.sleep(0)  # the rest comes in a later turn of the event loop
    await send({"type": "http.response.body", "body": b"k"})


async def no_body(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def fails_after_start(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [LENGTH_2]})
    raise RuntimeError("the app broke mid-response")


LENGTH_2 = (b"content-length", b"2")
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    ("app", "request_bytes", "wire", "writes", "closed"),
    [
        pytest.param(
            one_part,
            GET,
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            1,
            False,
            id="head-and-body-in-one-write",
        ),
        pytest.param(
            one_part,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
            1,
            True,
            id="connection-close",
        ),
        pytest.param(
            one_part,
            b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n",
            1,
            False,
            id="HEAD-has-no-body-write-but-gets-its-head",
        ),
        pytest.param(no_body, GET, b"HTTP/1.1 204 No Content\r\n\r\n", 1, False, id="empty-body"),
        pytest.param(
            streamed,
            GET,
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\no\r\n1\r\nk\r\n0\r\n\r\n",
            1,
            False,
            id="streamed-in-one-turn-one-write",
        ),
        pytest.param(
            streamed_over_turns,
            GET,
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\no\r\n1\r\nk\r\n0\r\n\r\n",
            2,
            False,
            id="streamed-over-two-turns-head-with-the-first-part",
        ),
        pytest.param(
            fails_after_start,
            GET,
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n",
            1,
            True,
            id="app-fails-after-the-head-connection-closed",
        ),
    ],
)
def test_a_response_goes_out_whole_with_its_head_in_the_first_write(
    app: Any, request_bytes: bytes, wire: bytes, writes: int, closed: bool
) -> None:
    async def scenario() -> Transport:
        conn, transport = new_connection(app, log_level="critical")
        conn.data_received(request_bytes)
        await until(
            lambda: conn.cycle is not None and conn.cycle.response_complete or transport.closed
        )
        return transport

    transport = asyncio.run(scenario())
    assert transport.written == wire
    assert len(transport.writes) == writes
    assert transport.closed == closed


def test_a_pipelined_request_is_answered_after_the_first_each_in_one_write() -> None:
    async def scenario() -> Transport:
        conn, transport = new_connection(one_part)
        conn.data_received(GET + GET)
        await until(lambda: transport.written.count(b"ok") == 2)
        return transport

    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    assert asyncio.run(scenario()).writes == [answer, answer]


class LoggedTransport(Transport):
    """A Transport that also notes each write in a log shared with the app."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def write(self, data: bytes) -> None:
        self.log.append("write")
        super().write(data)


def test_the_answers_of_one_turn_are_written_after_every_request_of_the_turn_ran() -> None:
    log: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await one_part(scope, receive, send)
        log.append("answered")

    async def scenario() -> list[Transport]:
        connections = [new_connection(app, LoggedTransport(log)) for _ in range(3)]
        for conn, _ in connections:  # one turn reads a request on each connection
            conn.data_received(GET)
        await until(lambda: log.count("write") == 3)
        return [transport for _, transport in connections]

    transports = asyncio.run(scenario())
    assert log == ["answered"] * 3 + ["write"] * 3
    assert all(t.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"] for t in transports)


def test_a_shutdown_right_after_an_answer_sends_the_answer_before_closing() -> None:
    async def scenario() -> Transport:
        connections: list[Any] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await one_part(scope, receive, send)
            connections[0].shutdown()  # the server stops in the turn the answer was made

        conn, transport = new_connection(app)
        connections.append(conn)
        conn.data_received(GET)
        await until(lambda: transport.closed)
        return transport

    transport = asyncio.run(scenario())
    assert transport.written == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class BrokenTransport(Transport):
    """A transport whose writes fail (a socket the kernel refuses)."""

    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def write(self, data: bytes) -> None:
        raise OSError("broken pipe")

    def abort(self) -> None:
        self.aborted = True
        self.closed = True


def test_a_connection_whose_write_fails_is_aborted_and_the_others_still_get_their_answers() -> None:
    async def scenario() -> tuple[BrokenTransport, list[Transport]]:
        first, broken = new_connection(one_part, BrokenTransport())
        others = [new_connection(one_part) for _ in range(2)]
        first.data_received(GET)
        for conn, _ in others:
            conn.data_received(GET)
        await until(lambda: all(t.writes for _, t in others))
        await until(lambda: broken.aborted)
        return broken, [t for _, t in others]

    broken, others = asyncio.run(scenario())
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    assert broken.aborted and all(t.writes == [answer] for t in others)
