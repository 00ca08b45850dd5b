"""A seal on podtier's OOM escalation, so that no pod can grant itself one. Pure: the key is
handed in as a value (the edge reads it from the Secret the chart makes).

`podtier.io/escalated-memory` lets the base container's memory limit rise above its tier's
(never above the ceiling). Annotations are written by whoever creates or updates the pod, so
the raise is believed only with a matching `podtier.io/escalation-seal`:

    seal = "v1." + base64url(HMAC-SHA256(key, [namespace, dag_id, task_id, run_id,
                                              map_index, try_number, kind, tier, memory]))

A seal made for another namespace, task instance or try (a stale one, copied from an earlier
pod), another memory or another tier does not match; without the key none can be made. A
pod whose escalation does not verify is decided afresh on CREATE (the annotations are removed
unless the task's profile grants the raise again) and is judged by its tier's limits alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from podtier.webhook.core.pod import PodView
from podtier.webhook.core.profile import task_instance
from podtier.webhook.core.quantity import QuantityError, to_milli
from podtier.webhook.core.tiering import (
    ESCALATED_MEMORY_ANNOTATION,
    ESCALATION_SEAL_ANNOTATION,
    TIER_ANNOTATION,
)

VERSION = "v1"
MIN_KEY_BYTES = 32


class SealKeyError(ValueError):
    """The key is too short to seal with."""


@dataclass(frozen=True)
class EscalationSeal:
    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise SealKeyError(
                f"the escalation seal key has {len(self.key)} bytes; at least {MIN_KEY_BYTES} "
                "are needed"
            )

    def __repr__(self) -> str:  # never print the key
        return "EscalationSeal(<key>)"

    def sign(self, pod: PodView, tier: str, memory: str) -> str | None:
        """The seal for `pod` escalated to `memory` (the annotation's text) in `tier`; None
        for a pod that runs no task instance (podtier never escalates those)."""
        message = _message(pod.namespace, pod.labels, pod.annotations, tier, memory)
        return None if message is None else self._seal(message)

    def _seal(self, message: bytes) -> str:
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return f"{VERSION}.{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"

    def verified_memory(self, pod: PodView) -> int | None:
        """The escalated memory limit (milli-units) the pod's annotations carry, when its seal
        matches them; None when there is none, or it is forged or stale."""
        return self.verified_memory_of(pod.namespace, pod.labels, pod.annotations)

    def verified_memory_of(
        self, namespace: str, labels: Mapping[str, str], notes: Mapping[str, str]
    ) -> int | None:
        """`verified_memory` of a pod given by its namespace, labels and annotations (a
        finished pod the learning recorder reads)."""
        memory = notes.get(ESCALATED_MEMORY_ANNOTATION)
        seal = notes.get(ESCALATION_SEAL_ANNOTATION)
        if memory is None or seal is None:
            return None
        message = _message(namespace, labels, notes, notes.get(TIER_ANNOTATION, ""), memory)
        if message is None or not hmac.compare_digest(self._seal(message), seal):
            return None
        try:
            return to_milli(memory)
        except QuantityError:
            return None


def verified_memory(seal: EscalationSeal | None, pod: PodView) -> int | None:
    """`seal.verified_memory(pod)`; without a key nothing verifies."""
    return None if seal is None else seal.verified_memory(pod)


def sealed(
    annotations: Mapping[str, str], pod: PodView, seal: EscalationSeal | None
) -> dict[str, str]:
    """A decision's annotations with the seal added when they escalate the pod (and a key is
    given): what podtier writes on a pod it raised."""
    out = dict(annotations)
    memory = out.get(ESCALATED_MEMORY_ANNOTATION)
    if memory is not None and seal is not None:
        signature = seal.sign(pod, out.get(TIER_ANNOTATION, ""), memory)
        if signature is not None:
            out[ESCALATION_SEAL_ANNOTATION] = signature
    return out


def _message(
    namespace: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    tier: str,
    memory: str,
) -> bytes | None:
    instance = task_instance(namespace, labels, annotations)
    if instance is None:
        return None
    return orjson.dumps(
        [
            VERSION,
            namespace,
            instance.dag_id,
            instance.task_id,
            instance.run_id,
            instance.map_index,
            instance.try_number,
            instance.kind,
            tier,
            memory,
        ]
    )
