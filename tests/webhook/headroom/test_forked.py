"""`headroom.forked`: a dump read and decoded in a second process hands on exactly what this
process would have read, in file order; the child's errors come back as the same
`ClusterFileError`; a stream left early or a child that dies leaves no process behind and no
silent loss."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from podtier.webhook.headroom import forked
from podtier.webhook.headroom.decode import PodFields, pods_decoder
from podtier.webhook.headroom.dump import ClusterFileError
from podtier.webhook.headroom.forked import forked_objects, forks_for
from podtier.webhook.headroom.snapshot import POD, _decoded, pod_decoder

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import cluster_gen  # noqa: E402

DECODERS = {POD: pod_decoder(PodFields.LISTENERS), "Node": orjson.loads}
MANY = {POD: pods_decoder(PodFields.LISTENERS)}


def dump(tmp_path: Path, objects: list[dict[str, Any]] | None = None) -> Path:
    path = tmp_path / "dump.json"
    nodes = (2, 2, 1)
    cluster_gen.write_dump(str(path), nodes, iter(objects) if objects is not None else None)
    return path


def plain(value: Any) -> Any:
    """`value` with what a decode kept as its JSON (`msgspec.Raw`) parsed: a frame holding a
    pod parsed whole is parsed whole here, as the readers of those fields take either."""
    if isinstance(value, msgspec.Raw):
        return orjson.loads(bytes(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def in_a_child(path: Path) -> Iterator[tuple[str, Any]]:
    return forked_objects(path, lambda: _decoded(path, DECODERS, MANY), MANY)


def test_the_child_hands_on_what_this_process_reads_in_file_order(tmp_path: Path) -> None:
    odd = cluster_gen.pod_object("worker-00000", "worker", 999, "light")
    odd["spec"] = "not an object"  # parsed whole in the child; its frame is parsed here
    objects = list(cluster_gen.cluster((2, 2, 1)))
    objects.insert(len(objects) - 40, odd)
    path = dump(tmp_path, objects)
    here = list(_decoded(path, DECODERS, MANY))
    there = list(in_a_child(path))
    assert len(there) == len(objects) == 5 + 150 + 1
    assert [kind for kind, _ in there] == ["Node"] * 5 + ["Pod"] * 151
    assert plain(there) == plain(here)
    assert there[-41][1]["spec"] == "not an object"


def test_an_error_in_the_file_is_raised_as_this_process_would(tmp_path: Path) -> None:
    path = dump(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # truncated inside a pod
    with pytest.raises(ClusterFileError) as here:
        list(_decoded(path, DECODERS, MANY))
    got: list[Any] = []
    with pytest.raises(ClusterFileError) as there:
        got.extend(in_a_child(path))
    assert str(there.value) == str(here.value)
    assert "truncated?" in str(there.value)
    assert len(got) > 5  # what came before the error was handed on


def test_an_unexpected_failure_in_the_child_is_said(tmp_path: Path) -> None:
    def broken() -> Iterator[tuple[str, Any]]:
        yield "Pod", {"kind": "Pod"}
        raise RuntimeError("disk on fire")

    with pytest.raises(ClusterFileError, match="reading the file failed: RuntimeError: disk on"):
        list(forked_objects(tmp_path / "dump.json", broken, {}))


def test_a_child_that_dies_is_an_error_not_a_short_stream(tmp_path: Path) -> None:
    def dies() -> Iterator[tuple[str, Any]]:
        yield "Pod", {"kind": "Pod"}
        os.kill(os.getpid(), signal.SIGKILL)
        yield "Pod", {"kind": "Pod"}

    path = tmp_path / "dump.json"
    with pytest.raises(ClusterFileError, match=f"^{path}: the process reading it ended before"):
        list(forked_objects(path, dies, {}))


def test_a_stream_left_early_stops_the_child(tmp_path: Path) -> None:
    path = dump(tmp_path)
    children: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            children.append(pid)
        return pid

    stream = in_a_child(path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(forked.os, "fork", fork)
        first = next(stream)
    assert first[0] == "Node"
    stream.close()
    with pytest.raises(ChildProcessError):  # waited for already: no zombie left
        os.waitpid(children[0], os.WNOHANG)


def test_forks_only_for_a_large_file_in_a_process_without_other_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = dump(tmp_path)
    threads = 1
    monkeypatch.setattr(forked.threading, "active_count", lambda: threads)
    monkeypatch.setattr(forked, "FORK_BYTES", path.stat().st_size)
    assert forks_for(path)
    assert not forks_for(tmp_path / "missing.json")  # this process's reader says why
    monkeypatch.setattr(forked, "FORK_BYTES", path.stat().st_size + 1)
    assert not forks_for(path)
    monkeypatch.setattr(forked, "FORK_BYTES", 0)
    threads = 2  # a fork could deadlock on a lock the other thread holds
    assert not forks_for(path)
    monkeypatch.setattr(forked.os, "cpu_count", lambda: 1)
    threads = 1
    assert not forks_for(path)
