"""How a policy field is declared: once, with its key, kind, default and doc line.

A `Field` says everything about one key of a policy section: how the file spells it, what
kind of value it holds (`Count`, `Number`, `Choice`, `Flag`, `Text`, `Quantities`, `Names`, a
nested `Section`, or `Custom` for the few shapes with their own reader), whether it is
required, what an absent key means, and one doc line. From a tuple of fields come:

- the reader, `read_section`: unknown keys, each field checked by its kind, with errors that
  name the file, the field path, the value and what was expected (`policy.fields`);
- the JSON Schema of the section, `section_schema` (`policy.schema` puts the whole
  `policies/schema.json` together);
- the docs table of the section (`policy.schema.docs_table`, in docs/policy.md).

An absent key (or `null`, for a `nullable` field) gives the field's `default` when it has one,
else nothing: the model's own default applies (`Tier(...)` fills what it is not given). The
docs show that model default, so a default is written once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from copy import copy
from dataclasses import dataclass
from typing import Any, Protocol

from podtier.webhook.core.policy import PolicyError
from podtier.webhook.core.quantity import format_milli
from podtier.webhook.policy.fields import (
    as_count,
    as_map,
    as_number,
    as_price,
    as_quantities,
    as_strings,
    check_fields,
    expected,
    optional_bool,
    optional_string,
    show,
)

Schema = dict[str, Any]


class Kind(Protocol):
    """What a field holds: how it is read, its JSON Schema, its type in the docs."""

    def read(self, source: str, raw: Any, path: str) -> Any: ...

    def schema(self, nullable: bool) -> Schema: ...

    def type_doc(self) -> str: ...


def _nullable_type(name: str, nullable: bool) -> Schema:
    return {"type": [name, "null"] if nullable else name}


@dataclass(frozen=True)
class Count:
    """A whole number >= `least` (and <= `most`, when given)."""

    least: int
    most: int | None = None

    def read(self, source: str, raw: Any, path: str) -> int:
        value = as_count(source, raw, path, least=self.least)
        if self.most is not None and value > self.most:
            raise PolicyError(source, path, f"{value} is not a whole number <= {self.most}")
        return value

    def schema(self, nullable: bool) -> Schema:
        out = {**_nullable_type("integer", nullable), "minimum": self.least}
        return out if self.most is None else {**out, "maximum": self.most}

    def type_doc(self) -> str:
        if self.most is not None:
            return f"whole number, {self.least} to {self.most}"
        return f"whole number >= {self.least}"


@dataclass(frozen=True)
class Number:
    """A number within bounds: `least` <= n, `above` < n, n <= `most`."""

    least: float | None = None
    above: float | None = None
    most: float | None = None

    def read(self, source: str, raw: Any, path: str) -> float:
        return as_number(source, raw, path, least=self.least, above=self.above, most=self.most)

    def schema(self, nullable: bool) -> Schema:
        out = _nullable_type("number", nullable)
        bounds = (("minimum", self.least), ("exclusiveMinimum", self.above), ("maximum", self.most))
        out.update({key: _plain(v) for key, v in bounds if v is not None})
        return out

    def type_doc(self) -> str:
        if self.least is not None and self.most is not None:
            return f"number, {_plain(self.least)} to {_plain(self.most)}"
        pairs = ((">=", self.least), (">", self.above))
        bounds = [f"{op} {_plain(v)}" for op, v in pairs if v is not None]
        bounds += [f"<= {_plain(self.most)}"] if self.most is not None else []
        return " ".join(["number", *bounds]) if bounds else "number"


def _plain(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


@dataclass(frozen=True)
class Choice:
    """One of a few words."""

    choices: Sequence[str]

    def read(self, source: str, raw: Any, path: str) -> str:
        for choice in self.choices:
            if raw == choice:
                return choice
        raise PolicyError(source, path, expected(raw, self.choices))

    def schema(self, nullable: bool) -> Schema:
        return {"enum": [*self.choices, None] if nullable else list(self.choices)}

    def type_doc(self) -> str:
        return ", ".join(f"`{c}`" for c in self.choices)


@dataclass(frozen=True)
class Flag:
    """true or false."""

    def read(self, source: str, raw: Any, path: str) -> bool | None:
        return optional_bool(source, raw, path)

    def schema(self, nullable: bool) -> Schema:
        return _nullable_type("boolean", nullable)

    def type_doc(self) -> str:
        return "boolean"


@dataclass(frozen=True)
class Text:
    """A non-empty string; or, with `what` (`"tier name"`), any string, else "is not a <what>"."""

    what: str = ""

    def read(self, source: str, raw: Any, path: str) -> str | None:
        if not self.what:
            return optional_string(source, raw, path)
        if not isinstance(raw, str):
            raise PolicyError(source, path, f"{show(raw)} is not a {self.what}")
        return raw

    def schema(self, nullable: bool) -> Schema:
        if self.what:
            return _nullable_type("string", nullable)
        if not nullable:
            return {"$ref": "#/$defs/name"}
        return {"type": ["string", "null"], "minLength": 1}

    def type_doc(self) -> str:
        return self.what or "string"


@dataclass(frozen=True)
class Names:
    """A list of non-empty strings; with `at_least_one`, an empty list is an error."""

    at_least_one: bool = False
    what: str = "pool name"

    def read(self, source: str, raw: Any, path: str) -> tuple[str, ...]:
        names = tuple(as_strings(source, raw, path))
        if self.at_least_one and not names:
            raise PolicyError(source, path, f"is empty (expected at least one {self.what})")
        return names

    def schema(self, nullable: bool) -> Schema:
        out = _nullable_type("array", nullable)
        if self.at_least_one:
            out["minItems"] = 1
        return {**out, "items": {"$ref": "#/$defs/name"}}

    def type_doc(self) -> str:
        return f"list of {self.what}s" + (", at least one" if self.at_least_one else "")


@dataclass(frozen=True)
class Quantities:
    """A map of resource to quantity; `only` limits the resources it may name; `milli` reads
    each as its milli-units rather than a `Quantity`."""

    only: Sequence[str] = ()
    milli: bool = False

    def read(self, source: str, raw: Any, path: str) -> Mapping[str, Any]:
        if self.only:
            check_fields(source, as_map(source, raw, path), path, self.only)
        quantities = as_quantities(source, raw, path)
        if self.milli:
            return {name: quantity.milli for name, quantity in quantities.items()}
        return quantities

    def schema(self, nullable: bool) -> Schema:
        if not self.only:
            return {"$ref": "#/$defs/quantities"}
        return {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {name: {"$ref": "#/$defs/quantity"} for name in self.only},
        }

    def type_doc(self) -> str:
        if self.only:
            return f"map of {', '.join(f'`{r}`' for r in self.only)} quantities"
        return "map of resource to quantity"


@dataclass(frozen=True)
class Price:
    """A price per hour: a plain number, zero or more."""

    def read(self, source: str, raw: Any, path: str) -> float:
        return as_price(source, raw, path)

    def schema(self, nullable: bool) -> Schema:
        return {"$ref": "#/$defs/price"}

    def type_doc(self) -> str:
        return "number >= 0"


@dataclass(frozen=True)
class Section:
    """A nested map of its own fields, read into a dict of their attributes; `build` turns
    that into the model's value (a dataclass), or the dict's entries join the parent's when
    the field has no `attr`."""

    fields: tuple[Field, ...]
    build: Callable[..., Any] | None = None
    at_least_one: bool = False  # an empty map is an error
    model: type | None = None  # whose defaults the fields have (else `build`, a class)

    def defaults_from(self, parent: type | None) -> type | None:
        if self.model is not None:
            return self.model
        return self.build if isinstance(self.build, type) else parent

    def read(self, source: str, raw: Any, path: str) -> Any:
        if self.at_least_one and not as_map(source, raw, path):
            keys = ", ".join(f.key for f in self.fields)
            raise PolicyError(source, path, f"is empty (expected at least one of {keys})")
        values = read_section(source, raw, path, self.fields)
        return values if self.build is None else self.build(**values)

    def schema(self, nullable: bool) -> Schema:
        out = section_schema(self.fields, nullable, self.defaults_from(None))
        return {**out, "minProperties": 1} if self.at_least_one else out

    def type_doc(self) -> str:
        return "map (below)"


@dataclass(frozen=True)
class Custom:
    """A shape with its own reader and schema (selectors, tolerations, name maps)."""

    reader: Callable[[str, Any, str], Any]
    json_schema: Schema
    type_text: str

    def read(self, source: str, raw: Any, path: str) -> Any:
        return self.reader(source, raw, path)

    def schema(self, nullable: bool) -> Schema:
        return dict(self.json_schema)

    def type_doc(self) -> str:
        return self.type_text


@dataclass(frozen=True)
class Field:
    """One key of a policy section.

    `attr` is the model's attribute (`""`: a `Section` whose entries join the parent's).
    `required`: the key must be there. `nullable`: `null` is the same as leaving it out (else
    null is read, and the kind says why it is wrong). `default`: the value when left out;
    without it the model's own default applies. `type_text` overrides the kind's docs type.
    `ref`: in the schema, the field is `$defs/<ref>` (shared between sections).
    `missing`: the error when a required key is left out.
    """

    key: str
    attr: str
    kind: Kind
    doc: str
    required: bool = False
    nullable: bool = True
    default: Any = None
    type_text: str = ""
    ref: str = ""
    missing: str = "is required"
    shown_default: str = ""  # the docs' default, where the value says too little

    def schema(self, model: type | None = None) -> Schema:
        """In a section's schema: `$defs/<ref>`, or the field's own schema."""
        return {"$ref": f"#/$defs/{self.ref}"} if self.ref else self.own_schema(model)

    def own_schema(self, model: type | None = None) -> Schema:
        """The doc line (without markdown links), with the default it has when left out."""
        doc = _LINK.sub("", self.doc).replace("`", "")
        shown = self.default_text(model)
        if shown.startswith("`"):  # a value (not "none", "required" or words)
            doc = f"{doc} (default {shown.replace('`', '')})"
        return {"description": doc, **self.kind.schema(self.nullable)}

    def type_doc(self) -> str:
        return self.type_text or self.kind.type_doc()

    def default_text(self, model: type | None) -> str:
        """What the field is when left out, as the docs say it: its `default`, else the
        model's default for its attribute."""
        if self.shown_default or self.required:
            return self.shown_default or "required"
        value = self.default
        known = {f.name: f for f in dataclasses.fields(model)} if model else {}
        found = known.get(self.attr)
        if _empty(value) and found is not None:
            if found.default is not dataclasses.MISSING:
                value = found.default
            elif found.default_factory is not dataclasses.MISSING:
                value = found.default_factory()
        return _show(value)


