"""`headroom.dump`: a `kubectl get -o json` dump read as a stream of items, in any JSON layout
and across any chunk boundary, and the errors a broken dump gives (naming the byte and the
item)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import orjson
import pytest
import yaml

from podtier.webhook.headroom.dump import (
    MAX_ITEM,
    Batch,
    ClusterFileError,
    Item,
    decode_item,
    dump_items,
    typed_many,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import cluster_gen  # noqa: E402

OBJECTS: list[dict[str, Any]] = [
    cluster_gen.node_object("worker-00000", "worker", 0),
    cluster_gen.pod_object("worker-00000", "worker", 1, "light"),
    # braces, brackets, quotes, escapes and a newline escape inside strings
    {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": 'a "}\n{" ]['}, "data": {}},
    {"apiVersion": "v1", "metadata": {"name": "no-kind"}},
    {},
    cluster_gen.pod_object("worker-00000", "worker", 2, "medium", "Succeeded"),
]
KUBECTL_LIST = {"apiVersion": "v1", "items": OBJECTS, "kind": "List", "metadata": {}}
API_SERVER_LIST = {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": OBJECTS}


def kubectl_layout(_: Any, objects: list[dict[str, Any]] = OBJECTS) -> bytes:
    """Exactly kubectl's bytes: 4-space indent, sorted keys, items at 8 spaces."""
    out = b'{\n    "apiVersion": "v1",\n    "items": [\n'
    out += b",\n".join(cluster_gen.kubectl_item(o) for o in objects)
    return out + b'\n    ],\n    "kind": "List",\n    "metadata": {}\n}\n'


LAYOUTS: dict[str, Callable[[Any], bytes]] = {
    "kubectl": kubectl_layout,
    "json-sorted-indent-4": lambda doc: json.dumps(doc, indent=4, sort_keys=True).encode(),
    "json-indent-2": lambda doc: json.dumps(doc, indent=2).encode(),
    "json-indent-0": lambda doc: json.dumps(doc, indent=0).encode(),
    "json-tabs-crlf": lambda doc: json.dumps(doc, indent="\t").replace("\n", "\r\n").encode(),
    "json-one-line": lambda doc: json.dumps(doc).encode(),
    "orjson-compact": orjson.dumps,
    "yaml": lambda doc: yaml.safe_dump(doc).encode(),
}


@pytest.mark.parametrize("layout", [pytest.param(f, id=name) for name, f in LAYOUTS.items()])
@pytest.mark.parametrize("document", [KUBECTL_LIST, API_SERVER_LIST], ids=["sorted", "server"])
@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 22], ids=lambda c: f"chunk-{c}")
def test_every_item_in_order_whatever_the_layout_and_the_chunks(
    tmp_path: Path, layout: Callable[[Any], bytes], document: dict[str, Any], chunk: int
) -> None:
    path = tmp_path / "dump.json"
    path.write_bytes(layout(document))
    items = list(dump_items(path, chunk=chunk))
    assert [orjson.loads(i.raw) for i in items] == OBJECTS
    assert [i.kind for i in items] == ["Node", "Pod", "ConfigMap", "", "", "Pod"]
    assert [i.index for i in items] == list(range(len(OBJECTS)))


class _Named(TypedDict, total=False):
    kind: Any
    metadata: dict[str, Any]


def _named(obj: Any) -> dict[str, Any]:
    """What `typed_many(_Named)` keeps of an object."""
    return {k: obj[k] for k in ("kind", "metadata") if k in obj}


def _pod(n: int) -> dict[str, Any]:
    return cluster_gen.pod_object("worker-00000", "worker", n, "light")


# Runs of pods, broken by other kinds, a kind-less item and a pod whose `metadata` does not fit
# the typed fields (decoded alone, as the whole object it is).
RUNS: list[dict[str, Any]] = [
    cluster_gen.node_object("worker-00000", "worker", 0),
    *(_pod(n) for n in range(1, 9)),
    {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "between"}, "data": {}},
    *(_pod(n) for n in range(9, 13)),
    {"apiVersion": "v1", "kind": "Pod", "metadata": "not an object"},
    *(_pod(n) for n in range(13, 20)),
    {"apiVersion": "v1", "metadata": {"name": "no-kind"}},
    *(_pod(n) for n in range(20, 23)),
]


