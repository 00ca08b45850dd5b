"""A Kubernetes cluster whose nodes really run pods, for the end-to-end suite (tests/e2e/).

The suite needs two things only: **a cluster** (a kubeconfig) and **a way to build and load
images** into it. Either

- the machine's own real-node cluster, `../shared/realnode` beside the repository (or the folder
  in `PODTIER_REALNODE`): `up.sh` starts it (two kubelets with containerd and runc, Kubernetes
  1.34), images are built with buildah and copied in with `load-image.sh`, and `down.sh` stops it
  when the session ends, whatever happens (a finalizer, `atexit`, SIGTERM, and a marker file
  `.ci/run` traps on). `PODTIER_E2E_KEEP_CLUSTER=1` leaves it running for the next session.
- or a cluster you have, kind for instance:

      PODTIER_E2E_KUBECONFIG=~/.kube/config \\
      PODTIER_E2E_LOAD_IMAGE="kind load docker-image --name podtier" \\
      PODTIER_E2E_BUILD="docker build" PODTIER_E2E_HOST_IP=172.18.0.1 \\
      python -m pytest -m realnode tests/e2e

  (after `docker pull python:3.11-slim-bookworm`, the base of the images and the image of the
  tests' own pods). `PODTIER_E2E_HOST_IP` is an address of this machine the cluster's pods
  can reach (Airflow's execution API and Prometheus bind it); the nodes need podtier's pool
  labels (`node-type=worker`, and `node-type=compute-optimized` with taint
  `workload=heavy:NoSchedule`).

`skip_reason()` says why there is no cluster to have (not root, no realnode folder, ...);
`cluster(work)` is a context manager giving the `Cluster` (raising `NoKubelet` when the machine
cannot run one after all: no containerd). API, all used by tests/e2e/conftest.py:

- `Cluster.api()`: a `kubernetes` ApiClient for it; `Cluster.kubectl(*args)`;
- `Cluster.build(tag, context, dockerfile)`: an image built and loaded into every node, skipped
  when an image of that tag exists (tags carry a hash of what went in: `content_tag`);
- `cadvisor_prometheus(cluster, work) -> Prometheus`: Debian's `prometheus` on the host scraping
  both kubelets' `/metrics/cadvisor` (a ServiceAccount token allowed `nodes/metrics`), listening
  on the host address pods reach; `.url`, `.query(promql)`, `.stop()`.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes

ROOT = Path(__file__).resolve().parent.parent
PYTHON_IMAGE = "docker.io/library/python:3.11-slim-bookworm"


@dataclass
class Cluster:
    """A cluster and the commands that put images into it."""

    kubeconfig: Path
    kubectl_bin: str
    build_command: list[str]  # + ["-t", TAG, "-f", DOCKERFILE, CONTEXT]
    load_command: list[str]  # + [IMAGE...]
    host_ip: str  # an address of this machine that pods reach
    node_ips: dict[str, str] = field(default_factory=dict)  # node name -> kubelet address
    ca_file: Path | None = None  # the cluster CA (kubelets' serving certificates)
    env: dict[str, str] = field(default_factory=dict)  # for the build and load commands
    realnode: Path | None = None  # the realnode scripts, when this is that cluster
    timings: dict[str, float] = field(default_factory=dict)  # seconds, for the report

    def api(self) -> kubernetes.client.ApiClient:
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(str(self.kubeconfig), client_configuration=config)
        return kubernetes.client.ApiClient(config)

    def command_env(self) -> dict[str, str]:
        return {**os.environ, **self.env, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        done = subprocess.run(
            [self.kubectl_bin, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.command_env(),
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def image_exists(self, tag: str) -> bool:
        if self.build_command[:1] == ["buildah"]:
            check = ["buildah", "inspect", "--type", "image", tag]
        elif self.build_command[:1] in (["docker"], ["podman"]):
            check = [self.build_command[0], "image", "inspect", tag]
        else:
            return False
        found = subprocess.run(check, capture_output=True, env=self.command_env())
        return found.returncode == 0

    def build(
        self, tag: str, context: Path, dockerfile: Path | None = None, *, load: bool = True
    ) -> float:
        """Build `tag` (unless it exists) and load it into the nodes; seconds spent building."""
        started = time.monotonic()
        if not self.image_exists(tag):
            command = [*self.build_command, "-t", tag]
            command += ["-f", str(dockerfile or context / "Dockerfile"), str(context)]
            run_logged(command, self.command_env(), f"build {tag}", timeout=1200)
        built = time.monotonic() - started
        if load:
            self.load(tag)
        return built

    def load(self, *images: str) -> None:
        run_logged([*self.load_command, *images], self.command_env(), "load images", timeout=600)


def run_logged(command: list[str], env: dict[str, str], what: str, timeout: float) -> str:
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {shlex.join(command)}\n{tail}")
    return done.stdout


def content_tag(name: str, paths: Iterable[Path], *extra: str) -> str:
    """`name:e2e-HASH`, HASH over the files (every file under a folder) and `extra` strings:
    the same inputs give the same tag, so a built image is reused."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts:
                continue
            digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes())
    for text in extra:
        digest.update(text.encode())
    return f"{name}:e2e-{digest.hexdigest()[:12]}"


