"""The server's TLS context: TLS 1.2 at least, TLS 1.3 preferred, modern ciphers only.

The context is built once and kept: loading a new pair into the same live context
(`load_cert_chain` again) makes new handshakes use it, with no restart (see `certs.reload`).
"""

from __future__ import annotations

import ssl
from pathlib import Path


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx
