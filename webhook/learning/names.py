"""TaskProfile object names: valid for any dag_id and task_id, and collision-free.

    <readable prefix of dag_id and task_id>-<10 hex digits of sha256(namespace/dag/task)>

The prefix is the ids lowercased, every run of other characters than a-z and 0-9 made one
`-`, cut so the name stays within 63 characters (a DNS label, as kubectl shows it). The hash
is of the task's key, its ids in label form (`core.profile.task_key`): the same task gets the
same name whether a pod carried the raw ids (annotations) or only the cut labels, and two tasks
whose prefixes agree differ in the hash.
"""

from __future__ import annotations

import hashlib
import re

from podtier.webhook.core.profile import TaskKey

MAX_NAME = 63
HASH_CHARS = 10
_OTHER = re.compile(r"[^a-z0-9]+")


def profile_name(key: TaskKey) -> str:
    digest = hashlib.sha256(f"{key.namespace}/{key.dag}/{key.task}".encode()).hexdigest()
    readable = _OTHER.sub("-", f"{key.dag}-{key.task}".lower()).strip("-")
    prefix = readable[: MAX_NAME - HASH_CHARS - 1].rstrip("-")
    return f"{prefix}-{digest[:HASH_CHARS]}" if prefix else f"task-{digest[:HASH_CHARS]}"
