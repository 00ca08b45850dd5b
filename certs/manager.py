"""In-cluster certificate management for `podtier serve --manage-certs`.

Every replica runs a `CertManager`. One reconcile step (`ensure(now)`) does, in order:

1. **Read or create the Secret** (`kubernetes.io/tls`, fields in `certs.stored`). When it is
   missing, make a CA and a serving pair and create it; on 409 AlreadyExists (another replica
   won the race) read back and use what won. Every replica then serves the same pair.
2. **Publish the pair to the local cert dir** (`tls.crt`, `tls.key`, `ca.crt`), kubelet-style
   (`certs.publish`), so `certs.reload` loads it into the live TLS context.
3. **Patch `caBundle`** of every webhook in the named MutatingWebhookConfiguration and
   ValidatingWebhookConfiguration to the trust bundle, when it differs. `run()` repeats the
   whole step every `interval`, so a `caBundle` reset by someone (a `helm upgrade`, GitOps)
   is patched back within one interval.
4. **Advance the lifecycle** (`certs.plan.next_step`), writing the Secret with its
   resourceVersion. A 409 Conflict means another replica wrote first: read back, plan again.

Renewal: the serving cert is reissued (same CA) when a third of its life is left, or when it
no longer covers the Service names. The CA is already trusted, so no overlap is needed.

CA rotation, with overlap; replicas signal through the Secret (no extra RBAC):

- *Introduce*: when a third of the CA's life is left, a new CA goes into `ca-next.crt/.key`
  (annotation `podtier.io/ca-next-since`). The trust bundle is now old + new; step 3 patches
  it into every webhook. Serving certs are still signed by the old CA.
- *Switch*: once both configurations carry the new CA in every webhook and `propagation`
  (default 2 min, for every kube-apiserver to pick the change up) has passed since, the serving
  cert is reissued by the new CA, the old CA cert moves to `ca-previous.crt` (still trusted),
  and `podtier.io/ca-switched-at` is set.
- *Report*: while a rotation runs, each replica writes a heartbeat annotation
  `served.podtier.io/<replica>: "<sha256 of the CA that signed the cert it serves> <unix>"`,
  whenever it changes and at least every `heartbeat_ttl / 2`. What it serves is what its
  reloader loaded (`served` callable), not merely what the Secret says.
- *Retire*: the old CA leaves the bundle only when `heartbeat_ttl` (default 5 min) has passed
  since the switch (so every live replica has beaten since) and every heartbeat younger than
  `heartbeat_ttl` names the new CA. Beats older than that are from replicas that are gone and
  are ignored and pruned. A replica cut off from the API server for longer than
  `heartbeat_ttl` counts as gone.

A Secret without `ca.key` holds a CA podtier does not own: it is served and injected as is,
never renewed (the reloader still warns as expiry nears).

Least RBAC (`certs.rbac`): get/update on this Secret and create on secrets in the namespace;
get/patch on the two webhook configurations by resourceNames. Nothing is listed or watched.

Wiring into `serve` (the manager writes `cert_dir` before the TLS context is built):

    manager = CertManager(api_client, namespace=ns, secret_name=..., service=...,
                          mutating_webhook=..., validating_webhook=..., cert_dir=cert_dir)
    manager.ensure(manager.clock())               # first pair on disk, caBundles injected
    ctx = certs.tls.server_context(cert_dir / "tls.crt", cert_dir / "tls.key")
    reloader = certs.reload.Reloader(ctx, cert_dir)
    manager.served = reloader.served_cert         # heartbeats report what is really served
    # background tasks: reloader.watch(), manager.run()
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from kubernetes import client

from podtier.certs.kube import MUTATING, VALIDATING, AlreadyExists, Conflict, KubeCalls
from podtier.certs.plan import Settings, ca_bundle_patch, initial, next_step, trusts, with_heartbeat
from podtier.certs.publish import publish
from podtier.certs.stored import (
    HEARTBEAT_PREFIX,
    StoredCerts,
    StoredCertsError,
    from_secret,
    heartbeat_key,
    issuing_ca_fingerprint,
    to_secret,
)
from podtier.webhook.observability.metrics import CERT_RECONCILES

log = logging.getLogger("podtier.certs.manager")

Clock = Callable[[], dt.datetime]
ServedCert = Callable[[], x509.Certificate | None]
MAX_ROUNDS = 12


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CertManager:
    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        namespace: str,
        secret_name: str,
        service: str,
        mutating_webhook: str | None,
        validating_webhook: str | None,
        cert_dir: Path,
        clock: Clock = utc_now,
        replica: str | None = None,
        served: ServedCert | None = None,
        settings: Settings | None = None,
        interval: dt.timedelta = dt.timedelta(seconds=30),
        kube: KubeCalls | None = None,
    ) -> None:
        self.kube = kube or KubeCalls(api_client)
        self.namespace = namespace
        self.secret_name = secret_name
        self.webhooks = [
            (kind, name)
            for kind, name in ((MUTATING, mutating_webhook), (VALIDATING, validating_webhook))
            if name
        ]
        self.cert_dir = Path(cert_dir)
        self.clock = clock
        self.replica = heartbeat_key(replica or socket.gethostname()).removeprefix(HEARTBEAT_PREFIX)
        self.served = served or self._served_from_cert_dir
        self.settings = settings or Settings(service=service, namespace=namespace)
        self.interval = interval
        self.stored: StoredCerts | None = None

    # ------------------------------------------------------------------ one reconcile step

    def ensure(self, now: dt.datetime) -> StoredCerts:
        """Reconcile Secret, local files and caBundles until nothing is left to do at `now`."""
        secret = self._read_or_create(now)
        for _round in range(MAX_ROUNDS):
            stored = self._parse_or_replace(secret, now)
            self._apply(stored, now)
            configs = self._patch_webhooks(stored)
            changed, reason = self._plan(stored, configs, now)
            if changed is None:
                return stored
            try:
                secret = self._update(secret, changed)
            except Conflict:
                log.info("Secret %s changed under us; reading it back", self._where)
                secret = self._read_or_create(now)
                continue
            if reason:
                log.info("Secret %s: %s", self._where, reason)
        raise RuntimeError(f"Secret {self._where}: still changing after {MAX_ROUNDS} rounds")

    def _plan(
        self, stored: StoredCerts, configs: list[dict[str, Any] | None], now: dt.datetime
    ) -> tuple[StoredCerts | None, str]:
        """The Secret contents to write next (this replica's heartbeat and/or one step)."""
        beat = with_heartbeat(stored, self.settings, self.replica, self._served_ca(stored), now)
        base = beat or stored
        trusted = base.next_ca is not None and all(
            trusts(config, base.next_ca.cert_pem) for config in configs
        )
        step = next_step(base, self.settings, now, webhooks_trust_next_ca=trusted)
        if step is None:
            return beat, ""
        return step.stored, step.reason

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        """Reconcile every `interval` until `stop_event` is set (or the task is cancelled);
        errors are logged, not raised, and retried next round."""
        stop_event = stop_event or asyncio.Event()
        while not stop_event.is_set():
            try:
                await asyncio.to_thread(self.ensure, self.clock())
                CERT_RECONCILES.labels("success").inc()
            except Exception as error:  # keep serving; the next round retries
                CERT_RECONCILES.labels("error").inc()
                log.warning("certificate reconcile failed: %s", _one_line(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), self.interval.total_seconds())

    # ------------------------------------------------------------------ pieces

    @property
    def _where(self) -> str:
        return f"{self.namespace}/{self.secret_name}"

    def _read_or_create(self, now: dt.datetime) -> dict[str, Any]:
        secret = self.kube.get_secret(self.namespace, self.secret_name)
        if secret is not None:
            return secret
        body = to_secret(initial(self.settings, now), self.secret_name, self.namespace)
        try:
            created = self.kube.create_secret(self.namespace, body)
            log.info("Secret %s created with a new CA and serving certificate", self._where)
            return created
        except AlreadyExists:
            log.info("Secret %s was created by another replica; using it", self._where)
        secret = self.kube.get_secret(self.namespace, self.secret_name)
        if secret is None:
            raise RuntimeError(f"Secret {self._where}: exists on create but not on read")
        return secret

    def _parse_or_replace(self, secret: dict[str, Any], now: dt.datetime) -> StoredCerts:
        try:
            return from_secret(secret)
        except StoredCertsError as error:
            log.error("%s; replacing it with a new CA and serving certificate", error)
        fresh = initial(self.settings, now)
        return from_secret(self._update(secret, fresh))

    def _update(self, secret: dict[str, Any], stored: StoredCerts) -> dict[str, Any]:
        body = to_secret(stored, self.secret_name, self.namespace)
        meta = secret.get("metadata") or {}
        body["metadata"]["resourceVersion"] = meta.get("resourceVersion")
        body["type"] = secret.get("type") or body["type"]  # a Secret's type is immutable
        kept = {k: v for k, v in (meta.get("annotations") or {}).items() if not _ours(k)}
        body["metadata"]["annotations"] = {**kept, **body["metadata"]["annotations"]}
        body["metadata"]["labels"] = {**(meta.get("labels") or {}), **body["metadata"]["labels"]}
        return self.kube.update_secret(self.namespace, body)

    def _apply(self, stored: StoredCerts, now: dt.datetime) -> None:
        if publish(
            self.cert_dir,
            {
                "tls.crt": (stored.serving.cert_pem, 0o644),
                "tls.key": (stored.serving.key_pem, 0o600),
                "ca.crt": (stored.trust_bundle(), 0o644),
            },
            now,
        ):
            log.info(
                "wrote serving certificate serial %x to %s",
                stored.serving.cert.serial_number,
                self.cert_dir,
            )
        self.stored = stored

    def _patch_webhooks(self, stored: StoredCerts) -> list[dict[str, Any] | None]:
        configs: list[dict[str, Any] | None] = []
        bundle = stored.trust_bundle()
        for kind, name in self.webhooks:
            config = self.kube.get_webhook_config(kind, name)
            if config is None:
                log.warning("%s %s not found; caBundle not injected yet", kind, name)
            else:
                ops = ca_bundle_patch(config, bundle)
                if ops:
                    config = self.kube.patch_webhook_config(kind, name, ops)
                    log.info("%s %s: caBundle set on %d webhook(s)", kind, name, len(ops) // 2)
            configs.append(config)
        return configs

    def _served_ca(self, stored: StoredCerts) -> str | None:
        cert = self.served()
        if cert is None:
            return None
        return issuing_ca_fingerprint(cert, stored.trusted_ca_pems())

    def _served_from_cert_dir(self) -> x509.Certificate | None:
        try:
            return x509.load_pem_x509_certificate((self.cert_dir / "tls.crt").read_bytes())
        except (OSError, ValueError):
            return None


def _ours(annotation: str) -> bool:
    return annotation.startswith(HEARTBEAT_PREFIX) or annotation.startswith("podtier.io/ca-")


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
