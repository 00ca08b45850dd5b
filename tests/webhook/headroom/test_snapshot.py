"""`--cluster FILE`: what `kubectl get nodes,pods -A -o json` (or `-o yaml`) prints, and
`open_headroom`'s other choices."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from podtier.webhook.core.capacity import NoHeadroom
from podtier.webhook.headroom import (
    HeadroomConfigError,
    LiveHeadroom,
    StaticHeadroom,
    open_headroom,
)
from tests.kubeapi import KubeAPI
from tests.webhook.headroom.builders import POOLS, as_list, node, pod, requests
from tests.webhook.headroom.feeds import wait_for

CLUSTER = as_list(
    node("w1"),
    node("c1", pool="compute", cpu="16", memory="64Gi"),
    pod("a", "w1", cpu="3"),
    pod("b", "c1", cpu="15"),
    {"kind": "Service", "apiVersion": "v1", "metadata": {"name": "ignored"}},
)


def decide_pools(path: Path) -> dict[str, str | None]:
    headroom = open_headroom(str(path))
    assert isinstance(headroom, StaticHeadroom) and headroom.ready()
    with headroom.transaction(time.monotonic()) as view:
        assert view.status.known and str(path) in view.status.reason
        return {
            pool: view.find_node(*POOLS[pool], requests(cpu="1")) for pool in ("worker", "compute")
        }


@pytest.mark.parametrize(
    "dump",
    [
        pytest.param(lambda doc: json.dumps(doc, indent=4, sort_keys=True), id="kubectl-json"),
        pytest.param(lambda doc: json.dumps(doc, indent=4), id="json-unsorted"),
        pytest.param(lambda doc: json.dumps(doc), id="json-compact"),
        pytest.param(lambda doc: yaml.safe_dump(doc), id="yaml"),
    ],
)
def test_kubectl_dump_gives_the_same_picture_as_the_cluster(tmp_path: Path, dump) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cluster"
    path.write_text(dump(CLUSTER))
    assert decide_pools(path) == {"worker": "w1", "compute": "c1"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_real_kubectl_output_gives_the_live_picture(tmp_path: Path) -> None:
    with KubeAPI() as api:
        for obj in CLUSTER["items"][:-1]:
            api.put(obj)
        api.put(pod("c", "w1", cpu="1", namespace="other"))
        kubeconfig = write_kubeconfig(tmp_path, api.url)
        dump = subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfig), "get", "nodes,pods", "-A", "-o", "json"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    path = tmp_path / "cluster.json"
    path.write_bytes(dump)
    headroom = open_headroom(str(path))
    assert headroom.state.pods.keys() == {"airflow/a", "airflow/b", "other/c"}  # type: ignore[union-attr]
    assert decide_pools(path) == {"worker": None, "compute": "c1"}  # w1: 3 + 1 of 4 cpu used


def write_kubeconfig(directory: Path, server: str) -> Path:
    path = directory / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "clusters": [{"name": "test", "cluster": {"server": server}}],
                "users": [{"name": "test", "user": {"token": "t"}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
            }
        )
    )
    return path


def test_a_file_never_goes_stale(tmp_path: Path) -> None:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(CLUSTER))
    headroom = open_headroom(str(path), stale_after=1)
    assert headroom.status(time.monotonic() + 3600).known  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("{not json", "not valid JSON", id="broken-json"),
        pytest.param("- a\n- b\n", "expected a v1 List", id="yaml-list"),
        pytest.param('{"kind": "Pod"}', 'kind: "Pod" is not a List', id="single-object"),
        pytest.param('{"kind": "List", "items": 3}', "items: expected a list, got int", id="items"),
        pytest.param(
            json.dumps(as_list(node("w1"), pod("x", "w1", cpu="lots")), indent=4, sort_keys=True),
            'Pod airflow/x: spec.containers[0].resources.requests.cpu: "lots" is not a quantity',
            id="bad-quantity-kubectl-layout",
        ),
        pytest.param(
            json.dumps(as_list(node("w1"), pod("x", "w1", cpu="lots"))),
            'Pod airflow/x: spec.containers[0].resources.requests.cpu: "lots" is not a quantity',
            id="bad-quantity",
        ),
    ],
)
def test_bad_files_are_named_with_field_and_value(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "cluster.json"
    path.write_text(content)
    with pytest.raises(HeadroomConfigError) as err:
        open_headroom(str(path))
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(HeadroomConfigError, match="no such file .*expected none, auto"):
        open_headroom(str(tmp_path / "nope.json"))


def test_none_is_ready_and_unknown() -> None:
    headroom = open_headroom("none")
    assert isinstance(headroom, NoHeadroom) and headroom.ready()
    with headroom.transaction(0.0) as view:
        assert not view.status.known and "disabled" in view.status.reason


def test_auto_uses_the_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with KubeAPI() as api:
        api.put(node("w1"))
        kubeconfig = write_kubeconfig(tmp_path, api.url)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        headroom = open_headroom("auto")
        assert isinstance(headroom, LiveHeadroom)
        headroom.start()
        try:
            wait_for(headroom.ready, what="first sync")
            assert headroom.state.nodes.keys() == {"w1"}
        finally:
            headroom.stop()


def test_auto_without_any_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(HeadroomConfigError, match="not running in a cluster"):
        open_headroom("auto", kubeconfig=str(tmp_path / "missing"))
