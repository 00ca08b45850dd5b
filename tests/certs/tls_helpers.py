"""Test helpers: a kubelet-style Secret volume writer, a small TLS server, a TLS client.

The kubelet imitation is written here, independently of podtier's code, after the kubelet's
AtomicWriter: files go into a new `..<timestamp>` directory, a `..data_tmp` symlink to it is
renamed over `..data`, and the user-visible names are symlinks `NAME -> ..data/NAME` made once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from cryptography import x509


def kubelet_update(volume: Path, files: dict[str, bytes]) -> None:
    """Publish `files` in `volume` the way the kubelet updates a mounted Secret."""
    volume.mkdir(parents=True, exist_ok=True)
    data_link = volume / "..data"
    old = os.readlink(data_link) if data_link.is_symlink() else None
    stamp = dt.datetime.now(dt.UTC).strftime("..%Y_%m_%d_%H_%M_%S.%f")
    new_dir = volume / stamp
    suffix = 0
    while new_dir.exists():
        suffix += 1
        new_dir = volume / f"{stamp}{suffix}"
    new_dir.mkdir()
    for name, data in files.items():
        (new_dir / name).write_bytes(data)
        os.chmod(new_dir / name, 0o600 if name.endswith(".key") else 0o644)
    tmp_link = volume / "..data_tmp"
    os.symlink(new_dir.name, tmp_link)
    os.rename(tmp_link, data_link)
    for name in files:
        if not (volume / name).is_symlink():
            os.symlink(f"..data/{name}", volume / name)
    if old:
        shutil.rmtree(volume / old)


class LoopThread:
    """An asyncio loop running in a daemon thread; run coroutines on it from tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def _answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def start_tls_server(ctx: ssl.SSLContext) -> tuple[asyncio.Server, int]:
    """An HTTP/1.1 server on 127.0.0.1 answering 200 to every request, over `ctx`."""
    server = await asyncio.start_server(_answer_ok, "127.0.0.1", 0, ssl=ctx)
    return server, server.sockets[0].getsockname()[1]


def client_context(ca_pem: bytes, **versions: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    for name, version in versions.items():
        setattr(ctx, name, version)
    return ctx


def https_get(
    port: int, ctx: ssl.SSLContext, path: str = "/healthz", host: str = "localhost"
) -> tuple[int, x509.Certificate, str]:
    """One request on a fresh connection: (HTTP status, the server's cert, TLS version)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        version = tls.version() or ""
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        tls.sendall(request.encode())
        response = b""
        while chunk := tls.recv(65536):
            response += chunk
    status = int(response.split(b" ", 2)[1])
    return status, x509.load_der_x509_certificate(der), version


class RequestLoop:
    """Makes requests back to back in a thread; records every served serial and any failure."""

    def __init__(self, request: Callable[[], tuple[int, x509.Certificate, str]]) -> None:
        self.request = request
        self.serials: list[int] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, cert, _ = self.request()
            except Exception as error:  # every kind of failure counts
                self.failures.append(repr(error))
                continue
            if status != 200:
                self.failures.append(f"HTTP {status}")
            self.serials.append(cert.serial_number)

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