# ------------------------------------------------------------------------- which cluster


def realnode_dir() -> Path | None:
    configured = os.environ.get("PODTIER_REALNODE")
    candidates = [Path(configured)] if configured else [ROOT.parent / "shared" / "realnode"]
    return next((p for p in candidates if (p / "up.sh").is_file()), None)


def skip_reason() -> str | None:
    """Why this machine cannot give the suite a cluster, or None."""
    if os.environ.get("PODTIER_E2E_KUBECONFIG"):
        if not os.environ.get("PODTIER_E2E_LOAD_IMAGE"):
            return "PODTIER_E2E_KUBECONFIG is set but PODTIER_E2E_LOAD_IMAGE is not"
        return None
    if not sys.platform.startswith("linux"):
        return "real nodes need Linux (or set PODTIER_E2E_KUBECONFIG for a cluster you have)"
    scripts = realnode_dir()
    if scripts is None:
        return (
            "no ../shared/realnode beside the repository (PODTIER_REALNODE) and no "
            "PODTIER_E2E_KUBECONFIG: no cluster to run pods on"
        )
    if os.geteuid() != 0:
        return "starting kubelets needs root (or set PODTIER_E2E_KUBECONFIG)"
    if not Path("/sys/fs/cgroup").is_dir():
        return "no cgroup filesystem at /sys/fs/cgroup: no kubelet can run here"
    return None


def existing_cluster() -> Cluster:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError("PODTIER_E2E_KUBECONFIG needs kubectl on PATH")
    return Cluster(
        kubeconfig=Path(os.environ["PODTIER_E2E_KUBECONFIG"]).expanduser(),
        kubectl_bin=kubectl,
        build_command=shlex.split(os.environ.get("PODTIER_E2E_BUILD", "docker build")),
        load_command=shlex.split(os.environ["PODTIER_E2E_LOAD_IMAGE"]),
        host_ip=os.environ.get("PODTIER_E2E_HOST_IP", "172.18.0.1"),
    )


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line.removeprefix("export ").partition("=")
            values[key] = value
    return values


