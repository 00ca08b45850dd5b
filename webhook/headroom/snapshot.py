"""Headroom from a file: exactly what `kubectl get nodes,pods -A -o json` (or `-o yaml`) prints.

The file is a `v1` `List` of Nodes and Pods (a `NodeList` or `PodList` works too). Its items go
through the same `ClusterHeadroom.relist` path as the live watch's lists, so a file and a
cluster in the same state give the same decisions. A snapshot never goes stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import yaml

from webhook.headroom.state import NODE, POD
from webhook.headroom.tracker import ClusterHeadroom

_LIST_KINDS = {"List", "NodeList", "PodList"}


class ClusterFileError(ValueError):
    """The cluster file cannot be used; the message names the file, the field and the value."""


def read_cluster_file(path: str | Path) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The file's Nodes and Pods, in file order."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ClusterFileError(f"{path}: cannot read the cluster file: {err.strerror}") from None
    document = _parse(path, data)
    if not isinstance(document, Mapping):
        raise ClusterFileError(
            f"{path}: expected a v1 List (kubectl get nodes,pods -A -o json), "
            f"got a {type(document).__name__}"
        )
    kind = document.get("kind")
    if kind not in _LIST_KINDS:
        raise ClusterFileError(
            f'{path}: kind: "{kind}" is not a List (use kubectl get nodes,pods -A -o json)'
        )
    items = document.get("items")
    if not isinstance(items, list):
        raise ClusterFileError(f"{path}: items: expected a list, got {type(items).__name__}")
    nodes: list[Mapping[str, Any]] = []
    pods: list[Mapping[str, Any]] = []
    for i, item in enumerate(items):
        item_kind = item.get("kind") if isinstance(item, Mapping) else None
        if item_kind is None and isinstance(item, Mapping) and kind in ("NodeList", "PodList"):
            item_kind = kind[:-4]
        if item_kind == NODE:
            nodes.append(item)
        elif item_kind == POD:
            pods.append(item)
        elif not isinstance(item, Mapping):
            raise ClusterFileError(f"{path}: items[{i}]: expected an object")
        # other kinds (kubectl get all, events...) are not capacity and are ignored
    return nodes, pods


def load_cluster_file(
    path: str | Path, *, reservation_ttl: float = 30.0, headroom: ClusterHeadroom | None = None
) -> ClusterHeadroom:
    nodes, pods = read_cluster_file(path)
    if headroom is None:
        headroom = ClusterHeadroom(
            source=f"file {path}", reservation_ttl=reservation_ttl, static=True
        )
    headroom.relist(NODE, [nodes])
    headroom.relist(POD, [pods])
    if headroom.skipped:
        more = f" (and {headroom.skipped - 1} more)" if headroom.skipped > 1 else ""
        raise ClusterFileError(f"{path}: {headroom.skip_errors[0]}{more}")
    return headroom


def _parse(path: Path, data: bytes) -> Any:
    if data.lstrip()[:1] in (b"{", b"["):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as err:
            raise ClusterFileError(f"{path}: not valid JSON: {err}") from None
    try:
        return yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        raise ClusterFileError(f"{path}: not valid YAML or JSON: {err}") from None
