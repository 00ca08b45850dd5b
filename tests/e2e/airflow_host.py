"""Real Airflow on the host for the real-node suite: its own venv (tests/e2e/airflow/
requirements.txt, never a podtier dependency), a sqlite metadata DB, and the three processes a
deployment runs: `airflow scheduler` (with the cncf-kubernetes provider's KubernetesExecutor,
creating worker pods through the API server, so through podtier), `airflow dag-processor` and
`airflow api-server` (its execution API is what the worker pods report to, at an address of
the host the pods reach)."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent / "airflow"
REQUIREMENTS = HERE / "requirements.txt"
DAGS = HERE / "dags"
WORKER_DAGS = "/opt/airflow/dags"  # where the worker image has the same files


def cache_dir() -> Path:
    configured = os.environ.get("PODTIER_E2E_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "podtier-e2e"


def airflow_venv(log: Path) -> Path:
    """The python of a venv with the pinned Airflow, made once per pin set and Python
    (`PODTIER_E2E_CACHE`, default ~/.cache/podtier-e2e)."""
    key = hashlib.sha256(REQUIREMENTS.read_bytes() + sys.version.encode()).hexdigest()[:12]
    venv = cache_dir() / f"airflow-{key}"
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        for command in (
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
        ):
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=1200)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed; log: {log}")
    (venv / ".complete").touch()
    return python


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Airflow:
    """Airflow's scheduler, dag-processor and api-server on the host, for one cluster."""

    python: Path
    home: Path
    kubeconfig: Path
    namespace: str
    worker_image: str
    host_ip: str
    port: int = 0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host_ip)
        repository, _, tag = self.worker_image.rpartition(":")
        template = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "placeholder-name"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "base",
                        "image": self.worker_image,
                        "imagePullPolicy": "IfNotPresent",
                        "env": [
                            {
                                "name": "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                                "value": f"{self.api_url}/execution/",
                            },
                            {"name": "AIRFLOW__CORE__DAGS_FOLDER", "value": WORKER_DAGS},
                        ],
                    }
                ],
            },
        }
        (self.home / "pod_template.yaml").write_text(yaml.safe_dump(template))
        settings = {
            "CORE__DAGS_FOLDER": str(DAGS),
            "CORE__EXECUTOR": "KubernetesExecutor",
            "CORE__LOAD_EXAMPLES": "False",
            "CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "API__SECRET_KEY": secrets.token_hex(16),
            "API__BASE_URL": self.api_url,
            "KUBERNETES_EXECUTOR__NAMESPACE": self.namespace,
            "KUBERNETES_EXECUTOR__IN_CLUSTER": "False",
            "KUBERNETES_EXECUTOR__CONFIG_FILE": str(self.kubeconfig),
            "KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE": str(self.home / "pod_template.yaml"),
            "KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY": repository,
            "KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG": tag,
            "KUBERNETES_EXECUTOR__DELETE_WORKER_PODS": "False",
            "SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.pop("KUBECONFIG", None)
        env["AIRFLOW_HOME"] = str(self.home)
        env.update({f"AIRFLOW__{key}": value for key, value in settings.items()})
        self.env = env

    @property
    def api_url(self) -> str:
        return f"http://{self.host_ip}:{self.port}"

    def airflow(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [str(self.python), "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed: {done.stderr[-3000:]}")
        return done.stdout

    def start(self) -> None:
        self.airflow("db", "migrate")
        commands = {
            "api-server": ["api-server", "--host", self.host_ip, "--port", str(self.port)],
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
        }
        for name, args in commands.items():
            with (self.home / f"{name}.log").open("wb") as log:
                self.processes[name] = subprocess.Popen(
                    [str(self.python), "-m", "airflow", *args],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def check_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(
                    f"airflow {name} exited {process.returncode}: {self.log(name)}"
                )

    def log(self, name: str, tail: int = 4000) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")[-tail:]

    def wait_api(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            try:
                url = f"{self.api_url}/api/v2/monitor/health"
                with urllib.request.urlopen(url, timeout=3) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"api-server not up: {self.log('api-server')}"
            time.sleep(1)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows from the metadata DB (read-only; retried while a writer holds the lock)."""
        for _ in range(50):
            try:
                uri = f"file:{self.home / 'airflow.db'}?mode=ro"
                with sqlite3.connect(uri, uri=True, timeout=5) as db:
                    return list(db.execute(sql, params))
            except sqlite3.OperationalError:
                time.sleep(0.2)
        raise AssertionError(f"metadata DB locked: {sql}")

    def wait_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Until the dag-processor has parsed and serialized the DAG."""
        deadline = time.monotonic() + timeout
        while not self.query("SELECT 1 FROM serialized_dag WHERE dag_id = ?", dag_id):
            self.check_running()
            assert time.monotonic() < deadline, (
                f"DAG {dag_id} not parsed: {self.log('dag-processor')}"
            )
            time.sleep(1)

    def trigger(self, dag_id: str, run_id: str) -> None:
        self.airflow("dags", "trigger", dag_id, "--run-id", run_id)

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """The DagRun's final state (success or failed)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.query(
                "SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id
            )
            if rows and rows[0][0] in ("success", "failed"):
                return str(rows[0][0])
            self.check_running()
            if time.monotonic() > deadline:
                return f"{rows[0][0] if rows else 'absent'} after {timeout:g} s"
            time.sleep(1)

    def tries(self, dag_id: str, run_id: str) -> dict[str, list[tuple[int, str]]]:
        """{task_id: [(try_number, state), ...]} over the task instances' history and now."""
        found: dict[str, list[tuple[int, str]]] = {}
        for table in ("task_instance_history", "task_instance"):
            rows = self.query(
                f"SELECT task_id, try_number, state FROM {table} "  # noqa: S608 (two fixed names)
                "WHERE dag_id = ? AND run_id = ? ORDER BY try_number",
                dag_id,
                run_id,
            )
            for task_id, try_number, state in rows:
                found.setdefault(task_id, []).append((int(try_number), str(state)))
        return found

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(5)
