"""The guarded protocol's head deadline on a kept-alive connection: each request's head gets
its own `HEAD_DEADLINE_SECONDS`, on the one timer the connection keeps."""

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
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

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


async def ok(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_a_slow_head_after_a_served_request_gets_408_at_its_own_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(protocol, "HEAD_DEADLINE_SECONDS", 1.0)

    async def scenario() -> tuple[bytes, bytes, bool]:
        config = uvicorn.Config(ok, http=protocol.GuardedHttpToolsProtocol, lifespan="off")
        config.load()
        conn = protocol.GuardedHttpToolsProtocol(
            config=config, server_state=ServerState(), app_state={}
        )
        transport = Transport()
        conn.connection_made(transport)  # type: ignore[arg-type]
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
        config = uvicorn.Config(
            echo_headers, http=protocol.GuardedHttpToolsProtocol, lifespan="off"
        )
        config.load()
        conn = protocol.GuardedHttpToolsProtocol(
            config=config, server_state=ServerState(), app_state={}
        )
        transport = Transport()
        conn.connection_made(transport)  # type: ignore[arg-type]
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
