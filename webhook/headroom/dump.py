"""A `kubectl get ... -o json` dump read as a stream of items, never as one document.

    for item in dump_items(path):          # Item(index, offset, kind, raw): raw is the item's JSON
        if item.kind == "Pod":
            pod = decode_item(path, item, decode)   # only the fields the caller reads

The file is read in chunks of `CHUNK` bytes and cut into the items of its `v1` `List` (or
`NodeList`, `PodList`) one at a time, so what is held is one chunk and one item, whatever the
file's size. Each item is handed out as bytes: the caller decodes the fields it reads
(msgspec, `headroom.decode`) and folds them into what it needs, as the live lists' pages are.

How an item is cut:
- pretty-printed (kubectl's 4-space layout, or any indent): an item that opens with `{` and a
  newline at some indent ends at the first line that is that indent and `}`, since nested lines
  are indented deeper and JSON strings hold no raw newline: one `bytes.find` per item;
- any other layout (one line, `json.dumps` without indent): a small scanner counts brackets
  outside strings.
An item's `kind` is read from its first keys when it is there (kubectl's sorted keys put it
after `apiVersion`), else by decoding `kind` alone; an item without one takes the kind of a
`NodeList` or `PodList` around it.

Errors (`ClusterFileError`) name the file, the byte offset and the item: a truncated file, an
item that is not an object, an item over `MAX_ITEM` bytes (no Kubernetes object is: etcd keeps
at most 1.5 MB, so a 2 GB line is refused at 64 MiB, not read), a document that is not a List.
A YAML dump (`kubectl get -o yaml`) is the one thing parsed whole, then handed out the same way.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, TypeVar

import msgspec
import orjson
import yaml

CHUNK = 4 * 1024 * 1024
MAX_ITEM = 64 * 1024 * 1024
LIST_KINDS = {"List", "NodeList", "PodList"}
HINT = "kubectl get nodes,pods -A -o json"

_NON_SPACE = re.compile(rb"[^ \t\r\n]")
# Up to the next bracket, over whole strings: one step per bracket, not per string.
_TO_BRACKET = re.compile(rb'(?:[^"\[\]{}]++|"(?:[^"\\]++|\\.)*+")*+', re.S)
_STRING_BODY = re.compile(rb'(?:[^"\\]++|\\.)*+', re.S)  # up to a closing quote
# The kind among an item's first keys: `{"kind": "Pod"` or `{"apiVersion": "v1", "kind": "Pod"`.
_FIRST_KIND = re.compile(rb'\{\s*(?:"apiVersion"\s*:\s*"[^"\\]*"\s*,\s*)?"kind"\s*:\s*"([^"\\]*)"')
_OPENING = 16  # bytes of an item's opening that the next item of its kind repeats
_SCALAR_END = re.compile(rb"[,}\]\s]")


class _Kind(msgspec.Struct):
    kind: Any = None


_KIND_DECODER = msgspec.json.Decoder(_Kind)
T = TypeVar("T")


class ClusterFileError(ValueError):
    """The cluster file cannot be used; the message names the file, the position or the field,
    and the value."""


class Item(NamedTuple):
    index: int  # in the List's items
    offset: int  # the byte of the file where the item opens
    kind: str  # "" when the item says none
    raw: bytes  # the item's JSON

    def where(self, path: str | Path) -> str:
        return f"{path}: items[{self.index}] (byte {self.offset})"


def decode_item(path: str | Path, item: Item, decode: Callable[[bytes], T]) -> T:
    """`decode(item.raw)`; invalid JSON is a `ClusterFileError` naming the item's place."""
    try:
        return decode(item.raw)
    except (orjson.JSONDecodeError, msgspec.DecodeError) as err:
        raise ClusterFileError(f"{item.where(path)}: not valid JSON: {err}") from None


def dump_items(path: str | Path, *, chunk: int = CHUNK, max_item: int = MAX_ITEM) -> Iterator[Item]:
    """The dump's items in file order (see the module's docstring)."""
    path = Path(path)
    try:
        file = path.open("rb")
    except OSError as err:
        raise ClusterFileError(f"{path}: cannot read the cluster file: {err.strerror}") from None
    with file:
        reader = _Reader(path, file, chunk, max_item)
        first = reader.next_byte(0)
        if first == b"{":
            yield from reader.list_items()
            return
        if first == b"[":
            raise ClusterFileError(f"{path}: expected a v1 List ({HINT}), got a list")
        file.seek(0)
        data = file.read()
    yield from _yaml_items(path, data)


