"""The checked-in `policies/schema.json` and the field tables of docs/policy.md, made from the
policy's field declarations (`podtier.webhook.policy.spec`, `podtier.webhook.policy.schema`).

Regenerate both after declaring or changing a field:

    python tests/webhook/policy/policy_doc.py --write

Each table sits between `<!-- policy-fields:NAME:start -->` and `<!-- policy-fields:NAME:end -->`
in docs/policy.md (NAME: a key of `podtier.webhook.policy.schema.TABLES`).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from podtier.webhook.policy.schema import TABLES, docs_table, policy_schema

REPO_ROOT = Path(__file__).resolve().parents[3]
SCHEMA_FILE = REPO_ROOT / "policies" / "schema.json"
DOCS_FILE = REPO_ROOT / "docs" / "policy.md"


def schema_text() -> str:
    return json.dumps(policy_schema(), indent=2, ensure_ascii=False) + "\n"


def _marker(name: str, end: str) -> str:
    return f"<!-- policy-fields:{name}:{end} -->"


def docs_text(current: str) -> str:
    """docs/policy.md with each marked table made anew from the declarations.

    Raises KeyError naming a table whose markers are missing."""
    for name, (fields, model) in TABLES.items():
        start, end = _marker(name, "start"), _marker(name, "end")
        found = re.search(re.escape(start) + r".*?" + re.escape(end), current, re.DOTALL)
        if found is None:
            raise KeyError(f"docs/policy.md has no {start} ... {end}")
        table = f"{start}\n{docs_table(fields, model)}\n{end}"
        current = current[: found.start()] + table + current[found.end() :]
    return current


def main(argv: list[str]) -> int:
    if argv != ["--write"]:
        print(__doc__)
        return 2
    SCHEMA_FILE.write_text(schema_text())
    DOCS_FILE.write_text(docs_text(DOCS_FILE.read_text()))
    print(f"wrote {SCHEMA_FILE.relative_to(REPO_ROOT)} and {DOCS_FILE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
