"""The pure admission core, in-process on one core: decode → decide → patch → encode.

    /work/venv/bin/python bench/core_bench.py [--seconds 3] [--cluster none|FILE]

Prints reviews per CPU-second for `/mutate` and `/validate` on the `b` fixture (the best of
several rounds, so a busy machine hurts less). No HTTP, no TLS, no metrics, no logs: this
is the ceiling the HTTP edge works under.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from podtier.policies import DEFAULT_POLICY  # noqa: E402
from podtier.webhook.core import admission, review  # noqa: E402
from podtier.webhook.core.capacity import Headroom, NoHeadroom  # noqa: E402
from podtier.webhook.policy import Policy  # noqa: E402
from podtier.webhook.policy.load import load_policy  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "admission" / "b_create_executor_pod_docs_template.json"


def mutate_once(body: bytes, policy: Policy, headroom: Headroom) -> bytes:
    request = review.decode_review(body)
    with headroom.transaction(time.monotonic()) as view:
        answer = admission.mutate(request, policy, view)
    return review.encode(answer.review)


def validate_once(body: bytes, policy: Policy, headroom: Headroom) -> bytes:
    request = review.decode_review(body)
    return review.encode(admission.validate(request, policy).review)


def rate(step: Callable[[], object], seconds: float, rounds: int = 5) -> float:
    """Calls per CPU-second of this process: the best of `rounds` rounds of `seconds / rounds`
    each. CPU time, not wall time, so other work on a busy machine does not count against it."""
    best = 0.0
    for _ in range(rounds):
        calls = 0
        started = time.process_time()
        deadline = started + seconds / rounds
        while True:
            for _ in range(200):
                step()
            calls += 200
            now = time.process_time()
            if now >= deadline:
                break
        best = max(best, calls / (now - started))
    return best


def core_rates(seconds: float, headroom: Headroom | None = None) -> dict[str, float]:
    body = FIXTURE.read_bytes()
    policy = load_policy([DEFAULT_POLICY])
    headroom = headroom or NoHeadroom()
    return {
        "mutate": rate(lambda: mutate_once(body, policy, headroom), seconds),
        "validate": rate(lambda: validate_once(body, policy, headroom), seconds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per webhook (default 3)")
    args = parser.parse_args()
    for webhook, per_second in core_rates(args.seconds).items():
        print(f"pure core {webhook:8s} {per_second:10,.0f} reviews/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