_LINK = re.compile(r" ?See \[[^]]*\]\([^)]*\)\.")


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == () or value == ""


def _show(value: Any) -> str:
    if _empty(value):
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, tuple | list):
        return f"`[{', '.join(map(str, value))}]`"
    if isinstance(value, Mapping):  # milli-units by resource (the learning floor)
        return ", ".join(f"`{name}: {format_milli(m, name)}`" for name, m in value.items())
    return f"`{value}`"


def read_section(source: str, raw: Any, path: str, fields: Sequence[Field]) -> dict[str, Any]:
    """Read a section by its fields: {attr: value} for each field given (or defaulted)."""
    raw = as_map(source, raw, path)
    check_fields(source, raw, path, [f.key for f in fields])
    out: dict[str, Any] = {}
    for spec in fields:
        where = f"{path}.{spec.key}" if path else spec.key
        if spec.key not in raw:
            if spec.required:
                raise PolicyError(source, where, spec.missing)
            value = spec.default
        elif raw[spec.key] is None and spec.nullable:
            value = spec.default
        else:
            value = spec.kind.read(source, raw[spec.key], where)
        if isinstance(value, dict | list):
            value = copy(value)  # a default is shared: each model value gets its own
        if spec.attr == "":
            out.update({k: v for k, v in (value or {}).items() if v is not None})
        elif value is not None:
            out[spec.attr] = value
    return out


def section_schema(
    fields: Sequence[Field], nullable: bool = True, model: type | None = None
) -> Schema:
    """The JSON Schema of a map with these fields and no others (`model`: whose defaults they
    have, for the descriptions)."""
    out: Schema = {"type": ["object", "null"] if nullable else "object"}
    out["additionalProperties"] = False
    required = [f.key for f in fields if f.required]
    if required:
        out["required"] = required
    out["properties"] = {f.key: f.schema(model) for f in fields}
    return out
