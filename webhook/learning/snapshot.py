"""Profiles from a file: the TaskProfiles in `kubectl get nodes,pods,taskprofiles -A -o json`
(the same dump `--cluster FILE` reads headroom from). Read once, never stale; unreadable
objects are left out with a log line, as the live watch leaves them out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from podtier.webhook.headroom.snapshot import read_cluster_objects
from podtier.webhook.learning.profiles import KIND
from podtier.webhook.learning.watch import ProfileStore


def load_profiles_file(path: str | Path) -> ProfileStore:
    """Raises `ClusterFileError` when the file cannot be read."""
    objects, _ = read_cluster_objects(path, (KIND,))
    return profiles_from(objects[KIND], path)


def profiles_from(objects: list[Mapping[str, Any]], path: str | Path) -> ProfileStore:
    """The store of TaskProfile `objects` read from the file at `path`."""
    store = ProfileStore(source=f"file {path}", static=True)
    store.relist(objects)
    return store
