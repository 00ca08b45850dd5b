"""A dump's objects decoded in a second process while this one folds them in.

Reading a 150,000-pod dump (1.4 GB: msgspec over every byte) and folding its pods into what a
command needs are each about half of `podtier explain --cluster FILE` or `podtier report`.
msgspec holds the GIL, so a thread cannot overlap them; a process can. The child, a fork (it
imports nothing again), runs the very stream this process would have run (`objects()`: the
dump's items, decoded) and sends what was kept of them, as compact JSON, in frames of a run of
one kind. This process decodes each frame with the kind's `many` decoder (msgspec over a few
per cent of the dump's bytes), or parses it when the kind has none (or a frame holds an object
that was parsed whole, not typed), and hands the objects on in file order.

An error the child meets is sent as its message and raised here as what it was: a
`ClusterFileError` names the file, the byte and the item as it would have in this process.
Anything else the child meets ends the stream with a `ClusterFileError` saying so. When the
stream is left early, the child is stopped and waited for.

`forks_for(path)` says when this pays and is safe: a POSIX system with more than one CPU, a
file of at least `FORK_BYTES`, and one thread in this process (a fork of a process with other
threads can deadlock on a lock one of them held).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import signal
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import orjson

from podtier.webhook.headroom.dump import ClusterFileError, ManyDecoder

FORK_BYTES = 16 * 1024 * 1024  # below this, a second process costs more than it saves
FRAME = 256  # objects per frame at most
QUEUED = 64  # frames the child keeps while this process folds in the ones before (~16 MB)
PIPE_BYTES = 1024 * 1024  # the pipe's buffer (Linux: F_SETPIPE_SZ), when the system allows it
_HEADER = struct.Struct("<cI")  # the frame's tag and the size of what follows
_OBJECTS, _ERROR, _DONE = b"O", b"E", b"D"
_ENCODER = msgspec.json.Encoder()

Objects = Iterator[tuple[str, Any]]


def forks_for(path: str | Path) -> bool:
    """Whether reading `path` in a second process pays and is safe (see the docstring)."""
    if not hasattr(os, "fork") or (os.cpu_count() or 1) < 2:
        return False
    if threading.active_count() > 1:
        return False
    try:
        return os.stat(path).st_size >= FORK_BYTES
    except OSError:
        return False  # the reader in this process says what is wrong with it


def forked_objects(
    path: str | Path, objects: Callable[[], Objects], many: Mapping[str, ManyDecoder | None]
) -> Objects:
    """What `objects()` gives of the file at `path`, run in a forked child; `many`: how to
    decode a run of a kind (the decoders `objects` itself used)."""
    read_end, write_end = os.pipe()
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux
    if set_size is not None:
        with contextlib.suppress(OSError):  # else a smaller pipe: the child waits on it more
            fcntl.fcntl(write_end, set_size, PIPE_BYTES)
    pid = os.fork()
    if pid == 0:  # the child: it never returns
        os.close(read_end)
        _send(objects, write_end)
    os.close(write_end)
    done = False
    try:
        with open(read_end, "rb", buffering=1 << 20) as pipe:
            while True:
                tag, payload = _frame(path, pipe)
                if tag == _OBJECTS:
                    kind_bytes, _, array = payload.partition(b"\n")
                    kind = kind_bytes.decode()
                    yield from ((kind, obj) for obj in _decode(array, many.get(kind)))
                elif tag == _ERROR:
                    done = True
                    raise ClusterFileError(payload.decode())
                else:
                    done = True
                    return
    finally:
        if not done:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _frame(path: str | Path, pipe: BinaryIO) -> tuple[bytes, bytes]:
    header = pipe.read(_HEADER.size)
    if len(header) == _HEADER.size:
        tag, size = _HEADER.unpack(header)
        payload = pipe.read(size)
        if len(payload) == size:
            return tag, payload
    raise ClusterFileError(
        f"{path}: the process reading it ended before the file did (killed, or out of memory?)"
    )


def _decode(array: bytes, many: ManyDecoder | None) -> list[Any]:
    if many is not None:
        try:
            return many(array)
        except msgspec.ValidationError:
            pass  # an object of the run was parsed whole: parse them all
    objects: list[Any] = orjson.loads(array)
    return objects


def _send(objects: Callable[[], Objects], fd: int) -> None:
    """The child's work: `objects()` in frames down `fd`, then exit. A thread writes them, so
    that decoding goes on while this process's reader is busy folding in the frames before."""
    frames: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUED)
    failed = threading.Event()

    def write() -> None:
        try:
            with open(fd, "wb", buffering=0) as out:
                while (payload := frames.get()) is not None:
                    out.write(payload)
        except OSError:  # the reader went away (a broken pipe)
            failed.set()
            while frames.get() is not None:
                pass

    def frame(tag: bytes, payload: bytes) -> None:
        frames.put(_HEADER.pack(tag, len(payload)) + payload)

    run_kind, run = "", []

    def flush() -> None:
        if run:
            frame(_OBJECTS, run_kind.encode() + b"\n" + _ENCODER.encode(run))
            run.clear()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        for kind, obj in objects():
            if kind != run_kind or len(run) >= FRAME:
                flush()
                if failed.is_set():
                    break
                run_kind = kind
            run.append(obj)
        flush()
    except ClusterFileError as err:
        flush()  # what came before the error is handed on, as in one process
        frame(_ERROR, str(err).encode())
    except Exception as err:  # noqa: BLE001 - said in the reading process, not lost
        flush()
        frame(_ERROR, f"reading the file failed: {type(err).__name__}: {err}".encode())
    else:
        frame(_DONE, b"")
    finally:
        frames.put(None)
        writer.join()
        os._exit(1 if failed.is_set() else 0)
