"""Live headroom through a real `podtier serve`: no overbooking under concurrency, dryRun
reserves nothing, and a lost API server makes decisions fall back (and say so) until the
picture is correct again. The cluster is `tests/kubeapi.py`, which stands in for kube-apiserver."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import Counter

import httpx
import jsonpatch
import pytest

from tests.conftest import Server, client_context, review_of
from tests.kubeapi import KubeAPI
from tests.webhook.core.fakes import EXECUTOR_LABELS, airflow_pod
from tests.webhook.headroom.builders import as_list, node, pod

HEAVY_LABELS = {**EXECUTOR_LABELS, "tier": "heavy"}


def heavy_review(i: int, dry_run: bool = False) -> dict:
    p = airflow_pod(labels=HEAVY_LABELS)
    p["metadata"]["name"] = f"heavy-{i}"
    review = review_of(p, uid=f"uid-{i}")
    review["request"]["dryRun"] = dry_run
    return review


def pool_of(reply: httpx.Response) -> tuple[str, str]:
    """(pool, reason) from the annotations the patch writes on a pod that had none."""
    answer = reply.json()["response"]
    ops = json.loads(base64.b64decode(answer["patch"]))
    pod = jsonpatch.apply_patch(
        {"metadata": {}, "spec": {"containers": [{"name": "base"}]}},
        [op for op in ops if op["path"].startswith("/metadata")],
    )
    notes = pod["metadata"]["annotations"]
    return notes["podtier.io/pool"], notes["podtier.io/reason"]


async def post_all(server: Server, reviews: list[dict]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(
        base_url=server.url, verify=client_context(server.cert_dir), limits=limits, timeout=30
    ) as client:
        return await asyncio.gather(*(client.post("/mutate", json=r) for r in reviews))


@pytest.fixture(scope="module")
def room_for_ten(tmp_path_factory: pytest.TempPathFactory, cert_dir):
    """Five compute nodes with room for two heavy pods each (4 cpu, 16Gi), and worker nodes with
    room for all 200 (4 x 64): exactly ten heavy pods fit on compute."""
    items = [node(f"c-{i}", "compute", cpu="4", memory="16Gi") for i in range(5)]
    items += [node(f"w-{i}", "worker", cpu="128", memory="1Ti") for i in range(4)]
    dump = tmp_path_factory.mktemp("cluster") / "cluster.json"
    dump.write_text(json.dumps(as_list(*items)))
    return dump


@pytest.fixture()
def cluster_server(cert_dir, room_for_ten):
    srv = Server(cert_dir, ["--cluster", str(room_for_ten), "--reservation-ttl", "600"])
    srv.wait_ready()
    yield srv
    srv.stop()


def test_200_concurrent_heavy_admissions_give_exactly_10_on_compute(cluster_server):
    replies = asyncio.run(post_all(cluster_server, [heavy_review(i) for i in range(200)]))
    assert all(r.status_code == 200 for r in replies)
    pools = Counter(pool_of(r)[0] for r in replies)
    assert pools == {"compute": 10, "worker": 190}
    spilled = [reason for r in replies for pool, reason in [pool_of(r)] if pool == "worker"]
    assert all("no compute node has room" in reason for reason in spilled)
    assert all("warnings" not in r.json()["response"] for r in replies), "a spill is not a warning"


def test_dry_run_admissions_reserve_nothing(cluster_server):
    dry = asyncio.run(post_all(cluster_server, [heavy_review(i, dry_run=True) for i in range(200)]))
    assert Counter(pool_of(r)[0] for r in dry) == {"compute": 200}
    real = asyncio.run(post_all(cluster_server, [heavy_review(1000 + i) for i in range(11)]))
    assert Counter(pool_of(r)[0] for r in real) == {"compute": 10, "worker": 1}


def kubeconfig_for(api: KubeAPI, directory) -> str:
    path = directory / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": {"server": api.url}}],
                "users": [{"name": "test", "user": {"token": "t"}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                "current-context": "test",
            }
        )
    )
    return str(path)


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_lost_api_server_falls_back_then_recovers_to_a_correct_picture(cert_dir, tmp_path):
    api = KubeAPI().start()
    try:
        api.down()
        api.put(node("c-1", "compute", cpu="4"))
        api.put(node("w-1", "worker", cpu="16"))
        srv = Server(
            cert_dir,
            [
                "--cluster",
                "auto",
                "--kubeconfig",
                kubeconfig_for(api, tmp_path),
                "--stale-after",
                "2",
                "--reservation-ttl",
                "1",
            ],
            env={"KUBERNETES_SERVICE_HOST": ""},
        )
        try:
            srv.wait_ready()
            not_ready = srv.client.get("/readyz")
            assert not_ready.status_code == 503
            assert "headroom not synced yet" in not_ready.json()["reasons"]

            api.up()
            wait_for(lambda: srv.client.get("/readyz").status_code == 200)
            pool, reason = pool_of(srv.post("/mutate", heavy_review(1, dry_run=True)))
            assert (pool, reason.split("; ")[1]) == (
                "compute",
                "pool compute (pinned): node c-1 has room",
            )

            api.down()
            # While the API server is gone, compute fills up; podtier cannot know yet.
            api.put(pod("filler", "c-1", cpu="4", memory="1Gi"))

            def fell_back():
                return "headroom unknown" in pool_of(srv.post("/mutate", heavy_review(2, True)))[1]

            wait_for(fell_back)
            pool, reason = pool_of(srv.post("/mutate", heavy_review(3, dry_run=True)))
            assert pool == "compute" and "first in placement order; headroom unknown" in reason
            assert srv.client.get("/readyz").status_code == 200, "stale headroom is not unready"

            api.up()

            def recovered():
                pool, reason = pool_of(srv.post("/mutate", heavy_review(4, dry_run=True)))
                return pool == "worker" and "no compute node has room, node w-1 has" in reason

            wait_for(recovered)
        finally:
            srv.stop()
    finally:
        api.stop()


def gauge(server: Server, name: str, pool: str, resource: str) -> float:
    prefix = f'{name}{{pool="{pool}",resource="{resource}"}} '
    for line in server.client.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    raise AssertionError(f"no sample {prefix}")


def test_headroom_gauges_show_per_pool_free_capacity_and_follow_placements(cluster_server):
    largest = "podtier_headroom_largest_free"
    assert gauge(cluster_server, largest, "compute", "cpu") == 4.0
    assert gauge(cluster_server, "podtier_headroom_free", "compute", "cpu") == 20.0
    assert gauge(cluster_server, largest, "gpu", "nvidia.com/gpu") == 0.0
    asyncio.run(post_all(cluster_server, [heavy_review(i) for i in range(10)]))
    assert gauge(cluster_server, "podtier_headroom_free", "compute", "cpu") == 0.0
    assert gauge(cluster_server, largest, "compute", "memory") == 8 * 2**30


NAMESPACE_RULE = """
apiVersion: podtier.io/v1alpha1
kind: TierPolicy
metadata: {name: data-team}
spec:
  rules:
    - name: data team gets heavy
      match:
        namespaceSelector: {matchLabels: {team: data}}
      tier: heavy