class Realnode:
    """Starts ../shared/realnode, and makes sure `down.sh` runs once, whatever ends the
    session."""

    def __init__(self, scripts: Path, log: Path) -> None:
        self.scripts, self.log = scripts, log
        self.marker = Path(os.environ.get("PODTIER_E2E_DOWN_MARKER", "/tmp/podtier-e2e-up"))
        self.started = False
        self.keep = os.environ.get("PODTIER_E2E_KEEP_CLUSTER") == "1"

    def script(self, name: str, *args: str, timeout: float = 900) -> None:
        with self.log.open("a") as log:
            log.write(f"\n$ {name} {' '.join(args)}\n")
            log.flush()
            done = subprocess.run(
                [str(self.scripts / name), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if done.returncode != 0:
            tail = "\n".join(self.log.read_text().splitlines()[-25:])
            raise RuntimeError(f"{name} failed (exit {done.returncode}); {self.log}:\n{tail}")

    def up(self) -> Cluster:
        timings: dict[str, float] = {}
        if not self.keep:  # .ci/run's trap runs down.sh while this file exists
            self.marker.write_text(str(self.scripts))
        self.started = True
        atexit.register(self.down)
        previous = signal.getsignal(signal.SIGTERM)

        def on_term(signum: int, frame: Any) -> None:
            self.down()
            if callable(previous):
                previous(signum, frame)
            raise SystemExit(143)

        signal.signal(signal.SIGTERM, on_term)
        started = time.monotonic()
        self.script("up.sh")
        timings["cluster up"] = time.monotonic() - started
        env = read_env_file(Path(os.environ.get("REALNODE_DIR", "/var/lib/realnode")) / "env")
        started = time.monotonic()
        self.script("build-images.sh", "all", timeout=1200)
        timings["python stand-in image"] = time.monotonic() - started
        storage = {"CONTAINERS_STORAGE_CONF": env["CONTAINERS_STORAGE_CONF"]}
        return Cluster(
            kubeconfig=Path(env["KUBECONFIG"]),
            kubectl_bin=env["REALNODE_KUBECTL"],
            build_command=["buildah", "bud", "--pull=never", "--network=host", "--layers"],
            load_command=[env["REALNODE_LOAD_IMAGE"]],
            host_ip=env["REALNODE_WORKER_IP"],
            node_ips={"worker": env["REALNODE_WORKER_IP"], "compute": env["REALNODE_COMPUTE_IP"]},
            ca_file=Path(env["REALNODE_CA"]),
            env=storage,
            realnode=self.scripts,
            timings=timings,
        )

    def down(self) -> None:
        if not self.started or self.keep:
            return
        self.started = False
        with contextlib.suppress(Exception):
            self.script("down.sh", timeout=300)
        self.marker.unlink(missing_ok=True)


@contextlib.contextmanager
def cluster(work: Path) -> Iterator[Cluster]:
    """The cluster of this session (see the module docstring); stopped afterwards if started."""
    if os.environ.get("PODTIER_E2E_KUBECONFIG"):
        yield existing_cluster()
        return
    scripts = realnode_dir()
    assert scripts is not None
    node = Realnode(scripts, work / "realnode.log")
    try:
        try:
            started = node.up()
        except RuntimeError as err:
            if shutil.which("containerd") is None or shutil.which("buildah") is None:
                raise NoKubelet("containerd or buildah missing and not installable here") from err
            raise
        yield started
    finally:
        node.down()


class NoKubelet(RuntimeError):
    """The machine cannot run the cluster (reason in the message): the suite skips."""


# ------------------------------------------------------------------------- Prometheus


SCRAPER_RBAC = """\
apiVersion: v1
kind: ServiceAccount
metadata: {name: podtier-e2e-scraper, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: podtier-e2e-node-metrics}
rules:
  - apiGroups: [""]
    resources: [nodes/metrics, nodes/stats, nodes/proxy]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: podtier-e2e-scraper}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: podtier-e2e-node-metrics}
subjects: [{kind: ServiceAccount, name: podtier-e2e-scraper, namespace: default}]
"""


@dataclass
class Prometheus:
    """Debian's prometheus scraping the kubelets' cAdvisor every second."""

    url: str  # http://HOST_IP:PORT, reachable from the host and from pods
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector ([{"metric": {...}, "value": [t, "v"]}, ...])."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (test cluster)
            body = json.loads(answer.read())
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def cadvisor_prometheus(cluster: Cluster, work: Path) -> Prometheus:
    """Start `prometheus` (Debian's package, on PATH) scraping every kubelet's
    `/metrics/cadvisor` over HTTPS with a ServiceAccount token that may get `nodes/metrics`,
    listening on `cluster.host_ip` (a random port) so pods reach it too. Raises FileNotFoundError
    without the binary. Needs `cluster.node_ips` and `cluster.ca_file` (the realnode cluster)."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise FileNotFoundError("no prometheus on PATH (apt-get install prometheus)")
    if not cluster.node_ips or cluster.ca_file is None:
        raise FileNotFoundError("the kubelets' addresses and CA are known for realnode only")
    cluster.kubectl("apply", "-f", "-", stdin=SCRAPER_RBAC)
    token = cluster.kubectl("create", "token", "podtier-e2e-scraper", "-n", "default")
    token = token.strip()
    work.mkdir(parents=True, exist_ok=True)
    (work / "token").write_text(token)
    (work / "token").chmod(0o600)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "cadvisor",
                "scheme": "https",
                "metrics_path": "/metrics/cadvisor",
                "authorization": {"credentials_file": str(work / "token")},
                "tls_config": {"ca_file": str(cluster.ca_file)},
                "static_configs": [
                    {"targets": [f"{ip}:10250"], "labels": {"node": name}}
                    for name, ip in sorted(cluster.node_ips.items())
                ],
            }
        ],
    }
    (work / "prometheus.yml").write_text(json.dumps(config))
    port = free_port(cluster.host_ip)
    log = work / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address={cluster.host_ip}:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    prometheus = Prometheus(f"http://{cluster.host_ip}:{port}", process, log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2) as answer:  # noqa: S310
                if answer.status == 200:
                    return prometheus
        except OSError:
            pass
        if time.monotonic() > deadline:
            prometheus.stop()
            raise RuntimeError(f"prometheus not ready in 60 s: {log.read_text()[-2000:]}")
        time.sleep(0.3)
