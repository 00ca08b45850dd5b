"""Load policy files into a `Policy`, or fail with `file: field.path: what is wrong`.

read (files, YAML: `read`) -> build (fields and references: `build`, `fields`) -> Policy
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from podtier.webhook.core.policy import Policy
from podtier.webhook.policy.build import parse_policy_documents
from podtier.webhook.policy.read import parse_policy_yaml, read_policy_files

__all__ = ["load_policy", "load_policy_text", "parse_policy_documents", "read_policy_files"]


def load_policy(paths: Sequence[str | Path]) -> Policy:
    """Load policy files and directories, in order."""
    return load_policy_text(read_policy_files(paths))


def load_policy_text(files: Sequence[tuple[str, str]]) -> Policy:
    """Pure: `(source name, YAML text)` pairs to a Policy."""
    documents, digest = parse_policy_yaml(files)
    return parse_policy_documents(documents, digest)
