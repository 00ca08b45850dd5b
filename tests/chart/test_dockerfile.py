"""The image the chart runs, checked statically (no container engine here): a slim Python base,
the wheel built in a builder stage and installed, a numeric non-root user, an exec-form
`podtier serve` entrypoint and no shell at runtime."""

from __future__ import annotations

import fnmatch
import json
import shlex
import tomllib
from dataclasses import dataclass

import pytest

from tests.chart.chart_rendering import REPO_ROOT, pod_spec, render


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    arguments: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order, continuation lines joined, comments dropped, stages numbered."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical = (pending + line).strip()
        pending = ""
        keyword, _, arguments = logical.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword.upper(), arguments.strip()))
    return instructions


INSTRUCTIONS = parse_dockerfile((REPO_ROOT / "Dockerfile").read_text())
FINAL_STAGE = max(i.stage for i in INSTRUCTIONS)


def in_final_stage(keyword: str) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.stage == FINAL_STAGE and i.keyword == keyword]


def build_arg_default(name: str) -> str:
    for instruction in INSTRUCTIONS:
        if instruction.keyword == "ARG" and instruction.arguments.startswith(name + "="):
            return instruction.arguments.split("=", 1)[1]
    raise AssertionError(f"no ARG {name}")


def test_builder_and_runtime_share_a_slim_python_base() -> None:
    bases = [i.arguments.split()[0] for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert len(bases) == 2
    assert bases[0] == bases[1] == "${PYTHON_IMAGE}"
    base = build_arg_default("PYTHON_IMAGE")
    image, _, tag = base.partition(":")
    assert image == "python" and "slim" in tag


def test_builder_builds_the_projects_wheel_and_installs_it() -> None:
    builder_runs = " ".join(
        i.arguments for i in INSTRUCTIONS if i.stage == 0 and i.keyword == "RUN"
    )
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["name"]
    assert "pip wheel" in builder_runs
    assert f"pip install /dist/{project}-" in builder_runs
    copies = [i.arguments for i in in_final_stage("COPY")]
    assert copies == ["--from=builder /opt/podtier /opt/podtier"]


def test_runtime_user_is_numeric_non_root_and_matches_the_chart() -> None:
    users = in_final_stage("USER")
    assert len(users) == 1
    user, _, group = users[0].arguments.partition(":")
    assert user.isdigit() and int(user) > 0
    assert group.isdigit() and int(group) > 0
    security = pod_spec(render())["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (int(user), int(group))
    last_user = max(i for i, ins in enumerate(INSTRUCTIONS) if ins.keyword == "USER")
    assert all(ins.keyword != "RUN" for ins in INSTRUCTIONS[last_user:]), "RUN after USER"


def test_entrypoint_is_exec_form_podtier_serve() -> None:
    entrypoints = in_final_stage("ENTRYPOINT")
    assert len(entrypoints) == 1
    command = json.loads(entrypoints[0].arguments)  # exec form: a JSON array, no shell
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert command == ["podtier", "serve"]
    assert "podtier" in scripts
    assert in_final_stage("CMD") == []


def test_runtime_removes_every_shell() -> None:
    removed = set()
    for run in in_final_stage("RUN"):
        words = shlex.split(run.arguments)
        if words[:2] == ["rm", "-f"]:
            removed |= set(words[2:])
    assert {"/bin/sh", "/bin/bash", "/bin/dash", "/usr/bin/sh", "/usr/bin/bash"} <= removed


def test_chart_needs_no_shell_in_the_image() -> None:
    spec = pod_spec(render())
    for container in spec["containers"]:
        assert "command" not in container  # the image's ENTRYPOINT runs
        for handler in (container.get("lifecycle") or {}).values():
            assert "exec" not in handler
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert "exec" not in container[probe]


def dockerignore_keeps(path: str) -> bool:
    """Docker's .dockerignore rule: the last matching pattern decides; `!` re-includes."""
    kept = True
    for raw in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            kept = negate
    return kept


def build_inputs() -> set[str]:
    """What `pip wheel .` reads: pyproject.toml, its readme, and the folders its packages map."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    folders = project["tool"]["setuptools"]["package-dir"].values()
    return {"pyproject.toml", project["project"]["readme"]} | set(folders)


def test_builder_copies_exactly_what_the_wheel_is_built_from() -> None:
    copied = set()
    for instruction in INSTRUCTIONS:
        if instruction.stage == 0 and instruction.keyword == "COPY":
            *sources, _ = shlex.split(instruction.arguments)
            copied |= {source.rstrip("/") for source in sources}
    assert copied == build_inputs()


@pytest.mark.parametrize("path", sorted(build_inputs()))
def test_build_context_keeps_the_build_inputs(path: str) -> None:
    assert dockerignore_keeps(path)
    assert dockerignore_keeps(f"{path}/__init__.py") or "." in path


@pytest.mark.parametrize(
    "path", ["tests/chart/test_dockerfile.py", ".git/config", "charts/podtier/values.yaml"]
)
def test_build_context_leaves_out_everything_else(path: str) -> None:
    assert not dockerignore_keeps(path)


def test_build_context_leaves_out_bytecode() -> None:
    assert not dockerignore_keeps("webhook/__pycache__/app.cpython-311.pyc")
