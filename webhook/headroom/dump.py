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

Runs of items of one kind (kubectl prints all the Nodes, then all the Pods ...) are handed out
decoded, as a `Batch`, when the caller gives that kind a `many` decoder and the dump is
pretty-printed: the items whole in the bytes at hand, up to `BATCH` bytes of them, are decoded
in one call as the JSON array they are once a `[` and a `]` are put around them. Cutting each
pod out first was a second pass over its bytes (a regex over the 1.4 GB of a 150,000-pod dump,
a copy and a Python step per item): `explain --cluster` on such a dump took ~1.4x as long.

Errors (`ClusterFileError`) name the file, the byte offset and the item: a truncated file, an
item that is not an object, an item over `MAX_ITEM` bytes (no Kubernetes object is: etcd keeps
at most 1.5 MB, so a 2 GB line is refused at 64 MiB, not read), a document that is not a List.
A YAML dump (`kubectl get -o yaml`) is the one thing parsed whole, then handed out the same way.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, TypedDict, TypeVar

import msgspec
import orjson
import yaml

CHUNK = 4 * 1024 * 1024
MAX_ITEM = 64 * 1024 * 1024
# Bytes of items decoded in one call: small enough that what is decoded of them is folded in
# while it is still in the CPU's cache (see `snapshot.paged`).
BATCH = 256 * 1024
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
_ERROR_ITEM = re.compile(r"at `\$\[(\d+)\]")


class _Kind(msgspec.Struct):
    kind: Any = None


class _KindOnly(TypedDict, total=False):
    kind: Any


_KIND_DECODER = msgspec.json.Decoder(_Kind)
_KINDS_DECODER = msgspec.json.Decoder(list[_KindOnly])  # a run of items passed over
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


class Batch(NamedTuple):
    """Items of one kind decoded together (see the module's docstring)."""

    index: int  # the first one's, in the List's items
    offset: int  # the byte of the file where the first one opens
    kind: str
    objects: list[Any]  # what the kind's `many` decoder made of them, in order


# A JSON array of items of a kind to what is kept of each. When one does not fit the fields
# kept, msgspec's ValidationError says which (`$[n]`): those before it come in the batch, it is
# decoded alone by its kind's decoder (which parses it whole), and the batches go on after it.
ManyDecoder = Callable[[bytes], "list[Any]"]


def typed_many(item: Any) -> ManyDecoder:
    """A `many` decoder: a JSON array of items into msgspec's `item` type (a TypedDict that
    keeps `kind`, which each batch is checked by)."""
    decode: ManyDecoder = msgspec.json.Decoder(list[item]).decode
    return decode


def decode_item(path: str | Path, item: Item, decode: Callable[[bytes], T]) -> T:
    """`decode(item.raw)`; invalid JSON is a `ClusterFileError` naming the item's place."""
    try:
        return decode(item.raw)
    except (orjson.JSONDecodeError, msgspec.DecodeError) as err:
        raise ClusterFileError(f"{item.where(path)}: not valid JSON: {err}") from None


