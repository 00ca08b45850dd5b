"""cgroup v1 stand-in for cgroup v2's `memory.oom.group`, loaded at every Python start in the
worker image (podtier_e2e_worker.pth).

On cgroup v2 a container over its memory limit is killed whole: the kubelet reports
`OOMKilled` with exit code 137 and the KubernetesExecutor sees the pod fail. On cgroup v1 (the
real-node hosts of this suite) the kernel kills one process, the largest: Airflow's task process,
a child of the supervisor. The supervisor survives, exits 0, and Airflow 3.3.2 leaves the task
instance running until its heartbeat times out (5 minutes by default). To get v2's behaviour,
the container's main process (PID 1, the supervisor) makes itself the OOM killer's first choice
after each fork (oom_score_adj 1000) and the child takes 0 (the floor it inherited): the kernel
kills PID 1 and with it the container. Nothing happens on a cgroup v2 node."""

import os


def _be_chosen() -> None:
    with open("/proc/self/oom_score_adj", "w") as adj:
        adj.write("1000")


def _step_back() -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("0")
    except OSError:
        pass


if os.getpid() == 1 and not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
    os.register_at_fork(after_in_parent=_be_chosen, after_in_child=_step_back)
