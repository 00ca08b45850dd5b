"""Bytes on a TLS socket, for requests no well-behaved client would send."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import client_context


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def tls_socket(port: int, cert_dir: Path, timeout: float = 10.0) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return client_context(cert_dir).wrap_socket(raw, server_hostname="127.0.0.1")


def read_reply(sock: socket.socket) -> Reply | None:
    """One HTTP/1.1 response (content-length framed), or None when the server closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _recv(sock)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = _recv(sock)
        if not chunk:
            break
        body += chunk
    return Reply(status, headers, body[:length])


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := _recv(sock):
        data += chunk
    return data


def exchange(port: int, cert_dir: Path, data: bytes, replies: int = 1) -> list[Reply]:
    """Send `data` on a fresh connection and read up to `replies` responses."""
    with tls_socket(port, cert_dir) as sock:
        sock.sendall(data)
        out = []
        for _ in range(replies):
            reply = read_reply(sock)
            if reply is None:
                break
            out.append(reply)
        return out


def request(
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str | None] | None = None,
    version: str = "HTTP/1.1",
) -> bytes:
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1"]
    all_headers: dict[str, str | None] = {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        **(headers or {}),
    }
    lines += [f"{name}: {value}" for name, value in all_headers.items() if value is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        return b""