def dump_items(
    path: str | Path,
    *,
    chunk: int = CHUNK,
    max_item: int = MAX_ITEM,
    many: Mapping[str, ManyDecoder | None] | None = None,
    batch: int = BATCH,
    kinds: Collection[str] | None = None,
) -> Iterator[Item | Batch]:
    """The dump's items in file order (see the module's docstring): each an `Item`, or, for the
    kinds in `many`, runs of them in `Batch`es of at most `batch` bytes. `kinds`: only items of
    these kinds are handed out; runs of the others are passed over in batches too, decoding
    only their `kind`."""
    path = Path(path)
    try:
        file = path.open("rb")
    except OSError as err:
        raise ClusterFileError(f"{path}: cannot read the cluster file: {err.strerror}") from None
    with file:
        reader = _Reader(path, file, chunk, max_item, many or {}, kinds, batch)
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

    def __init__(
        self,
        path: Path,
        file: BinaryIO,
        chunk: int,
        max_item: int,
        many: Mapping[str, ManyDecoder | None],
        kinds: Collection[str] | None,  # None: all
        batch: int,
    ) -> None:
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
        self.closing = b""  # the line that ends an item, when they are pretty-printed
        self.many = many
        self.kinds = kinds
        self.batched = bool(many) or kinds is not None  # whether runs go in batches
        self.batch = batch
        self.span = batch  # bytes of items the next batch may take
        self.batch_end = 0  # where the last batch's last item ends
        self.alone_until = 0  # items opening before this file position are taken one by one

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
            self.separator = self.closing = b""
            return self.like_the_next(at) or self.value_end(at, f"items[{index}]")
        self.separator = b",\n" + indent + b"{"
        self.closing = b"\n" + indent + b"}"
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

    def list_items(self) -> Iterator[Item | Batch]:
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

    def _items(self, at: int, list_kind: Any) -> Iterator[Item | Batch]:
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
            batch = None
            if self.closing and self.batched and start >= self.alone_until:
                batch = self._batch(start, index, default)
            if batch is not None:
                if self.kinds is None or batch.kind in self.kinds:
                    yield batch
                index += len(batch.objects)
                end = self.batch_end
            else:
                end = self.item_end(start, index)
                raw = self.piece(start, end)
                kind = _kind_of(self.path, index, start, raw) or default
                if self.kinds is None or kind in self.kinds:
                    yield Item(index, start, kind, raw)
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

    def _batch(self, start: int, index: int, default: str) -> Batch | None:
        """The items from `start` on that are whole in the bytes at hand, within `self.span`
        bytes, and of the first one's kind, decoded in one call when `self.many` decodes that
        kind (or, when `self.kinds` leaves it out, their kinds alone); `self.batch_end` is where
        the last one ends. None when they are to be taken one at a time (`self.alone_until`)."""
        data, local = self.data, start - self.base
        last = data.rfind(self.closing, local, local + self.span)
        end = last + len(self.closing)
        if last < 0 or end >= len(data) or local < 1:
            return None
        # The first item's kind, which its bytes show unless it has none (or an odd one):
        # every item's decoded kind is checked below.
        kind = _kind_seen(data, local, end) or default
        decode = self.many.get(kind)
        if decode is None and self.kinds is not None and kind not in self.kinds:
            decode = _KINDS_DECODER.decode
        if decode is None:
            return None
        try:
            objects = decode(self._array(local, end))
        except msgspec.ValidationError as err:  # one does not fit: those before it do
            fit = _failed_item(err)
            if not fit:  # the first one (or msgspec did not say which)
                self.alone_until = self.base + (end if fit is None else self._end_of(local, 1))
                return None
            self.alone_until = self.base + self._end_of(local, fit + 1)  # it, alone
            end = self._end_of(local, fit)
            objects = decode(self._array(local, end))
        except msgspec.DecodeError:  # not valid JSON: the items one at a time say where
            self.alone_until = self.base + end
            return None
        for count, obj in enumerate(objects):
            if obj.get("kind", default) != kind:  # another kind from here on
                if count == 0:
                    self.alone_until = self.base + self._end_of(local, 1)
                    return None
                del objects[count:]
                end = self._end_of(local, count)
                self.alone_until = 0  # an odd one found further on is in the next run
                # kinds that alternate: decode little more than the next run holds
                self.span = max(2 * (end - local), 1024)
                break
        else:
            self.span = min(2 * self.span, self.batch)
        self.batch_end = self.base + end
        return Batch(index, start, kind, objects)

    def _array(self, local: int, end: int) -> bytes:
        """The items from `local` to `end` as one JSON array: the white space before the
        first and the "," or newline after the last stand in for its brackets while it is
        copied out."""
        data = self.data
        before, after = data[local - 1], data[end]
        data[local - 1], data[end] = 0x5B, 0x5D  # [ ]
        try:
            with memoryview(data) as view:
                return view[local - 1 : end + 1].tobytes()
        finally:
            data[local - 1], data[end] = before, after

    def _end_of(self, local: int, count: int) -> int:
        """Where the `count`th pretty-printed item from `local` on ends, in the bytes at hand."""
        at = local
        for _ in range(count):
            at = self.data.index(self.closing, at) + len(self.closing)
        return at

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
    kind = _kind_seen(raw, 0, len(raw))
    if kind is not None:
        return kind
    try:
        decoded = _KIND_DECODER.decode(raw).kind
    except msgspec.DecodeError as err:
        raise ClusterFileError(
            f"{path}: items[{index}] (byte {offset}): not valid JSON: {err}"
        ) from None
    return decoded if isinstance(decoded, str) else ""


def _kind_seen(data: bytes | bytearray, start: int, end: int) -> str | None:
    """The kind of the item opening at `start` (and ending by `end`) as its bytes show it: among
    its first keys, or, pretty-printed, on the line of its own keys that holds it; None when
    they do not show it simply (only decoding can say)."""
    first = _FIRST_KIND.match(data, start, end)
    if first is not None:
        return first.group(1).decode("utf-8", "replace")
    if data[start + 1 : start + 2] == b"\n":  # its own keys are the lines at its keys' indent
        keys_at = data.find(b'"', start + 2, end)
        indent = bytes(data[start + 1 : keys_at])
        if keys_at > start + 2 and not indent.strip(b" \t\n"):
            line = data.find(indent + b'"kind": "', start, end)
            if line > 0:
                begin = line + len(indent) + 9
                close = data.find(b'"', begin, end)
                if close > 0 and data.find(b"\\", begin, close) < 0:
                    return data[begin:close].decode("utf-8", "replace")
    return None


def _failed_item(err: msgspec.ValidationError) -> int | None:
    """Which item of an array msgspec's error is about (its message ends "at `$[12]...`")."""
    found = _ERROR_ITEM.search(str(err))
    return int(found.group(1)) if found is not None else None


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
