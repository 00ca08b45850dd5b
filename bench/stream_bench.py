"""The offline tools on 150,000-pod dumps: this tree against an older commit, side by side.

    python bench/stream_bench.py [--rounds 3] [--old-commit 6f54d40] [--dumps A.json,B.json]

Runs `podtier pods --cluster DUMP --output json`, `podtier report --cluster DUMP --out
page.html` (a policy that prices every pool) and `podtier explain POD --cluster DUMP --output
json` as a user runs them, once with this tree's code and once with `--old-commit`'s (taken
with `git archive` into a temporary folder and put first on PYTHONPATH), old and new in turns
(the order swapped every round) so both see the same load on a shared machine. The dumps, in
/tmp, written when missing:

- `bench/cluster_history.py`: 5,000 nodes, 150,000 pods with a day of history, PodMetrics and
  TaskProfiles (~1.5 GB);
- `bench/cluster_gen.py`: 5,000 nodes and 150,000 Airflow worker pods as `kubectl get nodes,pods
  -A -o json` prints them, with env, volumes and status (~1.4 GB).

Prints each run (wall seconds, CPU seconds, peak RSS), then per dump and command the medians,
new / old, whether both printed the same thing, and the goals: peak RSS <= 1 GB, wall time
<= 0.6x the old.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import cluster_gen  # noqa: E402
import cluster_history  # noqa: E402
from report_bench import priced_policy  # noqa: E402

POD = ROOT / "tests" / "fixtures" / "admission" / "b_create_executor_pod_docs_template.json"
DUMPS = {
    "/tmp/podtier-history-5000.json": cluster_history.main,
    "/tmp/podtier-cluster-5000.json": cluster_gen.main,
}
GOAL_RSS_MB, GOAL_RATIO = 1024, 0.6


def old_tree(commit: str, folder: Path) -> Path:
    """A folder to put on PYTHONPATH so that `podtier` is `commit`'s code."""
    source = folder / "src"
    source.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    path = folder / "path"
    path.mkdir()
    (path / "podtier").symlink_to(source)
    return path


class Failed(Exception):
    """A run that exited with an error (the old code refuses some valid layouts)."""


def run(argv: list[str], pythonpath: str | None, out: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one `podtier ...` run, its stdout in
    `out`; fails loudly on an error."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    started = time.perf_counter()
    with out.open("wb") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "podtier.webhook", *argv],
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=env,
            cwd="/",
        )
        _, status, usage = os.wait4(process.pid, 0)
    took = time.perf_counter() - started
    errors = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise Failed(errors.strip().splitlines()[-1] if errors.strip() else "no message")
    return took, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def comparable(name: str, out: Path, page: Path) -> bytes:
    """What the run printed or wrote, without what differs by the clock or the run."""
    if name == "report":
        return page.read_bytes()
    lines = out.read_bytes().splitlines()
    clocked = (b'"source"', b'pending_oldest_seconds"', b'pending_median_seconds"')
    return b"\n".join(line for line in lines if not any(c in line for c in clocked))


def same(name: str, old: bytes, new: bytes) -> bool:
    """Whether both printed the same; explain's JSON on the fields the old one has (later
    work added fields of its own: `asked`, `recommendation` ...)."""
    if name != "explain" or old == new:
        return old == new
    try:
        before, after = orjson.loads(old), orjson.loads(new)
    except orjson.JSONDecodeError:  # a line comparable() left out broke the JSON
        return False
    return all(after.get(key) == value for key, value in before.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old-commit", default="6f54d40")
    parser.add_argument("--dumps", default=",".join(DUMPS))
    parser.add_argument("--commands", default="pods,report,explain")
    args = parser.parse_args(argv)
    dumps = [Path(d) for d in args.dumps.split(",")]
    for dump in dumps:
        if not dump.exists():
            print(f"writing {dump} ...", flush=True)
            DUMPS[str(dump)]([str(dump)])
    failed = False
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        old = str(old_tree(args.old_commit, folder))
        policy = priced_policy(folder)
        for dump in dumps:
            print(f"\n== {dump} ({dump.stat().st_size / 1e6:,.0f} MB)", flush=True)
            for name in args.commands.split(","):
                figures: dict[str, list[tuple[float, float, float]]] = {"old": [], "new": []}
                printed: dict[str, bytes] = {}
                for round_ in range(args.rounds):
                    order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
                    for code in order:
                        page = folder / f"{code}.html"
                        command = {
                            "pods": ["pods", "--cluster", str(dump), "--output", "json"],
                            "report": [
                                *("report", "--cluster", str(dump), "--policy", str(policy)),
                                *("--out", str(page)),
                            ],
                            "explain": [
                                *("explain", str(POD), "--cluster", str(dump)),
                                *("--output", "json"),
                            ],
                        }[name]
                        out = folder / f"{code}.out"
                        try:
                            took, used, rss = run(command, old if code == "old" else None, out)
                        except Failed as err:
                            print(f"  {name:<8} {code} round {round_ + 1}: FAILED: {err}")
                            continue
                        figures[code].append((took, used, rss))
                        printed[code] = comparable(name, out, page)
                        print(
                            f"  {name:<8} {code} round {round_ + 1}: {took:6.1f} s wall, "
                            f"{used:6.1f} s cpu, peak RSS {rss:,.0f} MB",
                            flush=True,
                        )
                if not figures["new"] or not figures["old"]:
                    failed |= not figures["new"]
                    print(f"{name:<8} no comparison: a side failed every round", flush=True)
                    continue
                medians = {
                    code: [statistics.median(f[i] for f in runs) for i in range(3)]
                    for code, runs in figures.items()
                }
                (ow, oc, orss), (nw, nc, nrss) = medians["old"], medians["new"]
                ok = nrss <= GOAL_RSS_MB and nw / ow <= GOAL_RATIO
                failed |= not ok
                print(
                    f"{name:<8} median old {ow:5.1f} s wall {oc:5.1f} s cpu {orss:6,.0f} MB | "
                    f"new {nw:5.1f} s wall {nc:5.1f} s cpu {nrss:6,.0f} MB | new/old wall "
                    f"{nw / ow:.2f} cpu {nc / oc:.2f} | same output: "
                    f"{'yes' if same(name, printed['old'], printed['new']) else 'NO'} | goals "
                    f"(RSS <= {GOAL_RSS_MB} MB, wall <= {GOAL_RATIO}x): "
                    f"{'met' if ok else 'MISSED'}",
                    flush=True,
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
