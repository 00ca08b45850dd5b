"""Hot reload of the policy files while `podtier serve` runs.

    file change (watchfiles) ─► read every file, twice, until two reads agree
        ─► parse and check the whole set ─► `state.policy = new` (one reference swap)
                                        └─► invalid: keep the last good policy, log, count

A ConfigMap volume changes by kubelet writing a new timestamped directory (`..2026_...`) and
renaming a `..data_tmp` symlink over `..data`; the visible files (`default.yaml ->
..data/default.yaml`) never change themselves. So podtier watches directories, not files
(a file path is watched through its directory, which also survives editors that save by
renaming), and treats any event as "read the set again": the content decides whether
anything changed. Reading twice and comparing makes sure no half-swapped set is used.

Handlers read `state.policy` once per request, so no request ever sees half a policy.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from podtier.webhook.core.policy import Policy, PolicyError
from podtier.webhook.observability import metrics
from podtier.webhook.policy.load import load_policy_text, read_policy_files

log = logging.getLogger("podtier.policy")

ReloadResult = Literal["success", "error", "unchanged"]
READ_ATTEMPTS = 5
DEBOUNCE_MS = 200
RETRY_SECONDS = 1.0


class HoldsPolicy(Protocol):
    """What the reloader swaps the policy in: `webhook.http.app.AppState`, or any holder."""

    policy: Policy


@dataclass
class PolicyReloader:
    """Reload `paths` into `holder.policy` on demand; `reload()` is safe to call at any time."""

    paths: tuple[Path, ...]
    holder: HoldsPolicy
    _last_attempt: str = field(default="", init=False)

    def reload(self) -> ReloadResult:
        files = self._read_consistently()
        attempt = _fingerprint(files)
        if attempt == self._last_attempt:
            return "unchanged"  # nothing new since the last attempt, good or bad
        self._last_attempt = attempt
        try:
            if isinstance(files, PolicyError):
                raise files
            policy = load_policy_text(files)
        except PolicyError as err:
            metrics.POLICY_RELOADS.labels("error").inc()
            metrics.POLICY_LAST_RELOAD_SUCCESSFUL.set(0)
            log.error(
                "policy reload failed, keeping the last good policy: %s",
                err,
                extra={
                    "file": err.source,
                    "field": err.path,
                    "error": err.message,
                    "policy": self.holder.policy.ident,
                },
            )
            return "error"
        metrics.POLICY_LAST_RELOAD_SUCCESSFUL.set(1)
        previous = self.holder.policy
        if policy.digest == previous.digest:
            return "unchanged"
        self.holder.policy = policy
        metrics.POLICY_RELOADS.labels("success").inc()
        log.info(
            "policy reloaded",
            extra={
                "policy": policy.ident,
                "previous": previous.ident,
                "files": list(policy.sources),
            },
        )
        return "success"

    def _read_consistently(self) -> list[tuple[str, str]] | PolicyError:
        """The files' texts, read until two reads in a row agree (a swap may be under way)."""
        previous = _read(self.paths)
        for _ in range(READ_ATTEMPTS):
            current = _read(self.paths)
            if _fingerprint(current) == _fingerprint(previous):
                return current
            previous = current
        return previous


def watch_targets(paths: Sequence[Path]) -> list[Path]:
    """Directories to watch: each directory path, and the directory of each file path."""
    targets: list[Path] = []
    for path in paths:
        target = path if path.is_dir() else path.absolute().parent
        if target not in targets:
            targets.append(target)
    return targets


def policy_reload_job(
    paths: Sequence[str | Path], *, force_polling: bool | None = None
) -> Callable[[HoldsPolicy], Callable[[], Awaitable[None]]]:
    """A background job factory for `ServeSetup.background`: given the app state, a coroutine
    function that watches `paths` and reloads the policy until cancelled."""
    resolved = tuple(Path(p) for p in paths)

    def make(holder: HoldsPolicy) -> Callable[[], Awaitable[None]]:
        reloader = PolicyReloader(resolved, holder)

        async def watch() -> None:
            await watch_and_reload(reloader, force_polling=force_polling)

        return watch

    return make


async def watch_and_reload(reloader: PolicyReloader, *, force_polling: bool | None = None) -> None:
    from watchfiles import awatch

    targets = watch_targets(reloader.paths)
    log.info("watching policy files", extra={"paths": [str(t) for t in targets]})
    while True:
        try:
            await _reload_in_thread(reloader)  # catch up with edits made before the watch began
            async for _changes in awatch(
                *targets,
                watch_filter=None,
                debounce=DEBOUNCE_MS,
                force_polling=force_polling,
                recursive=True,
            ):
                await _reload_in_thread(reloader)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("policy watch failed; watching again in %.0f s", RETRY_SECONDS)
        await asyncio.sleep(RETRY_SECONDS)


async def _reload_in_thread(reloader: PolicyReloader) -> None:
    try:
        await asyncio.to_thread(reloader.reload)
    except asyncio.CancelledError:
        raise
    except Exception:
        metrics.POLICY_RELOADS.labels("error").inc()
        metrics.POLICY_LAST_RELOAD_SUCCESSFUL.set(0)
        log.exception("policy reload failed unexpectedly, keeping the last good policy")


def _read(paths: Sequence[Path]) -> list[tuple[str, str]] | PolicyError:
    try:
        return read_policy_files(paths)
    except PolicyError as err:
        return err


def _fingerprint(files: list[tuple[str, str]] | PolicyError) -> str:
    if isinstance(files, PolicyError):
        return "error:" + str(files)
    digest = hashlib.sha256()
    for source, text in files:
        digest.update(source.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()
