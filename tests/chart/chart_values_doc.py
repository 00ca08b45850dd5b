"""The chart's values, read with their comments: the source of the README's values table.

`values.yaml` documents every key in the comment lines right above it. Walking it together with
`values.schema.json` gives the leaves (a key whose schema has no `properties` is one value, even
when it is a map, like `resources`), their types, defaults and descriptions.

Regenerate the README table after editing values.yaml:

    python tests/chart/chart_values_doc.py --write
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART_DIR = Path(__file__).resolve().parents[2] / "charts" / "podtier"
TABLE_START = "<!-- values-table:start -->"
TABLE_END = "<!-- values-table:end -->"


@dataclass(frozen=True)
class ValueDoc:
    """One documented value: its dotted key, schema type, default and the comment above it."""

    key: str
    type: str
    default: Any
    description: str


def _comment_above(lines: list[str], line_index: int) -> str:
    """The comment lines directly above line `line_index`, joined into one sentence."""
    found: list[str] = []
    index = line_index - 1
    while index >= 0 and lines[index].strip().startswith("#"):
        found.append(lines[index].strip().lstrip("#").strip())
        index -= 1
    return " ".join(reversed(found))


def _schema_type(schema: dict[str, Any]) -> str:
    if "type" in schema:
        return str(schema["type"])
    if "oneOf" in schema:
        return " or ".join(sorted({str(option.get("type", "any")) for option in schema["oneOf"]}))
    return "any"


def value_docs(chart_dir: Path = CHART_DIR) -> list[ValueDoc]:
    """Every leaf value of values.yaml in file order, with the schema's type for it.

    Raises KeyError naming the key when values.yaml has a key the schema lacks.
    """
    text = (chart_dir / "values.yaml").read_text()
    lines = text.splitlines()
    schema = json.loads((chart_dir / "values.schema.json").read_text())
    root = yaml.compose(text)
    docs: list[ValueDoc] = []

    def walk(node: yaml.MappingNode, node_schema: dict[str, Any], prefix: str) -> None:
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            properties = node_schema.get("properties", {})
            if key_node.value not in properties:
                raise KeyError(f"values.yaml key {key!r} is not in values.schema.json")
            child_schema = properties[key_node.value]
            if (
                "properties" in child_schema
                and isinstance(value_node, yaml.MappingNode)
                and value_node.value
            ):
                walk(value_node, child_schema, key + ".")
                continue
            default = yaml.safe_load(yaml.serialize(value_node))
            docs.append(
                ValueDoc(
                    key=key,
                    type=_schema_type(child_schema),
                    default=default,
                    description=_comment_above(lines, key_node.start_mark.line),
                )
            )

    assert isinstance(root, yaml.MappingNode)
    walk(root, schema, "")
    return docs


def values_table(docs: list[ValueDoc]) -> str:
    """The README's markdown table of values."""
    rows = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for doc in docs:
        default = json.dumps(doc.default, separators=(", ", ": "))
        description = doc.description.replace("|", "\\|")
        rows.append(f"| `{doc.key}` | {doc.type} | `{default}` | {description} |")
    return "\n".join(rows)


def readme_table_section(readme: str) -> str:
    """The text between the table markers of the chart README."""
    start = readme.index(TABLE_START) + len(TABLE_START)
    return readme[start : readme.index(TABLE_END)].strip()


def write_readme_table(chart_dir: Path = CHART_DIR) -> None:
    readme_path = chart_dir / "README.md"
    readme = readme_path.read_text()
    start = readme.index(TABLE_START) + len(TABLE_START)
    end = readme.index(TABLE_END)
    table = values_table(value_docs(chart_dir))
    readme_path.write_text(readme[:start] + "\n" + table + "\n" + readme[end:])


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_readme_table()
    else:
        print(values_table(value_docs()))
