"""`podtier serve`: assemble the policy, headroom, TLS and background jobs, then run."""

from __future__ import annotations

import datetime as dt
import logging
import shlex
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from podtier.certs.generate import make_ca, make_serving_cert, write_pair
from podtier.certs.reload import Reloader
from podtier.certs.tls import server_context
from podtier.webhook.core.capacity import StartableHeadroom
from podtier.webhook.core.escalation_seal import EscalationSeal
from podtier.webhook.core.profile import ProfilesSource
from podtier.webhook.http.app import AppState
from podtier.webhook.http.sample import sample_review
from podtier.webhook.http.server import Listen, run
from podtier.webhook.observability import metrics
from podtier.webhook.policy import Policy

log = logging.getLogger("podtier.serve")


@dataclass
class ServeSetup:
    policy: Policy
    headroom: StartableHeadroom
    cert_dir: Path
    listen: Listen
    background: list[Callable[[AppState], Callable[[], Awaitable[None]]]] = field(
        default_factory=list
    )
    profiles: ProfilesSource | None = None  # learned task profiles (--learning)
    seal: EscalationSeal | None = None  # signs OOM escalations (--escalation-key)


def make_dev_certs() -> Path:
    """A throwaway CA and a serving cert for 127.0.0.1 and localhost, in a temp dir."""
    cert_dir = Path(tempfile.mkdtemp(prefix="podtier-dev-"))
    now = dt.datetime.now(dt.UTC)
    ca = make_ca(now, common_name="podtier-dev-ca")
    serving = make_serving_cert(ca, now, dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    write_pair(cert_dir, ca, serving)
    return cert_dir


def print_dev_banner(cert_dir: Path, listen: Listen) -> None:
    sample = cert_dir / "sample-review.json"
    sample.write_bytes(orjson.dumps(sample_review(), option=orjson.OPT_INDENT_2))
    host = "127.0.0.1" if listen.host in ("0.0.0.0", "") else listen.host
    curl = (
        f"curl -sS --cacert {shlex.quote(str(cert_dir / 'ca.crt'))} "
        f"-H 'Content-Type: application/json' --data @{shlex.quote(str(sample))} "
        f"https://{host}:{listen.port}/mutate"
    )
    print(f"podtier dev server: CA certificate at {cert_dir / 'ca.crt'}", file=sys.stderr)
    print(f"try it:\n  {curl}", file=sys.stderr, flush=True)


def run_server(setup: ServeSetup, on_started: Callable[[], None] | None = None) -> None:
    ctx = server_context(setup.cert_dir / "tls.crt", setup.cert_dir / "tls.key")
    # Keep the live context on the newest valid pair in cert_dir (kubelet Secret updates too).
    reloader = Reloader(ctx, setup.cert_dir)
    reloader.reload()
    state = AppState(
        policy=setup.policy,
        headroom=setup.headroom,
        profiles=setup.profiles,
        tls_ready=reloader.ready,
        seal=setup.seal,
    )
    jobs = [make(state) for make in setup.background] + [reloader.watch]
    log.info(
        "serving",
        extra={
            "address": f"https://{setup.listen.host}:{setup.listen.port}",
            "policy": setup.policy.ident,
        },
    )
    pool_headroom = getattr(setup.headroom, "pool_headroom", None)
    if pool_headroom is not None:
        metrics.register_headroom_provider(lambda: pool_headroom(state.policy.pools.values()))
    metrics.register_reservations_provider(getattr(setup.headroom, "reservation_count", None))
    setup.headroom.start()
    try:
        run(state, setup.listen, ctx, background=jobs, on_started=on_started)
    finally:
        setup.headroom.stop()
