"""The code checks the project keeps: ruff (lint and format) over the tree, and mypy --strict
over the pure decision core, so a contributor's change cannot quietly let them decay."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.imports import PACKAGES, REPO_ROOT


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]' brings it)")
    return found


@pytest.mark.parametrize("check", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_is_clean(check: list[str]) -> None:
    result = subprocess.run(
        [_tool("ruff"), *check, "."], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_pure_core_type_checks_strictly(tmp_path: Path) -> None:
    """mypy sees the installed names (`podtier.webhook.core`) through a tree of links, as
    pyproject's package-dir maps them."""
    (tmp_path / "podtier").mkdir()
    for package in PACKAGES:
        (tmp_path / "podtier" / package).symlink_to(REPO_ROOT / package)
    result = subprocess.run(
        [
            _tool("mypy"),
            "--config-file",
            str(REPO_ROOT / "pyproject.toml"),
            "--namespace-packages",
            "--explicit-package-bases",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "-p",
            "podtier.webhook.core",
            "-p",
            "podtier.webhook.policy",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues found" in result.stdout
