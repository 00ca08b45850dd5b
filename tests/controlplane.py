"""A real Kubernetes control plane on loopback for tests: etcd, kube-apiserver, kube-scheduler.

The binaries come from `$KUBEBUILDER_ASSETS` (the envtest convention: a folder holding `etcd`,
`kube-apiserver` and `kube-scheduler`); without it the `control_plane` fixture skips and says why.

Two Kubernetes versions (`KUBE_VERSIONS`): "1.28" from `$KUBEBUILDER_ASSETS`, and "1.34" from
`$KUBEBUILDER_ASSETS_1_34`, or else unpacked once per session by `kube-assets-1.34/unpack.sh`
found beside the 1.28 folder or in the repository's `../shared` (etcd comes from the 1.28
folder). The `versioned_control_plane` fixture runs a module once on each; `ControlPlane.version`
says which one a test got. What differs on 1.34 (README of kube-assets-1.34): sidecar containers
cannot be turned off, `pods/resize` is served (in-place resize on by default), pods carry
`metadata.generation`, ValidatingAdmissionPolicy is served on admissionregistration v1, and
the service-account volume has a fourth (OpenShift) source.

What runs, each on free ports of 127.0.0.1, in one temp dir, logging to a file there:

- etcd (one member, its own data dir);
- kube-apiserver, serving HTTPS with a certificate made by `certs.generate` for 127.0.0.1,
  authenticating one admin bearer token (group `system:masters`) from a token file, with RBAC
  authorization, a service-account key pair, and the default admission plugins (so pods get the
  `ServiceAccount`, `DefaultTolerationSeconds` and `TaintNodesByCondition` treatment and admission
  webhooks are called as in a cluster);
- kube-scheduler (default profile, no leader election), which binds pods to nodes for real.

`ControlPlane.kubeconfig` is a kubeconfig file (server URL, CA, token) that the `kubernetes`
client, the scheduler and `podtier serve --cluster auto --kubeconfig FILE` all use.

There is no kubelet, no controller manager and no node controller, so a test must do itself
what they would do in a cluster:

- create Nodes and write their status (capacity, allocatable, Ready condition), then lift the
  `node.kubernetes.io/not-ready` taint the API server puts on every new Node, as the node
  controller does once a node is Ready: `add_node` does all three;
- write the status a kubelet would write for a pod (phase, the container's exit code or reason
  such as OOMKilled) through the `pods/status` subresource: `set_pod_status`. Bound pods stay
  Pending and never run otherwise;
- give a namespace its `default` ServiceAccount (the ServiceAccount admission plugin refuses
  pods without it; the controller manager would make it): `ensure_namespace`;
- delete pods with a zero grace period (no kubelet ever confirms a graceful deletion) and never
  delete a namespace (no namespace controller would finish it): `reset` does this between tests.

One control plane serves a whole test module (`control_plane` is module-scoped): each test
calls `reset()` first (webhook configurations, pods and nodes go; namespaces stay).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime as dt
import functools
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes.client.exceptions import ApiException

from podtier.certs.generate import make_ca, make_serving_cert, write_pair

ASSETS_VARIABLE = "KUBEBUILDER_ASSETS"
ASSETS_VARIABLES = {"1.28": ASSETS_VARIABLE, "1.34": "KUBEBUILDER_ASSETS_1_34"}
KUBE_VERSIONS = tuple(ASSETS_VARIABLES)
UNPACK_1_34 = Path("kube-assets-1.34") / "unpack.sh"
REPO_ROOT = Path(__file__).resolve().parent.parent
BINARIES = ("etcd", "kube-apiserver", "kube-scheduler")
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
PROBE_NAMESPACE = "controlplane-probe"
LOG_TAIL_LINES = 60


class ControlPlaneError(RuntimeError):
    """The control plane did not come up; the message carries the components' log tails."""


@dataclass(frozen=True)
class PodOutcome:
    """Where the scheduler put a pod: `node` once bound; `unschedulable` is the scheduler's
    message while the pod carries PodScheduled=False with reason Unschedulable."""

    name: str
    node: str | None
    unschedulable: str | None
    annotations: Mapping[str, str]
    node_selector: Mapping[str, str]


