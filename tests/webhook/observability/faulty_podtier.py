"""`podtier` with a bug planted in the decision, for the log-hygiene test of the error path.

The planted `decide` fails the way a careless bug would: its message quotes the pod's env and
args. Everything else is the real CLI and server.
"""

from __future__ import annotations

import sys
from typing import Any

from podtier.webhook.commands import main as cli
from podtier.webhook.core import admission


def broken_decide(
    pod: Any, policy: Any, capacity: Any, profiles: Any = None, seal: Any = None
) -> Any:
    container = pod.raw["spec"]["containers"][0]
    raise ValueError(f"cannot decide: env {container.get('env')} args {container.get('args')}")


admission.decide = broken_decide  # type: ignore[assignment]

if __name__ == "__main__":
    sys.exit(cli.main())
