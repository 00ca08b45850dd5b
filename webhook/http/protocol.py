"""uvicorn's httptools protocol with the limits podtier promises on the wire.

Stock uvicorn with httptools caps no header size (`h11_max_incomplete_event_size` is read by the
h11 protocol only), gives a connection that never sends a byte no timeout, and lets a client
trickle a request head forever. This protocol adds, per connection:

- a header cap: a request line plus headers over `MAX_HEADER_BYTES` gets 431 and a close;
- a head deadline: a request head not complete `HEAD_DEADLINE_SECONDS` after its first byte
  gets 408 and a close (the app's own deadline covers the body). One timer per connection,
  not per request: a request only notes when its head is due, and the timer, when it fires,
  looks at the head in progress (if any) and arms itself again for it;
- an idle timeout on a fresh connection, as uvicorn already has between requests;
- at shutdown, a connection closed by the server whose peer does not answer the TLS
  close_notify (a client with no reader on its idle pooled connection) is aborted after
  `CLOSE_GRACE_SECONDS`, instead of holding the process for uvicorn's whole graceful timeout;
- JSON `{"error", "code"}` instead of plain text on requests the parser refuses;
- the event loop in each request's scope (`LOOP_KEY`), so the app need not look it up;
- writes held to the end of the event loop's turn (`_HeldWrites`, `_Flusher`): what a
  connection is sent in one turn (a response's head and body) goes out as one write, one TLS
  record and one send system call, and every connection's after all the turn's requests are
  answered. Under load a turn answers a dozen requests. Encrypting and sending between each two
  of them evicted the app's code and data from the CPU caches (the app ran at half its
  in-process speed) and ran the kernel's send path a dozen times apart instead of in one
  stretch. Under wrk -c16 (bench/admission_bench.py's setup), per /mutate: server CPU 135 us
  before, 100 us after (the bare stack, writing as it goes: 87); by perf, libpython 81 -> 63 us
  and the kernel 25 -> 13 us. The cost is one more pass of the event loop before an answer
  leaves: microseconds (p99 at 500 req/s unchanged).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("podtier.server")

MAX_HEADER_BYTES = 64 * 1024
# The scope key under which the protocol hands the app its event loop: on Python 3.11 looking
# the loop up (`asyncio.get_running_loop`, `current_task`) makes a getpid system call each time.
LOOP_KEY = "podtier.loop"
HEAD_DEADLINE_SECONDS = 10.0
CLOSE_GRACE_SECONDS = 1.0


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._head_due: float | None = None  # loop time the head in progress must be done by
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: _Refused | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Every write from here on (uvicorn's response cycles and its own, and ours) goes
        # through the holder, so they leave in the order they were made.
        self.transport = _HeldWrites(transport, _Flusher.of(self.loop))  # type: ignore[assignment]
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        super().shutdown()  # closes an idle connection now, or after the response in flight
        self.loop.call_later(CLOSE_GRACE_SECONDS, self._abort_stalled_close)

    def _abort_stalled_close(self) -> None:
        if self.parser is None:  # connection_lost came: closed cleanly
            return
        if self.transport.is_closing():
            self.transport.abort()  # the peer never answered the TLS goodbye
        else:  # still answering a request: look again later
            self.loop.call_later(CLOSE_GRACE_SECONDS, self._abort_stalled_close)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[LOOP_KEY] = self.loop  # type: ignore[literal-required]
        self._head_bytes = 0
        self._head_due = due = self.loop.time() + HEAD_DEADLINE_SECONDS
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(due, self._check_head)

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > MAX_HEADER_BYTES:
            self._refuse_head()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4  # counted inline: called per header
        if self._head_bytes > MAX_HEADER_BYTES:
            self._refuse_head()
        # uvicorn's own on_header, inline (one call less per header; test_protocol checks
        # that headers and Expect: 100-continue still reach the app)
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_due = None  # the timer, when it fires, finds no head in progress
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        refusal, self._refusal = self._refusal, None
        if refusal is None:
            self._send_and_close(400, "not a valid HTTP/1.1 request")
        else:
            self._send_and_close(refusal.status, refusal.message)

    def _refuse_head(self) -> None:
        self._refusal = _Refused(431, f"request headers are over the {MAX_HEADER_BYTES} byte cap")
        # The parser turns this into an error, which ends in send_400_response.
        raise self._refusal

    def _check_head(self) -> None:
        self._head_timer = None
        due = self._head_due
        if due is None:
            return  # no head in progress: the next one arms the timer
        if due > self.loop.time():  # armed for an earlier head: wait for this one's
            self._head_timer = self.loop.call_at(due, self._check_head)
            return
        self._head_due = None
        self._head_too_slow()

    def _head_too_slow(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # answering an earlier request: close after it
        elif not self.transport.is_closing():
            self._send_and_close(
                408, f"request headers not received within {HEAD_DEADLINE_SECONDS:g} s"
            )

    def _cancel_head_timer(self) -> None:
        self._head_due = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _send_and_close(self, status: int, message: str) -> None:
        self._cancel_head_timer()
        body = orjson.dumps({"error": message, "code": status})
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class _HeldWrites:
    """A connection's transport as uvicorn and the app see it: what is written is held, and sent
    as one write when `_Flusher` ends the event loop's turn (or at once, before a close). The
    rest of the transport's interface passes through."""

    __slots__ = ("transport", "flusher", "parts")

    def __init__(self, transport: asyncio.Transport, flusher: _Flusher) -> None:
        self.transport = transport
        self.flusher = flusher
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self.parts:
            self.flusher.add(self)
        self.parts.append(data)

    def flush(self) -> None:
        parts = self.parts
        if parts:
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            parts.clear()
            if not self.transport.is_closing():  # else the peer is gone: as a late write
                self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self.parts.clear()
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _Flusher:
    """Sends what the connections of one event loop were written in this turn, at its end: the
    first connection `add`ed in a turn schedules `flush` (`call_soon`, so it runs after the
    tasks the turn has started, and before the requests the next turn reads)."""

    _current: _Flusher | None = None  # the running loop's

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: list[_HeldWrites] = []

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Flusher:
        current = cls._current
        if current is None or current.loop is not loop:
            current = cls._current = cls(loop)
        return current

    def add(self, held: _HeldWrites) -> None:
        self.waiting.append(held)
        if len(self.waiting) == 1:
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        waiting, self.waiting = self.waiting, []
        for held in waiting:
            try:
                held.flush()
            except Exception:  # noqa: BLE001 - one broken connection must not hold the others'
                log.exception("a connection's write failed: closing it")
                held.abort()