def missing_assets(version: str = "1.28") -> str | None:
    """Why the control plane of `version` cannot run here, or None when it can."""
    folder = assets_folder(version)
    variable = ASSETS_VARIABLES[version]
    if not folder:
        return f"${variable} is not set (a folder with {', '.join(BINARIES)})" + (
            f", and no {UNPACK_1_34} was found or it failed" if version == "1.34" else ""
        )
    missing = [b for b in BINARIES if not os.access(Path(folder) / b, os.X_OK)]
    if missing:
        return f"${variable}={folder} has no executable {', '.join(missing)}"
    return None


def assets_folder(version: str = "1.28") -> str | None:
    """The folder of `version`'s binaries: its variable, else (1.34) what unpack.sh makes."""
    folder = os.environ.get(ASSETS_VARIABLES[version])
    if folder or version == "1.28":
        return folder
    return _unpacked_1_34()


@functools.cache
def _unpacked_1_34() -> str | None:
    """Run `kube-assets-1.34/unpack.sh` once per session (it reuses a folder that already
    matches its checksums: about 3 s; the first time 15-30 s) and return its folder."""
    places = [REPO_ROOT.parent / "shared"]
    if os.environ.get(ASSETS_VARIABLE):
        places.insert(0, Path(os.environ[ASSETS_VARIABLE]).resolve().parent)
    script = next((p / UNPACK_1_34 for p in places if (p / UNPACK_1_34).is_file()), None)
    if script is None:
        return None
    try:
        done = subprocess.run(
            [str(script)], capture_output=True, text=True, timeout=300, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    folder = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return folder or None


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held together while choosing)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


# Loaded once here: the child between fork and exec should run as little as possible.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: have the kernel SIGKILL it when the thread that started it
    dies, so not even a SIGKILLed pytest leaks a control plane (start it from the main thread)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


