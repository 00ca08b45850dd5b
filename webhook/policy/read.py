"""Read policy files from disk and parse their YAML: file and directory order, strict keys
(a duplicate key is an error, not a silent overwrite), and YAML errors with line and column.

A directory loads its `*.yaml`/`*.yml` files in name order, skipping hidden names: in a
ConfigMap volume, `..data` and `..2026_...` are kubelet's bookkeeping, and each file is read
once, through its visible symlink.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from podtier.webhook.core.policy import PolicyError


def read_policy_files(paths: Sequence[str | Path]) -> list[tuple[str, str]]:
    """`(file name, text)` of every policy file the paths name, in load order."""
    files: list[tuple[str, str]] = []
    for path in map(Path, paths):
        if path.is_dir():
            members = sorted(
                p
                for p in path.iterdir()
                if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file()
            )
            if not members:
                raise PolicyError(str(path), "", "directory holds no *.yaml policy files")
            files += [(str(p), _read(p)) for p in members]
        else:
            files.append((str(path), _read(path)))
    return files


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(str(path), "", "no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PolicyError(str(path), "", f"cannot read: {err}") from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return str(problem)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which PyYAML would silently overwrite."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_policy_yaml(files: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, Any]], str]:
    """Pure: `(source name, YAML text)` pairs to `(source, document)` pairs and the content
    digest that names this policy version."""
    documents: list[tuple[str, Any]] = []
    for source, text in files:
        try:
            docs = [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
        except yaml.YAMLError as err:
            raise PolicyError(source, "", f"not valid YAML: {_yaml_problem(err)}") from None
        if not docs:
            raise PolicyError(source, "", "the file holds no policy document")
        documents += [(source, doc) for doc in docs]
    digest = hashlib.sha256()
    for source, text in files:
        digest.update(Path(source).name.encode() + b"\0" + text.encode() + b"\0")
    return documents, digest.hexdigest()