class _Reader:
    """The file's bytes from `base` on, read a chunk at a time; positions are the file's."""

    def __init__(self, path: Path, file: BinaryIO, chunk: int, max_item: int) -> None:
        self.path = path
        self.file = file
        self.chunk = chunk
        self.max_item = max_item
        # The bytes at hand, from file position `base` on: one buffer, read into in place
        # (a fresh 4 MB bytes object per chunk, and joining it to the rest, cost a third of
        # the reading in page faults and copies).
        self.data = bytearray()
        self.base = 0
        self.eof = False
        self.separator = b""  # between two items, when they are pretty-printed

    def more(self, keep_from: int) -> bool:
        """Forget the bytes before `keep_from`, read one more chunk; False at the end."""
        if self.eof:
            return False
        drop = max(0, keep_from - self.base)
        del self.data[:drop]  # from the front: CPython moves the start, copies nothing
        self.base += drop
        size = len(self.data)
        self.data.extend(_zeros(self.chunk))
        with memoryview(self.data) as view:
            got = self.file.readinto(view[size:]) or 0
        del self.data[size + got :]
        if not got:
            self.eof = True
            return False
        return True

    def truncated(self, at: int, what: str) -> ClusterFileError:
        return ClusterFileError(
            f"{self.path}: the file ends at byte {self.base + len(self.data)} {what} "
            f"(opened at byte {at}): truncated?"
        )

    def too_long(self, at: int, what: str) -> ClusterFileError:
        return ClusterFileError(
            f"{self.path}: {what} (byte {at}): longer than {self.max_item:,} bytes, which no "
            "Kubernetes object is"
        )

    def next_byte(self, at: int) -> bytes:
        """The first byte at or after `at` that is not white space (b"" at the end); `self.pos`
        is where it is."""
        while True:
            found = _NON_SPACE.search(self.data, max(0, at - self.base))
            if found is not None:
                self.pos = self.base + found.start()
                return bytes(self.data[found.start() : found.start() + 1])
            at = self.base + len(self.data)
            if not self.more(at):
                self.pos = at
                return b""

    def value_end(self, at: int, what: str) -> int:
        """Where the JSON value opening at `at` ends (just after it): an object or array by
        counting brackets outside strings, a string to its closing quote, anything else to the
        next `,` `}` or `]`."""
        opener = self.data[at - self.base : at - self.base + 1]
        if opener not in (b"{", b"[", b'"'):
            while True:
                scalar = _SCALAR_END.search(self.data, at - self.base)
                if scalar is not None:
                    return self.base + scalar.start()
                if not self.more(at):
                    raise self.truncated(at, f"inside {what}")
        scan = _Scan(at + 1, 0 if opener == b'"' else 1, opener == b'"')
        while True:
            end = scan.run(self.data, self.base)
            if end is not None:
                return end
            if self.base + len(self.data) - at > self.max_item:
                raise self.too_long(at, what)
            if not self.more(at):
                raise self.truncated(at, f"inside {what}")

    def item_end(self, at: int, index: int) -> int:
        """Where the item opening at `at` ends: by its closing line when it is pretty-printed
        (see the module's docstring), else by `value_end`."""
        local = at - self.base
        pretty = self.data[local + 1 : local + 2] == b"\n"
        line = self.data.rfind(b"\n", max(0, local - 256), local) if pretty else -1
        indent = bytes(self.data[line + 1 : local]) if line >= 0 else b""
        if not indent or indent.strip(b" \t"):
            self.separator = b""
            return self.like_the_next(at) or self.value_end(at, f"items[{index}]")
        self.separator = b",\n" + indent + b"{"
        closing = _closing_line(indent)  # a literal regex: sre finds it ~3x faster than find
        searched = at
        while True:
            found = closing.search(self.data, searched - self.base)
            if found is not None:
                return self.base + found.end()
            if self.base + len(self.data) - at > self.max_item:
                raise self.too_long(at, f"items[{index}]")
            searched = max(at, self.base + len(self.data) - len(indent) - 2)
            if not self.more(at):
                raise self.truncated(at, f"inside items[{index}]")

    def like_the_next(self, at: int) -> int | None:
        """Where a one-line item opening at `at` ends when the next item opens as it does
        (items of a kind do: `{"apiVersion":"v1","kind":"Pod"`): just before the first
        `,{"apiVersion":"v` found further on in the bytes at hand, if what lies between is one
        whole JSON value (msgspec checks it, at C speed); else None."""
        local = at - self.base
        opening = bytes(self.data[local : local + _OPENING])
        if len(opening) < _OPENING:
            return None
        found = _literal(opening).search(self.data, local + 1)
        if found is None:
            return None
        end = found.start()
        data = self.data
        while data[end - 1] in b" \t\r\n":
            end -= 1
        if data[end - 1] != 0x2C:  # ,
            return None
        end -= 1
        while data[end - 1] in b" \t\r\n":
            end -= 1
        with memoryview(self.data) as view:
            try:
                _KIND_DECODER.decode(view[local:end])
            except msgspec.DecodeError:
                return None  # the opening seen inside the item, or several items: scan it
        return self.base + end

    def piece(self, start: int, end: int) -> bytes:
        with memoryview(self.data) as view:
            return view[start - self.base : end - self.base].tobytes()

    def list_items(self) -> Iterator[Item]:
        """The top-level object's keys in turn: `items` streamed, the others (apiVersion,
        kind, metadata: small) parsed; the List's kind checked as soon as it is read."""
        path = self.path
        head: dict[str, Any] = {}
        saw_items = False
        at = self.pos + 1
        while True:
            char = self.next_byte(at)
            if char == b"}":
                break
            if char != b'"':
                raise self._unexpected(char, "a key of the List")
            key_at = self.pos
            key_end = self.value_end(key_at, "a key of the List")
            key = self._loads(self.piece(key_at, key_end), "a key of the List", key_at)
            char = self.next_byte(key_end)
            if char != b":":
                raise self._unexpected(char, f'":" after "{key}"')
            char = self.next_byte(self.pos + 1)
            value_at = self.pos
            if key == "items" and char == b"[":
                saw_items = True
                yield from self._items(value_at + 1, head.get("kind"))
                at = self.pos
            else:
                end = self.value_end(value_at, key)
                value = self._loads(self.piece(value_at, end), key, value_at)
                head[key] = value
                if key == "kind":
                    _check_kind(path, value)
                if key == "items":
                    raise ClusterFileError(
                        f"{path}: items: expected a list, got {type(value).__name__}"
                    )
                at = end
            char = self.next_byte(at)
            if char == b",":
                at = self.pos + 1
            elif char != b"}":
                raise self._unexpected(char, 'a "," or "}" in the List')
        if self.next_byte(self.pos + 1):
            raise ClusterFileError(f"{path}: byte {self.pos}: more after the end of the List")
        _check_kind(path, head.get("kind"))
        if not saw_items:
            raise ClusterFileError(f"{path}: items: expected a list, got NoneType")

    def _items(self, at: int, list_kind: Any) -> Iterator[Item]:
        default = list_kind[:-4] if list_kind in ("NodeList", "PodList") else ""
        index = 0
        char = self.next_byte(at)
        if char == b"]":
            self.pos += 1
            return
        while True:
            if char != b"{":
                if not char:
                    raise self.truncated(self.pos, f"before items[{index}]")
                raise ClusterFileError(
                    f"{self.path}: items[{index}] (byte {self.pos}): expected an object, "
                    f"got {char.decode('latin-1')!r}"
                )
            start = self.pos
            end = self.item_end(start, index)
            raw = self.piece(start, end)
            yield Item(index, start, _kind_of(self.path, index, start, raw) or default, raw)
            index += 1
            separator = self.separator  # kubectl's ",\n        {": the next item at once
            if separator and self.data.startswith(separator, end - self.base):
                self.pos = end + len(separator) - 1
                char = b"{"
                continue
            char = self.next_byte(end)
            if char == b"]":
                self.pos += 1
                return
            if char != b",":
                if not char:
                    raise self.truncated(start, f"after items[{index - 1}], in the items")
                raise ClusterFileError(
                    f'{self.path}: byte {self.pos}: expected a "," or "]" after '
                    f"items[{index - 1}], got {char.decode('latin-1')!r}"
                )
            char = self.next_byte(self.pos + 1)

    def _unexpected(self, char: bytes, wanted: str) -> ClusterFileError:
        if not char:
            return self.truncated(0, f"where {wanted} was due")
        return ClusterFileError(
            f"{self.path}: not valid JSON: byte {self.pos}: expected {wanted}, "
            f"got {char.decode('latin-1')!r}"
        )

    def _loads(self, raw: bytes, key: str, at: int) -> Any:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            raise ClusterFileError(
                f"{self.path}: not valid JSON: {key} (byte {at}): {err}"
            ) from None


