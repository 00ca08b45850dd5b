"""The layout's promises: the pure core imports no edge, no module imports in a circle, no two
folders of `webhook/` import each other (arrows run one way), and the installed distribution
lives under the one import name `podtier.`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

from tests.imports import (
    PACKAGES,
    REPO_ROOT,
    cycles,
    folder_graph,
    folder_pairs,
    import_graph,
    imported_names,
    source_files,
)

CORE = "podtier.webhook.core"
# What the pure decision core may import besides itself (the policy model and matching are in
# the core, `core.policy` and `core.matching`): the standard library's pure parts, orjson
# (bytes in, values out), and one pure function of the kubernetes package,
# `kubernetes.utils.parse_quantity`, which the project uses for quantities instead of a
# hand-written twin (its module imports only `decimal`).
CORE_MAY_IMPORT = ("orjson", "kubernetes.utils")
NOT_PURE = (  # standard-library modules that do I/O, read the clock, or log
    "asyncio", "http", "io", "logging", "os", "pathlib", "random", "select", "shutil", "socket",
    "ssl", "subprocess", "sys", "threading", "time", "urllib",
)  # fmt: skip
EDGES = ("kubernetes", "starlette", "uvicorn", "watchfiles", "prometheus_client", "yaml")


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize(
    "module", sorted(n for n in source_files() if n.startswith(CORE)), ids=lambda n: n[8:]
)
def test_core_imports_only_the_core_and_pure_libraries(module: str) -> None:
    path = source_files()[module]
    wrong = []
    for name in imported_names(path, set(source_files())):
        if name.startswith(CORE) or name == "__future__" or name.startswith(CORE_MAY_IMPORT):
            continue
        if (
            name.startswith("podtier.")
            or _top(name) in EDGES
            or _top(name) in NOT_PURE
            or _top(name) not in sys.stdlib_module_names
        ):
            wrong.append(name)
    assert wrong == [], f"{module} imports {wrong}: the core must stay pure (no I/O, no edges)"


def test_importing_the_core_loads_no_server_or_edge() -> None:
    """At run time too. (`kubernetes.utils` cannot be imported without the kubernetes package's
    client modules, which load yaml, so those two are left to the static test above.)"""
    modules = sorted(n for n in source_files() if n.startswith(CORE))
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print('\\n'.join(sorted(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    ).stdout.split()
    edges = [
        name
        for name in loaded
        if _top(name) in ("starlette", "uvicorn", "watchfiles", "prometheus_client")
        or (name.startswith("podtier.webhook.") and not name.startswith(CORE))
    ]
    assert "podtier.webhook.core.admission" in loaded
    assert edges == [], f"importing the core loaded {edges}"


@pytest.mark.parametrize("package", ["webhook", "certs"])
def test_no_module_imports_in_a_circle(package: str) -> None:
    graph = import_graph(package)
    assert len(graph) > 1
    assert cycles(graph) == []


def test_the_import_graph_sees_a_circle() -> None:
    """The check above can fail: a circle made up on purpose is found."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_two_folders_of_webhook_import_each_other() -> None:
    """Module circles aside, folders too: if `core/` imports `policy/`, nothing in `policy/`
    imports `core/` (the core at the bottom, subsystems above, commands and HTTP on top)."""
    graph = folder_graph(import_graph("webhook"))
    assert {"core", "policy", "commands", "policytest"} <= set(graph)
    assert folder_pairs(graph) == []


def test_the_folder_check_sees_a_pair() -> None:
    """The check above can fail: two folders made up to import each other (through different
    modules, so no module circle) are found, and a one-way arrow is not."""
    modules = {
        "podtier.webhook.core.decide": {"podtier.webhook.policy.model"},
        "podtier.webhook.core.pod": set(),
        "podtier.webhook.policy.model": set(),
        "podtier.webhook.policy.airflow": {"podtier.webhook.core.pod"},
        "podtier.webhook.commands": {"podtier.webhook.core.decide"},
        "podtier.webhook.lease": {"podtier.webhook.core.pod"},
    }
    assert cycles(modules) == []
    graph = folder_graph(modules)
    assert graph == {"core": {"policy"}, "policy": {"core"}, "commands": {"core"}}
    assert folder_pairs(graph) == [("core", "policy")]
    del modules["podtier.webhook.policy.airflow"]
    assert folder_pairs(folder_graph(modules)) == []


def test_pyproject_lists_every_package_under_podtier() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {n for n, p in _all_sources().items() if p.name == "__init__.py"}
    assert set(project["packages"]) == on_disk
    assert project["package-dir"] == {f"podtier.{p}": p for p in PACKAGES}


def _all_sources() -> dict[str, Path]:
    return {k: v for package in PACKAGES for k, v in source_files(package).items()}


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel .` builds, installed into a fresh venv without its dependencies."""
    tmp = tmp_path_factory.mktemp("wheel")
    # From a clean copy of what the wheel is built from (as the Dockerfile copies it), so a
    # stale build/ folder in the work tree cannot add modules that are gone.
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            REPO_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--wheel-dir", str(tmp / "dist"), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp / "dist").glob("podtier-*.whl")
    venv.create(tmp / "venv", with_pip=False)
    python = tmp / "venv" / "bin" / "python"
    subprocess.run(
        [*pip, "--python", str(python), "install", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    return python


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def test_the_wheel_installs_everything_under_podtier_and_nothing_generic(
    installed_wheel: Path,
) -> None:
    site = _site_packages(installed_wheel)
    top_level = {p.name for p in site.iterdir() if not p.name.endswith((".dist-info", ".pth"))}
    assert "podtier" in top_level
    assert not top_level & {"webhook", "certs", "policies", "tests", "bench"}
    installed = {
        "podtier." + ".".join(p.relative_to(site / "podtier").with_suffix("").parts)
        for p in (site / "podtier").rglob("*.py")
    }
    expected = {n if not n.endswith("__init__") else n for n in _module_files()}
    assert installed == expected
    assert (site / "podtier" / "policies" / "default.yaml").is_file()


def _module_files() -> set[str]:
    return {
        "podtier." + ".".join(p.relative_to(REPO_ROOT).with_suffix("").parts)
        for package in PACKAGES
        for p in (REPO_ROOT / package).rglob("*.py")
    }


def test_the_installed_command_runs_from_the_wheel(installed_wheel: Path, tmp_path: Path) -> None:
    """The wheel's `podtier` command, with the dependencies of this environment on its path but
    not the repository: it finds its default policy inside the installed package."""
    deps = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": deps, "PATH": "/usr/bin:/bin"}
    command = installed_wheel.parent / "podtier"
    lint = subprocess.run(
        [str(command), "policy", "lint", str(_installed_default(installed_wheel))],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert lint.returncode == 0, lint.stderr
    assert lint.stdout.startswith("ok: default@")
    where = subprocess.run(
        [str(installed_wheel), "-c", "import podtier.webhook.core.decide as m; print(m.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=True,
    )
    assert where.stdout.startswith(str(_site_packages(installed_wheel)))


def _installed_default(python: Path) -> Path:
    return _site_packages(python) / "podtier" / "policies" / "default.yaml"
