"""Hot reload of the serving pair into the live `ssl.SSLContext`, with no restart.

`serve` builds its context once (`certs.tls.server_context`) and runs `watch_cert_dir` as a
task. The watcher sees any change in the cert directory: files rewritten in place, files
renamed over, and the kubelet's atomic update of a mounted Secret (it writes a new
`..2026_...` directory, points a `..data_tmp` symlink at it and renames that over `..data`;
`tls.crt -> ..data/tls.crt` then resolves to the new pair in one step).

On each change `reload_once` reads `tls.crt` and `tls.key`, checks they parse and belong
together, and only then calls `load_cert_chain` on the live context: handshakes that start
afterwards get the new pair, connections already open keep theirs. A missing, half-written or
mismatched pair is logged and the old pair stays in service. The checked bytes are what gets
loaded (through a private temp copy), so a file changing between check and load cannot slip an
unchecked pair in.

Each load sets `podtier_cert_expiry_timestamp_seconds`, and a warning is logged when expiry is
near (under 30 days, or under a third of the certificate's life); the watcher repeats that check
every `recheck` interval even when nothing changes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

import watchfiles
from cryptography import x509

from podtier.certs.files import CertFileError, ServingPair, read_serving_pair
from podtier.certs.generate import write_atomic
from podtier.certs.lifetime import expiry_warning
from podtier.webhook.observability.metrics import CERT_EXPIRY

log = logging.getLogger("podtier.certs.reload")

Clock = Callable[[], dt.datetime]
RECHECK = dt.timedelta(hours=1)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def pair_digest(pair: ServingPair) -> str:
    return hashlib.sha256(pair.chain_pem + b"\0" + pair.key_pem).hexdigest()


def load_into(ctx: ssl.SSLContext, pair: ServingPair) -> None:
    """Load a checked pair into the live context (from a private 0600 temp copy)."""
    with tempfile.TemporaryDirectory(prefix="podtier-tls-") as tmp:
        cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        write_atomic(cert_file, pair.chain_pem, 0o600)
        write_atomic(key_file, pair.key_pem, 0o600)
        ctx.load_cert_chain(str(cert_file), str(key_file))


def record_expiry(pair: ServingPair, now: dt.datetime) -> None:
    CERT_EXPIRY.set(pair.cert.not_valid_after_utc.timestamp())
    warning = expiry_warning(pair.cert, now)
    if warning:
        log.warning("serving %s", warning)


class Reloader:
    """Keeps a live SSLContext serving the pair in `cert_dir`; remembers what it loaded."""

    def __init__(self, ctx: ssl.SSLContext, cert_dir: Path, clock: Clock = utc_now) -> None:
        self.ctx = ctx
        self.cert_dir = Path(cert_dir)
        self.clock = clock
        self.loaded: ServingPair | None = None
        self._digest: str | None = None

    def ready(self) -> bool:
        """A pair is loaded and has not expired (for `/readyz`)."""
        return self.loaded is not None and self.loaded.cert.not_valid_after_utc > self.clock()

    def served_cert(self) -> x509.Certificate | None:
        """The certificate new handshakes get (for `CertManager(served=...)`)."""
        return self.loaded.cert if self.loaded is not None else None

    def reload(self) -> bool:
        """Load the pair on disk if it is new and valid. True when a new pair went live."""
        try:
            pair = read_serving_pair(self.cert_dir)
        except CertFileError as error:
            log.warning("keeping the current certificate: %s", error)
            return False
        digest = pair_digest(pair)
        if digest == self._digest:
            return False
        try:
            load_into(self.ctx, pair)
        except (ssl.SSLError, OSError) as error:
            log.warning(
                "keeping the current certificate: loading %s failed: %s", self.cert_dir, error
            )
            return False
        self.loaded, self._digest = pair, digest
        log.info(
            "serving certificate serial %x (expires %s) from %s",
            pair.cert.serial_number,
            pair.cert.not_valid_after_utc.isoformat(),
            self.cert_dir,
        )
        record_expiry(pair, self.clock())
        return True

    async def watch(
        self,
        stop_event: asyncio.Event | None = None,
        recheck: dt.timedelta = RECHECK,
        force_polling: bool | None = None,
    ) -> None:
        """Reload on every change in the cert directory until `stop_event` is set (or the task
        is cancelled)."""
        self.reload()
        async for _changes in watchfiles.awatch(
            self.cert_dir,
            watch_filter=None,
            stop_event=stop_event,
            rust_timeout=int(recheck.total_seconds() * 1000),
            yield_on_timeout=True,
            debounce=200,
            step=20,
            force_polling=force_polling,
        ):
            if not self.reload() and self.loaded is not None:
                record_expiry(self.loaded, self.clock())


def reload_once(ctx: ssl.SSLContext, cert_dir: Path) -> bool:
    """Load `cert_dir`'s pair into `ctx` if it is valid; False (old pair kept) if not."""
    return Reloader(ctx, cert_dir).reload()


async def watch_cert_dir(
    ctx: ssl.SSLContext,
    cert_dir: Path,
    stop_event: asyncio.Event | None = None,
    clock: Clock = utc_now,
) -> None:
    """Run as a task beside the server: keeps `ctx` serving the newest valid pair."""
    await Reloader(ctx, cert_dir, clock).watch(stop_event)