"""


def namespace(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def tier_of(server: Server, ns: str) -> str:
    p = airflow_pod()
    p["metadata"]["namespace"] = ns
    answer = server.post("/mutate", review_of(p, uid=f"ns-{ns}")).json()["response"]
    ops = json.loads(base64.b64decode(answer["patch"]))
    pod = jsonpatch.apply_patch(p, ops)
    return pod["metadata"]["annotations"]["podtier.io/tier"]


def test_namespace_selector_rules_see_live_namespace_labels(cert_dir, tmp_path):
    from podtier.policies import DEFAULT_POLICY

    (tmp_path / "team.yaml").write_text(NAMESPACE_RULE)
    api = KubeAPI().start()
    try:
        api.put(node("w-1", "worker", cpu="16"))
        api.put(namespace("data-eng", team="data"))
        api.put(namespace("web", team="web"))
        srv = Server(
            cert_dir,
            [
                "--cluster",
                "auto",
                "--kubeconfig",
                kubeconfig_for(api, tmp_path),
                "--namespace-labels",
                "--policy",
                str(DEFAULT_POLICY),
                "--policy",
                str(tmp_path / "team.yaml"),
            ],
            env={"KUBERNETES_SERVICE_HOST": ""},
        )
        try:
            srv.wait_ready()
            wait_for(lambda: srv.client.get("/readyz").status_code == 200)
            assert tier_of(srv, "data-eng") == "heavy"
            assert tier_of(srv, "web") == "medium"
            api.put(namespace("web", team="data"))  # relabelled: the watch brings it
            wait_for(lambda: tier_of(srv, "web") == "heavy")
        finally:
            srv.stop()
    finally:
        api.stop()


def test_unwatched_namespace_labels_are_warned_about_at_start(cert_dir, tmp_path):
    from podtier.policies import DEFAULT_POLICY

    (tmp_path / "team.yaml").write_text(NAMESPACE_RULE)
    srv = Server(
        cert_dir,
        ["--cluster", "none", "--policy", str(DEFAULT_POLICY)]
        + ["--policy", str(tmp_path / "team.yaml")],
    )
    try:
        srv.wait_ready()
        assert tier_of(srv, "data-eng") == "medium"
        assert "rules select namespaces by labels team" in srv.logs()
    finally:
        srv.stop()
