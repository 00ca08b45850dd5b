"""Field paths into a pod, as suites spell them.

Two spellings:
- a JSON pointer (RFC 6901), starting with `/`: `/metadata/annotations/podtier.io~1tier`;
- a dotted path: `spec.containers[0].resources.limits.cpu`, with `["podtier.io/tier"]` for keys
  holding dots or slashes, and `[name=base]` for the list item whose `name` is `base`.
"""

from __future__ import annotations

import re
from typing import Any

import jsonpointer

MISSING: Any = object()
_SEGMENT = re.compile(
    r"""\.?(?P<name>[A-Za-z0-9_\-]+)
      | \[(?P<index>\d+)\]
      | \["(?P<dq>[^"]*)"\]
      | \['(?P<sq>[^']*)'\]
      | \[(?P<key>[^=\]]+)=(?P<value>[^\]]*)\]""",
    re.VERBOSE,
)


class FieldPathError(ValueError):
    """A path that cannot be parsed; the message says where."""


Segment = str | int | tuple[str, str]


def parse(path: str) -> list[Segment] | str:
    """A list of segments for a dotted path, or the pointer itself for a JSON pointer."""
    if path.startswith("/"):
        try:
            jsonpointer.JsonPointer(path)
        except jsonpointer.JsonPointerException as err:
            raise FieldPathError(f"{path!r} is not a JSON pointer: {err}") from None
        return path
    segments: list[Segment] = []
    position = 0
    while position < len(path):
        found = _SEGMENT.match(path, position)
        if found is None or (position == 0 and path.startswith(".")):
            raise FieldPathError(
                f"{path!r}: cannot read from {path[position:]!r} (expected name, [0], "
                '["key.with.dots"] or [name=value])'
            )
        if found["name"] is not None:
            segments.append(found["name"])
        elif found["index"] is not None:
            segments.append(int(found["index"]))
        elif found["dq"] is not None or found["sq"] is not None:
            segments.append(found["dq"] if found["dq"] is not None else found["sq"])
        else:
            segments.append((found["key"], found["value"]))
        position = found.end()
    if not segments:
        raise FieldPathError("an empty path")
    return segments


def lookup(document: Any, path: list[Segment] | str) -> Any:
    """The value at `path`, or MISSING."""
    if isinstance(path, str):
        return jsonpointer.resolve_pointer(document, path, MISSING)
    node = document
    for segment in path:
        if isinstance(segment, tuple):
            key, value = segment
            if not isinstance(node, list):
                return MISSING
            node = next(
                (i for i in node if isinstance(i, dict) and str(i.get(key)) == value), MISSING
            )
        elif isinstance(segment, int):
            if not isinstance(node, list) or segment >= len(node):
                return MISSING
            node = node[segment]
        else:
            if not isinstance(node, dict) or segment not in node:
                return MISSING
            node = node[segment]
        if node is MISSING:
            return MISSING
    return node
