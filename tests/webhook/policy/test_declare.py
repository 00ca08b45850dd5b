"""Each policy field is declared once (`policy.spec`): the reader, `policies/schema.json` and
the field tables of docs/policy.md come from the declarations, and the checked-in files are
what they make (regenerate: `python tests/webhook/policy/policy_doc.py --write`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import jsonschema
import pytest

from podtier.webhook.core.policy import PolicyError
from podtier.webhook.policy.declare import (
    Choice,
    Count,
    Field,
    Number,
    Section,
    read_section,
    section_schema,
)
from podtier.webhook.policy.schema import docs_table, policy_schema
from tests.webhook.policy.policy_doc import DOCS_FILE, SCHEMA_FILE, docs_text, schema_text

REGENERATE = "stale: run python tests/webhook/policy/policy_doc.py --write"


def test_the_checked_in_schema_is_made_from_the_declarations() -> None:
    assert SCHEMA_FILE.read_text() == schema_text(), REGENERATE
    jsonschema.Draft202012Validator.check_schema(policy_schema())


def test_the_docs_tables_are_made_from_the_declarations() -> None:
    current = DOCS_FILE.read_text()
    assert docs_text(current) == current, REGENERATE


def test_a_stale_table_is_seen() -> None:
    """The check above can fail: a table edited by hand is put back."""
    current = DOCS_FILE.read_text()
    edited = current.replace("| `minRuns` | whole number >= 1 | `5` |", "| `minRuns` | any |")
    assert edited != current
    assert docs_text(edited) == current


@dataclass(frozen=True)
class Queue:
    """A made-up model section, for a field added the way a new one is."""

    name: str
    depth: int = 10
    order: str = "fifo"


QUEUE = (
    Field("depth", "depth", Count(least=1), "How many pods wait at most."),
    Field("order", "order", Choice(("fifo", "lifo")), "Which waits first.", nullable=False),
)
# The new field: one declaration (and its attribute in the model, and its use).
WAIT = Field("maxWaitSeconds", "max_wait_seconds", Number(above=0), "How long a pod may wait.")


@dataclass(frozen=True)
class QueueWithWait(Queue):
    max_wait_seconds: float | None = None


def test_one_declaration_gives_the_reader_the_schema_and_the_docs_row() -> None:
    fields = (*QUEUE, WAIT)
    read = QueueWithWait(name="q", **read_section("p.yaml", {"maxWaitSeconds": 30}, "q", fields))
    assert read == QueueWithWait(name="q", depth=10, order="fifo", max_wait_seconds=30.0)
    with pytest.raises(PolicyError) as err:
        read_section("p.yaml", {"maxWaitSeconds": 0}, "spec.queues.q", fields)
    assert str(err.value) == "p.yaml: spec.queues.q.maxWaitSeconds: 0 is not a number > 0"
    with pytest.raises(PolicyError) as err:
        read_section("p.yaml", {"maxWait": 1}, "spec.queues.q", fields)
    assert str(err.value) == (
        "p.yaml: spec.queues.q.maxWait: unknown field (expected one of depth, order, "
        "maxWaitSeconds)"
    )

    schema = section_schema(fields, model=QueueWithWait)
    assert schema["properties"]["maxWaitSeconds"] == {
        "description": "How long a pod may wait.",
        "type": ["number", "null"],
        "exclusiveMinimum": 0,
    }
    assert (
        schema["properties"]["depth"]["description"] == "How many pods wait at most. (default 10)"
    )
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"maxWaitSeconds": 30, "order": "lifo"})
    assert not validator.is_valid({"maxWaitSeconds": 0})
    assert not validator.is_valid({"order": None}), "order is not nullable: null is an error"

    table = docs_table(fields, QueueWithWait).splitlines()
    assert table[2:] == [
        "| `depth` | whole number >= 1 | `10` | How many pods wait at most. |",
        "| `order` | `fifo`, `lifo` | `fifo` | Which waits first. |",
        "| `maxWaitSeconds` | number > 0 | none | How long a pod may wait. |",
    ]


def test_absent_null_required_and_nested_fields() -> None:
    nested = Field("limits", "", Section(QUEUE[:1], model=Queue), "Nested.")
    fields = (Field("name", "name", Count(least=0), "n", required=True), nested)
    assert read_section("p.yaml", {"name": 1, "limits": None}, "", fields) == {"name": 1}
    assert read_section("p.yaml", {"name": 1, "limits": {"depth": 3}}, "", fields) == {
        "name": 1,
        "depth": 3,
    }
    with pytest.raises(PolicyError, match=r"^p.yaml: x.name: is required$"):
        read_section("p.yaml", {}, "x", fields)
    with pytest.raises(PolicyError, match=r"^p.yaml: x.limits.depth: 0 is not a whole number"):
        read_section("p.yaml", {"name": 1, "limits": {"depth": 0}}, "x", fields)


def test_the_checked_in_schema_loads_as_json() -> None:
    assert json.loads(SCHEMA_FILE.read_text())["$defs"]["tier"]["required"] == ["placement"]