class Process:
    """One component: a subprocess with its log file, stopped by pid only."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        self.popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent if _LIBC is not None else None,
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check(self) -> None:
        if not self.alive():
            raise ControlPlaneError(
                f"{self.name} exited with code {self.popen.returncode}; "
                f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
            )

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        self._log.close()


class ControlPlane:
    """etcd + kube-apiserver + kube-scheduler on loopback; see the module docstring."""

    def __init__(
        self,
        assets: Path | str,
        workdir: Path | str | None = None,
        feature_gates: Mapping[str, bool] | None = None,
        version: str = "1.28",
    ) -> None:
        self.assets = Path(assets)
        self.version = version  # which of KUBE_VERSIONS the binaries are
        # Given to kube-apiserver and kube-scheduler alike (e.g. {"SidecarContainers": True}).
        self.feature_gates = dict(feature_gates or {})
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="podtier-controlplane-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = self.workdir / "pki"
        self.kubeconfig = self.workdir / "kubeconfig.yaml"
        self.token = secrets.token_hex(24)
        self.etcd_port, self.etcd_peer_port, self.port, self.scheduler_port = free_ports(4)
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca_pem = b""
        self.processes: dict[str, Process] = {}
        self.startup_seconds: float | None = None
        self.startup_steps: dict[str, float] = {}  # step -> seconds since start()
        self._client: kubernetes.client.ApiClient | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60.0) -> ControlPlane:
        started = time.monotonic()
        deadline = started + timeout

        def step(name: str) -> None:
            self.startup_steps[name] = round(time.monotonic() - started, 2)

        self._write_files()
        self._start_etcd()
        self._start_apiserver()
        self._start_scheduler()  # it waits for the API server by itself
        self._wait_apiserver_ready(deadline)
        step("apiserver ready")
        self._wait_scheduler_healthy(deadline)
        step("scheduler healthy")
        self._probe_scheduling(deadline)
        step("scheduler binding")
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop every process (scheduler, API server, etcd, in that order); safe to call twice
        and after a failed start."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()  # type: ignore[no-untyped-call]
            self._client = None
        for name in ("kube-scheduler", "kube-apiserver", "etcd"):
            process = self.processes.pop(name, None)
            if process is not None:
                process.stop()

    def remove_workdir(self) -> None:
        """Delete the temp dir, when this object made it (not a workdir it was given)."""
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, kind: object, *exc: object) -> None:
        self.stop()
        if kind is None:  # after a failure the logs stay for reading
            self.remove_workdir()

    def log_tails(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of each component's log, for failure reports."""
        parts = []
        for name in ("etcd", "kube-apiserver", "kube-scheduler"):
            path = self.workdir / f"{name}.log"
            if path.exists():
                parts.append(f"----- {name} ({path}) -----\n{_tail(path, lines)}")
        return "\n".join(parts)

    # ------------------------------------------------------------------ start-up steps

    def _write_files(self) -> None:
        now = dt.datetime.now(dt.UTC)
        ca = make_ca(now, common_name="controlplane-ca")
        serving = make_serving_cert(
            ca,
            now,
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
            ip_addresses=["127.0.0.1", "10.0.0.1"],
        )
        write_pair(self.pki, ca, serving)
        self.ca_pem = ca.cert_pem
        sa_key = ec.generate_private_key(ec.SECP256R1())
        (self.pki / "sa.key").write_bytes(
            sa_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (self.pki / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        (self.pki / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        os.chmod(self.pki / "tokens.csv", 0o600)
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "controlplane",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(ca.cert_pem).decode(),
                    },
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [
                {"name": "controlplane", "context": {"cluster": "controlplane", "user": "admin"}}
            ],
            "current-context": "controlplane",
        }
        self.kubeconfig.write_text(yaml.safe_dump(kubeconfig))
        os.chmod(self.kubeconfig, 0o600)

    def _spawn(self, name: str, *args: str) -> None:
        argv = [str(self.assets / name), *args]
        self.processes[name] = Process(name, argv, self.workdir / f"{name}.log")

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        self._spawn(
            "etcd",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--logger=zap",
            "--log-level=warn",
        )

    def _start_apiserver(self) -> None:
        pki = self.pki
        self._spawn(
            "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={pki / 'tls.crt'}",
            f"--tls-private-key-file={pki / 'tls.key'}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--endpoint-reconciler-type=none",
            "--v=1",
            *self._feature_gate_args(),
        )

    def _start_scheduler(self) -> None:
        self._spawn(
            "kube-scheduler",
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.scheduler_port}",
            f"--cert-dir={self.workdir / 'scheduler-certs'}",
            "--v=1",
            *self._feature_gate_args(),
        )

    def _feature_gate_args(self) -> list[str]:
        if not self.feature_gates:
            return []
        gates = ",".join(f"{k}={str(v).lower()}" for k, v in sorted(self.feature_gates.items()))
        return [f"--feature-gates={gates}"]

    def _wait(
        self, what: str, ready: Callable[[], bool], deadline: float, components: Iterable[str]
    ) -> None:
        last_error = ""
        while True:
            for name in components:
                self.processes[name].check()
            try:
                if ready():
                    return
            except (httpx.HTTPError, ApiException, OSError) as err:
                last_error = f" (last error: {err})"
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{what} timed out{last_error}\n{self.log_tails()}")
            time.sleep(0.1)

    def _wait_apiserver_ready(self, deadline: float) -> None:
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(verify=context, headers=headers, timeout=5) as http:

            def ready() -> bool:
                return http.get(f"{self.url}/readyz").status_code == 200

            self._wait("kube-apiserver /readyz", ready, deadline, ("etcd", "kube-apiserver"))

    def _wait_scheduler_healthy(self, deadline: float) -> None:
        # The scheduler serves a self-signed certificate of its own: only its liveness is read.
        with httpx.Client(verify=False, timeout=5) as http:

            def healthy() -> bool:
                url = f"https://127.0.0.1:{self.scheduler_port}/healthz"
                return http.get(url).status_code == 200

            self._wait("kube-scheduler /healthz", healthy, deadline, self.processes)

    def _probe_scheduling(self, deadline: float) -> None:
        """Healthy is not scheduling: bind one pod to one node, then remove both."""
        self.ensure_namespace(PROBE_NAMESPACE)
        node = "controlplane-probe-node"
        self.add_node(node, labels={"controlplane-probe": "true"}, cpu="1", memory="1Gi")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "probe"},
            "spec": {
                "nodeSelector": {"controlplane-probe": "true"},
                "containers": [{"name": "probe", "image": "probe"}],
            },
        }
        self.core.create_namespaced_pod(PROBE_NAMESPACE, pod)
        self._wait(
            "kube-scheduler binding a probe pod",
            lambda: self.outcomes(PROBE_NAMESPACE, ["probe"])["probe"].node == node,
            deadline,
            self.processes,
        )
        self.core.delete_namespaced_pod("probe", PROBE_NAMESPACE, grace_period_seconds=0)
        self.delete_node(node)

    # ------------------------------------------------------------------ clients

    def api_client(self, pool_size: int | None = None) -> kubernetes.client.ApiClient:
        """A new `kubernetes` client configured from `self.kubeconfig` (the caller closes it);
        `pool_size`: connections kept for concurrent requests from several threads."""
        configuration = kubernetes.client.Configuration()
        if pool_size is not None:
            configuration.connection_pool_maxsize = pool_size
        return kubernetes.config.new_client_from_config(
            config_file=str(self.kubeconfig), client_configuration=configuration
        )

    @property
    def client(self) -> kubernetes.client.ApiClient:
        """A shared client for the helpers below."""
        if self._client is None:
            self._client = self.api_client()
        return self._client

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.client)

    @functools.cached_property
    def server_version(self) -> tuple[int, int]:
        """(major, minor) as the running API server reports it (`/version`): what the binaries
        are, whatever `version` the plane was asked for."""
        info = kubernetes.client.VersionApi(self.client).get_code()
        return int(info.major), int("".join(ch for ch in info.minor if ch.isdigit()))

    def sidecars_by_default(self) -> bool:
        """Init containers with `restartPolicy: Always` run as sidecars without a feature gate
        (1.29 on; locked on from 1.33). On 1.28 the API server drops the field unless the
        SidecarContainers gate is on."""
        return self.server_version >= (1, 29) or bool(self.feature_gates.get("SidecarContainers"))

    @property
    def admission(self) -> kubernetes.client.AdmissionregistrationV1Api:
        return kubernetes.client.AdmissionregistrationV1Api(self.client)

    # ------------------------------------------------------------------ namespaces

    def ensure_namespace(self, name: str) -> None:
        """The namespace and its `default` ServiceAccount (no controller makes it here)."""
        core = self.core
        with _unless(409):  # AlreadyExists
            core.create_namespace({"metadata": {"name": name}})
        with _unless(409):
            core.create_namespaced_service_account(name, {"metadata": {"name": "default"}})

    # ------------------------------------------------------------------ custom resources

    def install_crd(self, crd: Mapping[str, Any], timeout: float = 30.0) -> None:
        """Create a CustomResourceDefinition (kept if it exists: `reset` leaves CRDs alone) and
        wait until the API server serves it (condition Established)."""
        extensions = kubernetes.client.ApiextensionsV1Api(self.client)
        with _unless(409):
            extensions.create_custom_resource_definition(dict(crd))
        deadline = time.monotonic() + timeout
        while True:
            found = extensions.read_custom_resource_definition(crd["metadata"]["name"])
            conditions = found.status.conditions or ()
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"CRD {crd['metadata']['name']} not established in {timeout:g} s"
                )
            time.sleep(0.1)

    # ------------------------------------------------------------------ nodes

    def add_node(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        taints: Sequence[Mapping[str, str]] = (),
        cpu: str = "4",
        memory: str = "16Gi",
        pods: int = 110,
        extra: Mapping[str, str] | None = None,
        ready: bool = True,
        unschedulable: bool = False,
    ) -> dict[str, Any]:
        """Create a Node as a kubelet registers one, write its status (capacity = allocatable:
        cpu, memory, pods and `extra` such as `{"nvidia.com/gpu": "1"}`; the Ready condition),
        and, when Ready, lift the not-ready taint as the node controller would. Returns the
        Node as the API server then has it."""
        core = self.core
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, **(labels or {})},
            },
            "spec": {"taints": [dict(t) for t in taints], "unschedulable": unschedulable},
        }
        core.create_node(body)
        capacity = {"cpu": cpu, "memory": memory, "pods": str(pods), **(extra or {})}
        now = _now()
        condition = {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "message": "written by tests/controlplane.py",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        status = {"capacity": capacity, "allocatable": capacity, "conditions": [condition]}
        core.patch_node_status(name, {"status": status})
        node = core.read_node(name)
        if ready:
            kept = [t.to_dict() for t in node.spec.taints or () if t.key != NOT_READY_TAINT]
            patch = [
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": node.metadata.resource_version,
                },
                {"op": "add", "path": "/spec/taints", "value": [_taint_json(t) for t in kept]},
            ]
            core.patch_node(name, patch)
        return self.client.sanitize_for_serialization(core.read_node(name))

    def delete_node(self, name: str) -> None:
        with _unless(404):
            self.core.delete_node(name)

    # ------------------------------------------------------------------ pods

    def set_pod_status(
        self,
        namespace: str,
        name: str,
        phase: str,
        exit_code: int | None = None,
        reason: str | None = None,
        container: str | None = None,
    ) -> dict[str, Any]:
        """Write the status a kubelet would (through `pods/status`): the phase and, for the
        pod's first container (or `container`), a terminated state with `exit_code` and
        `reason` (e.g. 137 and "OOMKilled") when given, else running for phase Running and
        waiting otherwise. Returns the pod as the API server then has it."""
        core = self.core
        pod = core.read_namespaced_pod(name, namespace)
        spec_container = next(
            (c for c in pod.spec.containers if container in (None, c.name)), pod.spec.containers[0]
        )
        now = _now()
        if exit_code is not None or reason is not None:
            state: dict[str, Any] = {
                "terminated": {
                    "exitCode": exit_code if exit_code is not None else 0,
                    "reason": reason or ("Completed" if not exit_code else "Error"),
                    "startedAt": now,
                    "finishedAt": now,
                }
            }
        elif phase == "Running":
            state = {"running": {"startedAt": now}}
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
        container_status = {
            "name": spec_container.name,
            "image": spec_container.image,
            "imageID": "",
            "ready": phase == "Running",
            "restartCount": 0,
            "started": phase == "Running",
            "state": state,
        }
        status = {"phase": phase, "startTime": now, "containerStatuses": [container_status]}
        if pod.spec.node_name:
            status["hostIP"] = "127.0.0.1"
        core.patch_namespaced_pod_status(name, namespace, {"status": status})
        return self.client.sanitize_for_serialization(core.read_namespaced_pod(name, namespace))

    def outcomes(self, namespace: str, names: Iterable[str] | None = None) -> dict[str, PodOutcome]:
        """For each pod (all of the namespace's by default): its node once bound, or the
        scheduler's Unschedulable message. A pod that does not exist is left out."""
        wanted = set(names) if names is not None else None
        found = {}
        for pod in self.core.list_namespaced_pod(namespace).items:
            if wanted is not None and pod.metadata.name not in wanted:
                continue
            unschedulable = None
            for condition in pod.status.conditions or ():
                if (
                    condition.type == "PodScheduled"
                    and condition.status == "False"
                    and condition.reason == "Unschedulable"
                ):
                    unschedulable = condition.message or "Unschedulable"
            found[pod.metadata.name] = PodOutcome(
                name=pod.metadata.name,
                node=pod.spec.node_name or None,
                unschedulable=None if pod.spec.node_name else unschedulable,
                annotations=dict(pod.metadata.annotations or {}),
                node_selector=dict(pod.spec.node_selector or {}),
            )
        return found

    def wait_settled(
        self, namespace: str, names: Sequence[str], timeout: float = 60.0
    ) -> dict[str, PodOutcome]:
        """Wait until the scheduler has bound each pod or found it Unschedulable against every
        node there is now (its message counts them: "0/6 nodes are available: ..."), so a pod
        judged before the scheduler saw the latest nodes is not taken for a final answer."""
        deadline = time.monotonic() + timeout
        while True:
            count = len(self.core.list_node().items)
            every_node = f"0/{count} nodes are available" if count else "no nodes available"
            outcomes = self.outcomes(namespace, names)
            pending = sorted(
                name
                for name in set(names)
                if name not in outcomes
                or not (outcomes[name].node or every_node in (outcomes[name].unschedulable or ""))
            )
            if not pending:
                return outcomes
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the scheduler left {len(pending)} pod(s) neither bound nor Unschedulable "
                    f"on all {count} nodes after {timeout:g} s: {pending[:10]}"
                )
            time.sleep(0.2)

    def wait_bound(
        self, namespace: str, names: Sequence[str], timeout: float = 60.0
    ) -> dict[str, str]:
        """Wait until every pod is bound; returns pod name -> node name. Fails with each
        unbound pod's Unschedulable message (if any) on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            outcomes = self.outcomes(namespace, names)
            if len(outcomes) == len(set(names)) and all(o.node for o in outcomes.values()):
                return {name: str(o.node) for name, o in outcomes.items()}
            if time.monotonic() > deadline:
                unbound = {
                    n: (outcomes[n].unschedulable if n in outcomes else "no such pod")
                    for n in names
                    if n not in outcomes or not outcomes[n].node
                }
                raise AssertionError(f"pods not bound after {timeout:g} s: {unbound}")
            time.sleep(0.2)

    # ------------------------------------------------------------------ webhooks

    def register_webhooks(
        self,
        url_base: str,
        ca_pem: bytes | str,
        namespaces: Sequence[str],
        *,
        name: str = "podtier",
        failure_policy: str = "Fail",
        timeout_seconds: int = 10,
        airflow_pods_only: bool = True,
    ) -> None:
        """Register `url_base`/mutate and /validate as the chart does (pods CREATE only,
        admission v1, sideEffects None, reinvocationPolicy IfNeeded, the chart's Airflow
        matchConditions), for pods in `namespaces`, with `failure_policy` (Fail by default, so
        a test notices a webhook that is down). Call `wait_webhooks_active` before relying on
        them: the API server picks new configurations up asynchronously."""
        ca = ca_pem.encode() if isinstance(ca_pem, str) else ca_pem
        common: dict[str, Any] = {
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "timeoutSeconds": timeout_seconds,
            "failurePolicy": failure_policy,
            "rules": [
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE"],
                    "resources": ["pods"],
                    "scope": "Namespaced",
                }
            ],
            "namespaceSelector": {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "In",
                        "values": list(namespaces),
                    }
                ]
            },
        }
        if airflow_pods_only:
            common["matchConditions"] = [{"name": "airflow-pods", "expression": AIRFLOW_PODS_CEL}]

        def client_config(path: str) -> dict[str, str]:
            return {
                "url": f"{url_base.rstrip('/')}{path}",
                "caBundle": base64.b64encode(ca).decode(),
            }

        admission = self.admission
        admission.create_mutating_webhook_configuration(
            {
                "metadata": {"name": name},
                "webhooks": [
                    {
                        "name": "mutate.podtier.io",
                        "clientConfig": client_config("/mutate"),
                        "reinvocationPolicy": "IfNeeded",
                        **common,
                    }
                ],
            }
        )
        admission.create_validating_webhook_configuration(
            {
                "metadata": {"name": name},
                "webhooks": [
                    {
                        "name": "validate.podtier.io",
                        "clientConfig": client_config("/validate"),
                        **common,
                    }
                ],
            }
        )

    def wait_webhooks_active(self, namespace: str, timeout: float = 30.0) -> None:
        """Dry-run two canary Airflow pods in `namespace` until the API server calls podtier
        for both: one comes back with podtier's annotations (mutating webhook), one limited to
        1000 cpu (over any tier and ceiling) comes back denied by podtier (validating webhook)."""
        deadline = time.monotonic() + timeout
        core = self.core
        mutated = denied = False
        last = ""
        while True:
            if not mutated:
                pod = core.create_namespaced_pod(
                    namespace, canary_pod("canary-mutate"), dry_run="All"
                )
                mutated = "podtier.io/tier" in (pod.metadata.annotations or {})
                last = "the mutating webhook was not called"
            if mutated and not denied:
                bad = canary_pod("canary-validate", requests={"cpu": "1"}, limits={"cpu": "1000"})
                try:
                    core.create_namespaced_pod(namespace, bad, dry_run="All")
                    last = "the validating webhook was not called"
                except ApiException as err:
                    denied = "podtier" in str(err.body)
                    last = f"unexpected answer {err.status}: {err.body}"
            if mutated and denied:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"webhooks not active after {timeout:g} s: {last}")
            time.sleep(0.1)

    # ------------------------------------------------------------------ between tests

    def reset(self, timeout: float = 30.0) -> None:
        """Delete every webhook configuration, pod and node (namespaces stay)."""
        admission = self.admission
        admission.delete_collection_mutating_webhook_configuration()
        admission.delete_collection_validating_webhook_configuration()
        core = self.core
        namespaces = {p.metadata.namespace for p in core.list_pod_for_all_namespaces().items}
        for namespace in namespaces:
            core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
        core.delete_collection_node()
        deadline = time.monotonic() + timeout
        while core.list_pod_for_all_namespaces().items or core.list_node().items:
            if time.monotonic() > deadline:
                raise AssertionError("reset: pods or nodes still there after deletion")
            time.sleep(0.1)


AIRFLOW_PODS_CEL = (
    "has(object.metadata.labels) && ("
    "('kubernetes_executor' in object.metadata.labels && "
    "object.metadata.labels['kubernetes_executor'] == 'True') || "
    "'airflow-worker' in object.metadata.labels || "
    "('kubernetes_pod_operator' in object.metadata.labels && "
    "object.metadata.labels['kubernetes_pod_operator'] == 'True'))"
)


def canary_pod(
    name: str, requests: Mapping[str, str] | None = None, limits: Mapping[str, str] | None = None
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = dict(requests)
    if limits:
        resources["limits"] = dict(limits)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"kubernetes_executor": "True", "dag_id": "canary", "task_id": "canary"},
        },
        "spec": {"containers": [{"name": "base", "image": "canary", "resources": resources}]},
    }


def _taint_json(taint: Mapping[str, Any]) -> dict[str, Any]:
    out = {"key": taint["key"], "effect": taint["effect"]}
    if taint.get("value"):
        out["value"] = taint["value"]
    return out


@contextlib.contextmanager
def _unless(status: int) -> Iterator[None]:
    """Ignore an ApiException with this HTTP status (409 AlreadyExists, 404 NotFound)."""
    try:
        yield
    except ApiException as err:
        if err.status != status:
            raise


@pytest.fixture(scope="module")
def control_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """One control plane per test module (tests call `reset()` first); skipped without the binaries.
    Stopped at the end of the module even when a test fails; logs are printed on failure."""
    yield from running_control_plane(request, tmp_path_factory)


@pytest.fixture(scope="module", params=KUBE_VERSIONS)
def versioned_control_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """`control_plane` once per Kubernetes version (1.28, 1.34): the module's tests run on
    each. 1.28 gets the InPlacePodVerticalScaling gate (alpha there; on by default in 1.34)."""
    gates = {"InPlacePodVerticalScaling": True} if request.param == "1.28" else None
    yield from running_control_plane(request, tmp_path_factory, gates, request.param)


def running_control_plane(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    feature_gates: Mapping[str, bool] | None = None,
    version: str = "1.28",
) -> Iterator[ControlPlane]:
    """The body of `control_plane`, for a module fixture of its own (e.g. with feature gates)."""
    why = missing_assets(version)
    if why is not None:
        pytest.skip(f"no Kubernetes {version} control plane binaries: {why}")
    folder = assets_folder(version)
    assert folder is not None
    plane = ControlPlane(folder, tmp_path_factory.mktemp("controlplane"), feature_gates, version)
    request.addfinalizer(plane.stop)  # runs even if start() fails half way
    failed_before = request.session.testsfailed
    plane.start()
    _report(
        request,
        f"Kubernetes {'.'.join(map(str, plane.server_version))} control plane up in "
        f"{plane.startup_seconds:.1f} s at {plane.url}",
    )
    yield plane
    if request.session.testsfailed > failed_before:
        _report(request, f"control plane logs ({plane.workdir}):\n{plane.log_tails()}")


def _report(request: pytest.FixtureRequest, text: str) -> None:
    """Print past pytest's output capture (fixture set-up and tear-down are captured too)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    disabled = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with disabled:
        print(f"\n{text}", file=sys.stderr, flush=True)


def wait(what: str, check: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    """`check()`'s first truthy value, asked every `every` seconds; fails naming `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(every)