@functools.lru_cache(maxsize=4)
def _zeros(size: int) -> bytes:
    return bytes(size)


@functools.lru_cache(maxsize=16)
def _literal(opening: bytes) -> re.Pattern[bytes]:
    return re.compile(re.escape(opening))


@functools.lru_cache(maxsize=8)
def _closing_line(indent: bytes) -> re.Pattern[bytes]:
    return re.compile(re.escape(b"\n" + indent + b"}"))


class _Scan:
    """Brackets counted outside strings, resumable where the bytes at hand end."""

    def __init__(self, at: int, depth: int, in_string: bool) -> None:
        self.at = at  # where to go on (a file position)
        self.depth = depth
        self.in_string = in_string

    def run(self, data: bytes, base: int) -> int | None:
        """Where the value ends (just after it), or None when `data` ends first."""
        at = self.at - base
        depth = self.depth
        to_bracket = _TO_BRACKET.match
        body = _STRING_BODY.match
        in_string = self.in_string
        while True:
            if in_string:
                at = body(data, at).end()  # type: ignore[union-attr] - it matches ""
                if data[at : at + 1] != b'"':  # the bytes end (maybe after a backslash)
                    break
                at += 1
                in_string = False
                if depth == 0:
                    return base + at
                continue
            at = to_bracket(data, at).end()  # type: ignore[union-attr] - it matches ""
            if at >= len(data):
                break
            char = data[at]
            at += 1
            if char == 0x22:  # a string the bytes at hand do not close
                in_string = True
            elif char in (0x7B, 0x5B):  # { [
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    return base + at
        self.at, self.depth, self.in_string = base + at, depth, in_string
        return None


