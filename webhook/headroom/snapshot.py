"""Headroom from a file: exactly what `kubectl get nodes,pods -A -o json` (or `-o yaml`) prints.

The file is a `v1` `List` of Nodes and Pods (a `NodeList` or `PodList` works too), read as a
stream (`headroom.dump`): each item (or run of items of a kind) is decoded when it is reached,
keeping the fields read (`headroom.decode`), and folded in, so a 1.5 GB dump of 150,000 pods
is never one tree of Python objects nor one 1.5 GB string. A large file is read and decoded
in a second process while this one folds in what it sends (`headroom.forked`). Its items go
through the same `ClusterHeadroom.relist` path as the live watch's lists, page by page, so a
file and a cluster in the same state give the same decisions. A snapshot never goes stale.

kubectl prints the kinds in the order they are asked for (`nodes,pods`): Nodes first, and the
pods are folded onto them as they come. A file with Nodes after Pods (`kubectl get pods,nodes`)
gives the same picture, on a second read of its pods once every node is known.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from podtier.webhook.headroom.decode import PodFields, pod_decoder, pods_decoder
from podtier.webhook.headroom.dump import (
    Batch,
    ClusterFileError,
    ManyDecoder,
    decode_item,
    dump_items,
)
from podtier.webhook.headroom.forked import forked_objects, forks_for
from podtier.webhook.headroom.state import NODE, POD, ClusterState
from podtier.webhook.headroom.tracker import ClusterHeadroom

__all__ = [
    "NODE",
    "POD",
    "ClusterFileError",
    "cluster_objects",
    "file_pods",
    "load_cluster_file",
    "paged",
    "pod_decoder",
    "read_cluster_file",
    "read_cluster_objects",
]

PAGE = 32  # a file's pods per page handed on (see `paged`)

Decoder = Callable[[bytes], Any]


def cluster_objects(
    path: str | Path,
    decoders: Mapping[str, Decoder],
    many: Mapping[str, ManyDecoder | None] | None = None,
) -> Iterator[tuple[str, Any]]:
    """(kind, object) for each item of the file whose kind has a decoder, in file order, as
    the stream reaches it; other kinds are skipped undecoded. `many`: for some of those kinds,
    what decodes a run of them in one call (`headroom.dump.Batch`), as `decoders` would. A
    large file is read and decoded in a second process while this one takes the objects
    (`headroom.forked`)."""
    many = many or {}
    if forks_for(path):
        return forked_objects(path, lambda: _decoded(path, decoders, many), many)
    return _decoded(path, decoders, many)


def _decoded(
    path: str | Path, decoders: Mapping[str, Decoder], many: Mapping[str, ManyDecoder | None]
) -> Iterator[tuple[str, Any]]:
    for item in dump_items(path, many=many, kinds=decoders.keys()):
        if type(item) is Batch:
            kind = item.kind
            for obj in item.objects:
                yield kind, obj
            continue
        decode = decoders.get(item.kind)
        if decode is not None:
            yield item.kind, decode_item(path, item, decode)


def file_pods(path: str | Path, fields: PodFields) -> Iterator[Any]:
    """The file's pods in file order, keeping `fields`, as the stream reaches them."""
    pods = cluster_objects(path, {POD: pod_decoder(fields)}, {POD: pods_decoder(fields)})
    return (obj for _, obj in pods)


def paged(objects: Iterable[Any], size: int = PAGE) -> Iterator[list[Any]]:
    """`objects` in lists of `size`, the shape `ClusterHeadroom.relist` takes. A file's pods go
    in small pages, so that each is folded in while what was decoded of it is still in the
    CPU's cache: in pages of 500, as a live list gives them, each pod's objects were made, then
    read 500 pods later, then freed, out of cache, and `explain` and `report` on a 150,000-pod
    dump took 1.3-1.4x as long. 32 pods are about what a `headroom.dump.Batch` decodes at once;
    a page of one pod cost ~10% of folding them in (a lock and a generator step each)."""
    page: list[Any] = []
    for obj in objects:
        page.append(obj)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def read_cluster_file(
    path: str | Path, *, fields: PodFields = PodFields.WHOLE
) -> tuple[list[Mapping[str, Any]], Iterator[list[Mapping[str, Any]]]]:
    """The file's Nodes, and its Pods in pages (keeping `fields`), read on as they are taken."""
    objects, pod_pages = read_cluster_objects(path, (NODE,), fields=fields)
    return objects[NODE], pod_pages


def read_cluster_objects(
    path: str | Path, kinds: tuple[str, ...], *, fields: PodFields = PodFields.WHOLE
) -> tuple[dict[str, list[Mapping[str, Any]]], Iterator[list[Mapping[str, Any]]]]:
    """The file's objects of `kinds` (such as Node, TaskProfile: few) by kind, read now; and
    its Pods in pages, read from the file again as the pages are taken (a caller that wants
    only pods and small kinds on one read folds `cluster_objects` instead)."""
    objects: dict[str, list[Mapping[str, Any]]] = {kind: [] for kind in kinds}
    for kind, obj in cluster_objects(path, dict.fromkeys(kinds, orjson.loads)):
        objects[kind].append(obj)

    def pod_pages() -> Iterator[list[Mapping[str, Any]]]:
        yield from paged(file_pods(path, fields))

    return objects, pod_pages()


def load_cluster_file(
    path: str | Path,
    *,
    reservation_ttl: float = 30.0,
    headroom: ClusterHeadroom | None = None,
    others: dict[str, list[Mapping[str, Any]]] | None = None,
) -> ClusterHeadroom:
    """Headroom from the file, read once. `others`: kinds to collect on the same read (such as
    TaskProfile), filled in place."""
    if headroom is None:
        headroom = ClusterHeadroom(
            source=f"file {path}", reservation_ttl=reservation_ttl, static=True
        )
    others = others if others is not None else {}
    decoders: dict[str, Decoder] = dict.fromkeys(others, orjson.loads)
    decoders[NODE] = orjson.loads
    decoders[POD] = pod_decoder(headroom.pod_fields)
    many = {POD: pods_decoder(headroom.pod_fields)}
    stream = cluster_objects(path, decoders, many)
    nodes: list[Mapping[str, Any]] = []
    late_nodes: list[Mapping[str, Any]] = []
    first_pod: list[Mapping[str, Any]] = []
    for kind, obj in stream:  # up to the first pod
        if kind == POD:
            first_pod.append(obj)
            break
        (nodes if kind == NODE else others[kind]).append(obj)
    headroom.relist(NODE, [nodes])

    def pods() -> Iterator[Mapping[str, Any]]:
        yield from first_pod
        for kind, obj in stream:
            if kind == POD:
                yield obj
            else:
                (late_nodes if kind == NODE else others[kind]).append(obj)

    headroom.relist(POD, paged(pods()))
    if late_nodes:  # pods came before some nodes: read the pods again, onto all the nodes
        headroom.relist(POD, [])  # the pod listeners hear them go
        with headroom.lock:  # the picture built afresh, as if the nodes had come first
            headroom.state = ClusterState()
        headroom.relist(NODE, [nodes + late_nodes])
        again = cluster_objects(path, {POD: decoders[POD]}, many)
        headroom.relist(POD, paged(obj for _, obj in again))
    if headroom.skipped:
        more = f" (and {headroom.skipped - 1} more)" if headroom.skipped > 1 else ""
        raise ClusterFileError(f"{path}: {headroom.skip_errors[0]}{more}")
    return headroom
