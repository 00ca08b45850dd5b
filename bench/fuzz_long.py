"""A long fuzz run of podtier's admission promises (the CI suite runs about 2,000 examples).

    /work/venv/bin/python bench/fuzz_long.py --examples 100000 --workers 2 [--http 5000]

Each worker runs hypothesis (generate phase only, its own seed) over generated Airflow pods and
damaged real fixtures, through `decode_review` + `mutate` + `validate` in process, checking the
properties in `tests/webhook/http/reliability/properties.py` against the default policy and a
policy with `always`/`never` rules, with headroom unknown or known. `--http N` also posts N
examples to a real `podtier serve` over TLS. Prints examples/s and every distinct failure (with
the input saved to a JSON file); exits 1 when anything failed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from podtier.policies import DEFAULT_POLICY  # noqa: E402
from podtier.webhook.policy.load import load_policy  # noqa: E402
from tests.webhook.http.reliability.generate import REVIEWS  # noqa: E402
from tests.webhook.http.reliability.properties import (  # noqa: E402
    UNKNOWN,
    RoomIn,
    check_core,
    check_http_reply,
    fuzz_policy,
)

NODE_TYPES = ["worker", "compute-optimized", "gpu"]
CAPACITIES = st.one_of(
    st.just(UNKNOWN), st.lists(st.sampled_from(NODE_TYPES), unique=True).map(RoomIn)
)
LONG = settings(
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


Failures = dict[str, tuple[str, int]]  # what failed -> (saved example, how often)


def _failure_key(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"


def run_core(worker: int, examples: int, out_dir: str) -> tuple[int, Failures, dict[str, int]]:
    policies = [load_policy([DEFAULT_POLICY]), fuzz_policy()]
    failures: Failures = {}
    outcomes: dict[str, int] = {}
    count = 0

    @seed(1000 + worker)
    @settings(LONG, max_examples=examples)
    @given(REVIEWS, st.integers(0, 1), CAPACITIES)
    def one(review: dict[str, Any], policy: int, capacity: Any) -> None:
        nonlocal count
        count += 1
        body = json.dumps(review).encode()
        try:
            outcome = check_core(body, policies[policy], capacity)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        except Exception as err:  # every failure is recorded, the run goes on
            key = _failure_key(err)
            seen = failures.get(key)
            if seen is None:
                path = Path(out_dir) / f"failure-w{worker}-{len(failures)}.json"
                path.write_text(json.dumps({"policy": policy, "review": review}, indent=1))
                failures[key] = (str(path), 1)
            else:
                failures[key] = (seen[0], seen[1] + 1)

    one()
    return count, failures, outcomes


def run_http(examples: int, out_dir: str) -> tuple[int, Failures]:
    from tests.conftest import Server, make_cert_dir

    cert_dir = make_cert_dir(Path(tempfile.mkdtemp(prefix="podtier-fuzz-")))
    server = Server(cert_dir, ["--cluster", "none", "--log-level", "warning"])
    server.wait_ready()
    failures: Failures = {}
    count = 0

    @seed(7)
    @settings(LONG, max_examples=examples)
    @given(REVIEWS, st.sampled_from(["/mutate", "/validate"]))
    def one(review: dict[str, Any], path: str) -> None:
        nonlocal count
        count += 1
        request = review.get("request")
        uid = request.get("uid") if isinstance(request, dict) else None
        try:
            reply = server.post(path, json.dumps(review).encode())
            check_http_reply(
                reply.status_code, reply.headers.get("content-type", ""), reply.content, uid, path
            )
        except Exception as err:
            key = _failure_key(err)
            if key not in failures:
                saved = Path(out_dir) / f"failure-http-{len(failures)}.json"
                saved.write_text(json.dumps({"path": path, "review": review}, indent=1))
                failures[key] = (str(saved), 0)
            failures[key] = (failures[key][0], failures[key][1] + 1)

    try:
        one()
        assert server.client.get("/healthz").status_code == 200
    finally:
        server.stop()
    return count, failures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=100_000, help="in-process examples in all")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument(
        "--http", type=int, default=0, metavar="N", help="also N examples over real TLS"
    )
    args = parser.parse_args()
    out_dir = tempfile.mkdtemp(prefix="podtier-fuzz-failures-")

    started = time.perf_counter()
    per_worker = -(-args.examples // args.workers)
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        results = pool.starmap(run_core, [(w, per_worker, out_dir) for w in range(args.workers)])
    elapsed = time.perf_counter() - started
    total = sum(r[0] for r in results)
    failures: Failures = {}
    outcomes: dict[str, int] = {}
    for _, found, seen in results:
        for key, (path, n) in found.items():
            failures[key] = (failures.get(key, (path, 0))[0], failures.get(key, (path, 0))[1] + n)
        for outcome, n in seen.items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
    print(
        f"in process: {total} examples in {elapsed:.1f} s = {total / elapsed:.0f} examples/s "
        f"({args.workers} workers)"
    )
    print("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))

    if args.http:
        started = time.perf_counter()
        count, http_failures = run_http(args.http, out_dir)
        elapsed = time.perf_counter() - started
        print(f"over TLS: {count} examples in {elapsed:.1f} s = {count / elapsed:.0f} examples/s")
        failures |= {f"http {k}": v for k, v in http_failures.items()}

    print(f"failures: {sum(n for _, n in failures.values())} ({len(failures)} distinct)")
    for key, (path, n) in failures.items():
        print(f"  {n} x {key}\n      example: {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