def _handed_out(path: Path, **options: Any) -> tuple[list[tuple[int, str, Any]], int]:
    """(index, kind, what is kept) of each item handed out, decoding an `Item`'s JSON as the
    batch would; and how many `Batch`es came."""
    out: list[tuple[int, str, Any]] = []
    batches = 0
    for entry in dump_items(path, many={"Pod": typed_many(_Named)}, **options):
        if isinstance(entry, Batch):
            batches += 1
            out += [(entry.index + n, entry.kind, o) for n, o in enumerate(entry.objects)]
        else:
            assert isinstance(entry, Item)
            out.append((entry.index, entry.kind, _named(decode_item(path, entry, orjson.loads))))
    return out, batches


# The layouts whose items are lines indented under the List's (batches need their closing line).
INDENTED = {"kubectl", "json-sorted-indent-4", "json-indent-2"}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("batch", [1, 3000, 1 << 18], ids=lambda b: f"batch-{b}")
@pytest.mark.parametrize("chunk", [7, 4096, 1 << 22], ids=lambda c: f"chunk-{c}")
def test_runs_of_a_kind_come_decoded_as_each_alone_would(
    tmp_path: Path, layout: str, batch: int, chunk: int
) -> None:
    path = tmp_path / "dump.json"
    document = {"apiVersion": "v1", "items": RUNS, "kind": "List", "metadata": {}}
    path.write_bytes(
        kubectl_layout(None, RUNS) if layout == "kubectl" else LAYOUTS[layout](document)
    )
    out, batches = _handed_out(path, chunk=chunk, batch=batch)
    assert out == [(n, o.get("kind", ""), _named(o)) for n, o in enumerate(RUNS)]
    if layout in INDENTED and chunk > 4096 and batch > 3000:  # the runs whole at hand
        assert batches == 4  # pods 1-8, 10-13, 15-21 and 23-25; the odd one alone
    elif batch > 3000 and chunk > 4096:
        assert batches == 0
    if batch == 1:  # no pod is as short as that
        assert batches == 0


@pytest.mark.parametrize("chunk", [4096, 1 << 22], ids=lambda c: f"chunk-{c}")
def test_only_the_kinds_asked_for_are_handed_out(tmp_path: Path, chunk: int) -> None:
    path = tmp_path / "dump.json"
    path.write_bytes(kubectl_layout(None, RUNS))
    handed = list(dump_items(path, chunk=chunk, kinds={"Node", "ConfigMap"}))
    assert [(i.index, i.kind) for i in handed] == [(0, "Node"), (9, "ConfigMap")]
    assert all(isinstance(i, Item) for i in handed)


