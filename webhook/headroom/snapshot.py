"""Headroom from a file: exactly what `kubectl get nodes,pods -A -o json` (or `-o yaml`) prints.

The file is a `v1` `List` of Nodes and Pods (a `NodeList` or `PodList` works too). Its items go
through the same `ClusterHeadroom.relist` path as the live watch's lists, so a file and a
cluster in the same state give the same decisions. A snapshot never goes stale.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import yaml

from podtier.webhook.headroom.decode import PodFields, decode_pod
from podtier.webhook.headroom.state import NODE, POD
from podtier.webhook.headroom.tracker import ClusterHeadroom, collector_paused

_LIST_KINDS = {"List", "NodeList", "PodList"}


class ClusterFileError(ValueError):
    """The cluster file cannot be used; the message names the file, the field and the value."""


def read_cluster_file(
    path: str | Path, *, fields: PodFields = PodFields.WHOLE
) -> tuple[list[Mapping[str, Any]], Iterator[list[Mapping[str, Any]]]]:
    """The file's Nodes, and its Pods in pages. In kubectl's own layout the file is mapped, not
    read, and each pod is decoded when its page is taken, so a 1.4 GB dump never becomes one
    tree of Python objects (nor one 1.4 GB bytes object). `fields`: how much of each pod is kept
    (`headroom.decode`)."""
    objects, pod_pages = read_cluster_objects(path, (NODE,), fields=fields)
    return objects[NODE], pod_pages


def read_cluster_objects(
    path: str | Path, kinds: tuple[str, ...], *, fields: PodFields = PodFields.WHOLE
) -> tuple[dict[str, list[Mapping[str, Any]]], Iterator[list[Mapping[str, Any]]]]:
    """The file's objects of `kinds` (such as Node, TaskProfile, PodMetrics) by kind, and its
    Pods in pages, as `read_cluster_file` reads them."""
    path = Path(path)
    try:
        data = _map(path)
    except OSError as err:
        raise ClusterFileError(f"{path}: cannot read the cluster file: {err.strerror}") from None
    split = _split_kubectl_json(data)
    if split is not None:
        head, pieces = split
        _check_list(path, head, [])
        return _by_kind(path, head, pieces, kinds, fields)
    with collector_paused():
        document = _parse(path, data[:])
    items = _check_list(path, document, None)
    return _by_kind(path, document, items, kinds, fields)


def _map(path: Path) -> bytes | mmap.mmap:
    """The file's bytes, mapped read-only (an empty file: b"")."""
    with path.open("rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            return b""
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(mmap, "MADV_SEQUENTIAL"):
        mapped.madvise(mmap.MADV_SEQUENTIAL)  # read once, front to back
    return mapped


def _check_list(path: Path, document: Any, items: Any) -> list[Any]:
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
    items = document.get("items") if items is None else items
    if not isinstance(items, list):
        raise ClusterFileError(f"{path}: items: expected a list, got {type(items).__name__}")
    return items


def _by_kind(
    path: Path,
    document: Mapping[str, Any],
    items: list[Any],
    kinds: tuple[str, ...],
    fields: PodFields,
) -> tuple[dict[str, list[Mapping[str, Any]]], Iterator[list[Mapping[str, Any]]]]:
    """Objects of `kinds` now; pods as pages. `items` holds parsed objects or raw kubectl item
    bytes."""
    list_kind = document.get("kind")
    default = list_kind[:-4] if list_kind in ("NodeList", "PodList") else None
    objects: dict[str, list[Mapping[str, Any]]] = {kind: [] for kind in kinds}
    pods: list[Any] = []
    for i, item in enumerate(items):
        if isinstance(item, _Piece):
            if item.kind == POD:
                pods.append(item.raw)  # parsed later, a page at a time
                continue
            if item.kind and item.kind not in objects:
                continue  # a kind not asked for, seen in its "kind" line: not parsed
            item = _loads(path, i, item.raw, PodFields.WHOLE)
        if not isinstance(item, Mapping):
            raise ClusterFileError(f"{path}: items[{i}]: expected an object")
        kind = item.get("kind") or default
        if kind == POD:
            pods.append(item)
        elif kind in objects:
            objects[kind].append(item)
        # other kinds (kubectl get all, events...) are not asked for and are ignored

    def pod_pages() -> Iterator[list[Mapping[str, Any]]]:
        for at in range(0, len(pods), _PAGE):
            page = pods[at : at + _PAGE]
            yield [
                _loads(path, at + j, p, fields) if isinstance(p, memoryview) else p
                for j, p in enumerate(page)
            ]
            pods[at : at + _PAGE] = [None] * len(page)  # free as we go

    return objects, pod_pages()


# kubectl prints JSON indented by 4 spaces with sorted keys: each List item opens and closes
# on a line of its own at 8 spaces, everything inside is indented deeper, and JSON strings
# cannot hold a raw newline; so items can be cut apart without parsing the whole document.
_ITEMS_OPEN = b'\n    "items": ['
_ITEMS_CLOSE = b"\n    ]"
_ITEM_SPLIT = b"\n        },"
_KIND_MARK = b'\n            "kind": "'
_PAGE = 500


def _split_kubectl_json(
    data: bytes | mmap.mmap,
) -> tuple[Mapping[str, Any], list[Any]] | None:
    """The List without its items, and each item as a zero-copy slice of `data`; None when
    `data` is not in kubectl's layout."""
    opened = data.find(_ITEMS_OPEN)
    if data[:1] != b"{" or opened < 0:
        return None
    body_start = opened + len(_ITEMS_OPEN)
    closed = data.rfind(_ITEMS_CLOSE)
    if closed < body_start:
        return None
    try:
        head = orjson.loads(data[:body_start] + data[closed + len(_ITEMS_CLOSE) - 1 :])
    except orjson.JSONDecodeError:
        return None
    view = memoryview(data)
    items: list[Any] = []
    at = body_start
    if data.find(b"{", at, closed) < 0:
        return head, items
    end_of_item = len(_ITEM_SPLIT) - 1  # the separator starts with the item's closing brace
    while True:
        cut = data.find(_ITEM_SPLIT, at, closed)
        if cut < 0:
            items.append(_Piece(view[at:closed], _kind(data, at)))
            return head, items
        items.append(_Piece(view[at : cut + end_of_item], _kind(data, at)))
        at = cut + len(_ITEM_SPLIT)


def _kind(data: bytes | mmap.mmap, at: int) -> str:
    """The kind an item at `at` declares on its own line (sorted keys put it near the top:
    after apiVersion); "" when it is not there."""
    mark = data.find(_KIND_MARK, at, at + 200)
    if mark < 0:
        return ""
    start = mark + len(_KIND_MARK)
    end = data.find(b'"', start, start + 100)
    return data[start:end].decode("ascii", "replace") if end > 0 else ""


class _Piece(NamedTuple):
    raw: memoryview
    kind: str  # from its "kind" line; "" when not found (then parsed to find out)


def _loads(path: Path, index: int, raw: bytes | memoryview, fields: PodFields) -> Any:
    try:
        return decode_pod(raw, fields)
    except orjson.JSONDecodeError as err:
        raise ClusterFileError(f"{path}: items[{index}]: not valid JSON: {err}") from None


def load_cluster_file(
    path: str | Path,
    *,
    reservation_ttl: float = 30.0,
    headroom: ClusterHeadroom | None = None,
    others: dict[str, list[Mapping[str, Any]]] | None = None,
) -> ClusterHeadroom:
    """Headroom from the file. `others`: kinds to collect on the same read (such as
    TaskProfile), filled in place, so a command needing them reads a 1.4 GB dump once."""
    if headroom is None:
        headroom = ClusterHeadroom(
            source=f"file {path}", reservation_ttl=reservation_ttl, static=True
        )
    others = others if others is not None else {}
    objects, pod_pages = read_cluster_objects(path, (NODE, *others), fields=headroom.pod_fields)
    for kind, found in others.items():
        found.extend(objects[kind])
    headroom.relist(NODE, [objects[NODE]])
    headroom.relist(POD, pod_pages)
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
