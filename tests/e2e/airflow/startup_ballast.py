"""A worker whose start needs more memory than its tier gives, for the real-node suite's
relaunch case; loaded at every Python start in the worker image (podtier_e2e_worker.pth).

With `PODTIER_E2E_STARTUP_BYTES` set (the DAG's `hungry_start` task sets it through its
pod_override), the container's main process holds that many bytes from its first instant, before
Airflow's supervisor has told the API server that the task runs. An OOM kill then is a pod that
failed while its task instance was still queued: the cncf-kubernetes provider relaunches it for
the same try (`pod_launch_failure_retries`) and podtier gives the relaunch more memory."""

import os

_wanted = os.environ.get("PODTIER_E2E_STARTUP_BYTES", "") if os.getpid() == 1 else ""
BALLAST = b"x" * int(_wanted) if _wanted.isdigit() else b""  # written: resident