def _kind_of(path: Path, index: int, offset: int, raw: bytes) -> str:
    first = _FIRST_KIND.match(raw)
    if first is not None:
        return first.group(1).decode("utf-8", "replace")
    if raw[1:2] == b"\n":  # pretty-printed: its own keys are the lines at its keys' indent
        keys_at = raw.find(b'"', 2)
        indent = raw[1:keys_at]
        if keys_at > 2 and not indent.strip(b" \t\n"):
            line = raw.find(indent + b'"kind": "')
            if line > 0:
                start = line + len(indent) + 9
                end = raw.find(b'"', start)
                if end > 0 and raw.find(b"\\", start, end) < 0:
                    return raw[start:end].decode("utf-8", "replace")
    try:
        kind = _KIND_DECODER.decode(raw).kind
    except msgspec.DecodeError as err:
        raise ClusterFileError(
            f"{path}: items[{index}] (byte {offset}): not valid JSON: {err}"
        ) from None
    return kind if isinstance(kind, str) else ""


def _check_kind(path: Path, kind: Any) -> None:
    if kind not in LIST_KINDS:
        raise ClusterFileError(f'{path}: kind: "{kind}" is not a List (use {HINT})')


def _yaml_items(path: Path, data: bytes) -> Iterator[Item]:
    try:
        document = yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        raise ClusterFileError(f"{path}: not valid YAML or JSON: {err}") from None
    del data
    if not isinstance(document, dict):
        raise ClusterFileError(
            f"{path}: expected a v1 List ({HINT}), got a {type(document).__name__}"
        )
    _check_kind(path, document.get("kind"))
    items = document.get("items")
    if not isinstance(items, list):
        raise ClusterFileError(f"{path}: items: expected a list, got {type(items).__name__}")
    list_kind = document.get("kind")
    default = list_kind[:-4] if list_kind in ("NodeList", "PodList") else ""
    for index, obj in enumerate(items):
        if not isinstance(obj, dict):
            raise ClusterFileError(f"{path}: items[{index}]: expected an object")
        kind = obj.get("kind")
        yield Item(index, -1, kind if isinstance(kind, str) else default, orjson.dumps(obj))
