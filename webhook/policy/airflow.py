"""Matching a rule's `dagId`/`taskId` glob against a pod's Airflow identity.

Airflow writes the raw identity into annotations on KubernetesExecutor pods, and into labels
on every pod; KubernetesPodOperator pods carry the labels only. A label value is what
Airflow's `make_safe_label_value` made of the raw value: characters a label may not hold are
dropped, and a value that changed or is longer than 63 characters is cut to 53 characters
and gets `-` and 9 hex digits of its MD5 appended. So, for an identity read from a label:

- the glob is matched against the label value as it is (`sales_*` still matches a long
  `sales_...-1a2b3c4d5` value, since the start is kept);
- an exact name (no glob characters) also matches when Airflow would have written it as this
  label value (a long or unsafe `dag_id` is recognised through its hash).

A glob that needs the end of a cut value (`*_daily`) cannot see it: such pods need the
annotation (or a label selector) to be matched.
"""

from __future__ import annotations

import hashlib
import re
from fnmatch import fnmatchcase

from podtier.webhook.core.pod import PodView

MAX_LABEL_LEN = 63
_UNSAFE = re.compile(r"^[^a-z0-9A-Z]*|[^a-zA-Z0-9_\-\.]|[^a-z0-9A-Z]*$")
_GLOB_CHARS = frozenset("*?[")


def airflow_label_value(value: str) -> str:
    """What Airflow's `make_safe_label_value` writes into a label for `value`."""
    safe = _UNSAFE.sub("", value)
    if len(safe) > MAX_LABEL_LEN or safe != value:
        digest = hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()[:9]
        safe = safe[: MAX_LABEL_LEN - len(digest) - 1] + "-" + digest
    return safe


def identity_matches(pod: PodView, key: str, pattern: str) -> bool:
    """Whether the pod's Airflow `key` (dag_id, task_id) matches `pattern`."""
    raw = pod.annotations.get(key)
    if raw is not None:
        return fnmatchcase(raw, pattern)
    label = pod.labels.get(key)
    if label is None:
        return False
    if fnmatchcase(label, pattern):
        return True
    return not (_GLOB_CHARS & set(pattern)) and airflow_label_value(pattern) == label