def test_invalid_json_in_a_run_is_named_as_in_any_item(tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    data = kubectl_layout(None, RUNS)
    name = b'"name": "dag-4-task-4-0000004"'
    path.write_bytes(data.replace(name, b"name: 4", 1))
    fourth = next(i for i in dump_items(path) if i.index == 4)  # cut by its lines alone
    with pytest.raises(ClusterFileError) as alone:
        decode_item(path, fourth, orjson.loads)
    with pytest.raises(ClusterFileError) as batched:
        _handed_out(path)
    assert str(batched.value).startswith(f"{path}: items[4] (byte {fourth.offset}): not valid")
    assert str(batched.value) == str(alone.value)


def test_offsets_are_where_each_item_opens(tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    data = kubectl_layout(None)
    path.write_bytes(data)
    for item in dump_items(path, chunk=64):
        assert data[item.offset : item.offset + len(item.raw)] == item.raw


@pytest.mark.parametrize("list_kind", ["PodList", "NodeList"])
def test_items_of_a_typed_list_without_their_kind_take_the_lists(
    tmp_path: Path, list_kind: str
) -> None:
    path = tmp_path / "dump.json"
    path.write_text(json.dumps({"kind": list_kind, "items": [{"metadata": {"name": "a"}}]}))
    assert [i.kind for i in dump_items(path)] == [list_kind[:-4]]


def test_an_empty_list(tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    path.write_bytes(b'{\n    "apiVersion": "v1",\n    "items": [],\n    "kind": "List"\n}\n')
    assert list(dump_items(path)) == []


def truncations() -> list[Any]:
    data = kubectl_layout(None)
    node_end = data.index(b"\n        },") + 10
    return [
        pytest.param(data[:-30], "the file ends at byte", id="in-the-trailer"),
        pytest.param(data[: len(data) // 2], "inside items[", id="inside-an-item"),
        pytest.param(data[:node_end], "truncated?", id="after-an-item"),
        pytest.param(data[:node_end].replace(b"\n", b""), "truncated?", id="one-line"),
        pytest.param(b'{"apiVersion": "v1", "items": [', "truncated?", id="after-the-bracket"),
        pytest.param(b'{"apiVersion": "v1"', "truncated?", id="in-the-head"),
    ]


@pytest.mark.parametrize(("content", "message"), truncations())
def test_a_truncated_dump_is_named_with_the_byte(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "dump.json"
    path.write_bytes(content)
    with pytest.raises(ClusterFileError, match="byte [0-9]+") as err:
        list(dump_items(path, chunk=1000))
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            b'{"kind": "List", "items": [{"kind": "Pod"},\n 3]}',
            "items[1] (byte 45): expected an object, got '3'",
            id="a-number-item",
        ),
        pytest.param(
            b'{"kind": "List", "items": [{}, "Pod"]}',
            "items[1] (byte 31): expected an object, got '\"'",
            id="a-string-item",
        ),
        pytest.param(
            b'{"kind": "List", "items": [{} {}]}',
            'byte 30: expected a "," or "]" after items[0]',
            id="no-comma",
        ),
        pytest.param(b'{"kind": "Pod", "items": []}', 'kind: "Pod" is not a List', id="a-pod"),
        pytest.param(
            b'{"apiVersion": "v1", "items": [], "kind": "ConfigMapList"}',
            'kind: "ConfigMapList" is not a List',
            id="wrong-list-kind-after-items",
        ),
        pytest.param(
            b'{"kind": "List", "items": {}}', "items: expected a list, got dict", id="map"
        ),
        pytest.param(b'{"kind": "List"}', "items: expected a list, got NoneType", id="no-items"),
        pytest.param(b'[{"kind": "Pod"}]', "expected a v1 List", id="a-json-array"),
        pytest.param(b'{"kind": "List", "items": []} {}', "byte 30: more after", id="trailing"),
        pytest.param(b"{kind: List}", "not valid JSON: byte 1", id="not-json"),
        pytest.param(b"", "expected a v1 List", id="empty"),
    ],
)
def test_a_broken_dump_is_named_with_the_position(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "dump.json"
    path.write_bytes(content)
    with pytest.raises(ClusterFileError) as err:
        list(dump_items(path, chunk=8))
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_an_item_larger_than_any_object_is_refused_not_read(tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    path.write_bytes(b'{"kind": "List", "items": [{"a": "' + b"x" * 5000 + b'"}]}')
    with pytest.raises(ClusterFileError, match=r"items\[0\] \(byte 27\): longer than 4,096 bytes"):
        list(dump_items(path, chunk=1000, max_item=4096))


def test_a_2_gb_single_line_is_refused_at_the_item_limit(tmp_path: Path) -> None:
    """A 2 GiB line (sparse: no disk used) holding one item: refused once MAX_ITEM is read,
    without reading on to its end."""
    path = tmp_path / "dump.json"
    with path.open("wb") as file:
        file.write(b'{"kind": "List", "items": [{"data": "')
        file.seek(2 * 1024**3)
        file.write(b'"}]}')
    with pytest.raises(ClusterFileError) as err:
        next(dump_items(path))
    assert f"items[0] (byte 27): longer than {MAX_ITEM:,} bytes" in str(err.value)


def test_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ClusterFileError, match="cannot read the cluster file: No such file"):
        list(dump_items(tmp_path / "missing.json"))
