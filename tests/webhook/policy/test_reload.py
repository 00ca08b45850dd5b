"""Hot reload: a valid edit is swapped in whole, an invalid one keeps the last good policy,
is logged with file and field and counted; in process and in a running `podtier serve`."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import jsonpatch
import pytest
from prometheus_client import REGISTRY

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.policy import Policy
from podtier.webhook.policy.load import load_policy
from podtier.webhook.policy.reload import PolicyReloader, policy_reload_job, watch_targets
from tests.conftest import Server, client_context, load_review, make_cert_dir
from tests.webhook.policy.configmap import ConfigMapVolume

BASE = DEFAULT_POLICY.read_text()
LIGHT_DEFAULT = BASE.replace("defaultTier: medium", "defaultTier: light")
BROKEN_MODE = BASE.replace("mode: enforce", "mode: warn")
OVERLAY = """apiVersion: podtier.io/v1alpha1
kind: TierPolicy
metadata: {name: overlay}
spec:
  rules: [{name: sales are heavy, match: {dagId: sales_*}, tier: heavy}]
"""


@dataclass
class Holder:
    policy: Policy


def reloads(result: str) -> float:
    return REGISTRY.get_sample_value("podtier_policy_reloads_total", {"result": result}) or 0.0


def last_reload_successful() -> float | None:
    return REGISTRY.get_sample_value("podtier_policy_last_reload_successful")


def volume_with(tmp_path: Path, **data: str) -> tuple[ConfigMapVolume, Holder, PolicyReloader]:
    volume = ConfigMapVolume(tmp_path / "policy", data)
    holder = Holder(load_policy([volume.directory]))
    return volume, holder, PolicyReloader((volume.directory,), holder)


def test_valid_edit_is_swapped_in(tmp_path: Path) -> None:
    volume, holder, reloader = volume_with(tmp_path, **{"default.yaml": BASE})
    before, successes = holder.policy, reloads("success")
    assert reloader.reload() == "unchanged"
    volume.update({"default.yaml": LIGHT_DEFAULT})
    assert reloader.reload() == "success"
    assert holder.policy.default_tier == "light"
    assert holder.policy.digest != before.digest
    assert reloads("success") == successes + 1


def test_invalid_edit_keeps_the_last_good_policy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    volume, holder, reloader = volume_with(tmp_path, **{"default.yaml": BASE})
    good, errors = holder.policy, reloads("error")
    volume.update({"default.yaml": BROKEN_MODE})
    with caplog.at_level(logging.ERROR, logger="podtier.policy"):
        assert reloader.reload() == "error"
    assert holder.policy is good
    assert reloads("error") == errors + 1
    assert last_reload_successful() == 0  # what the PodtierPolicyReloadFailing alert reads
    (record,) = [r for r in caplog.records if r.name == "podtier.policy"]
    assert record.file == str(volume.directory / "default.yaml")  # type: ignore[attr-defined]
    assert record.field == "spec.mode"  # type: ignore[attr-defined]
    assert '"warn" is not one of enforce, audit' in record.getMessage()
    # Another event with the same broken content is not a new failure.
    assert reloader.reload() == "unchanged"
    assert reloads("error") == errors + 1
    # Fixing the file is picked up.
    volume.update({"default.yaml": LIGHT_DEFAULT})
    assert reloader.reload() == "success"
    assert holder.policy.default_tier == "light"
    assert last_reload_successful() == 1
    # Putting back the very policy that serves also ends the failing state.
    volume.update({"default.yaml": BROKEN_MODE})
    assert reloader.reload() == "error"
    volume.update({"default.yaml": LIGHT_DEFAULT})
    assert reloader.reload() == "unchanged"
    assert last_reload_successful() == 1


def test_a_configmap_update_of_several_files_is_one_reload(tmp_path: Path) -> None:
    volume, holder, reloader = volume_with(tmp_path, **{"00-default.yaml": BASE})
    volume.update({"00-default.yaml": LIGHT_DEFAULT, "10-overlay.yaml": OVERLAY})
    assert reloader.reload() == "success"
    assert holder.policy.default_tier == "light"
    assert [r.name for r in holder.policy.rules] == ["sales are heavy"]
    # Removing a key removes its file, and its rules with it.
    volume.update({"00-default.yaml": LIGHT_DEFAULT})
    assert reloader.reload() == "success"
    assert holder.policy.rules == ()


def test_a_conflict_between_files_keeps_the_last_good_policy(tmp_path: Path) -> None:
    volume, holder, reloader = volume_with(tmp_path, **{"00-default.yaml": BASE})
    good = holder.policy
    volume.update(
        {"00-default.yaml": BASE, "10-twice.yaml": BASE.replace("name: default", "name: twice")}
    )
    assert reloader.reload() == "error"
    assert holder.policy is good


def test_file_paths_are_watched_through_their_directory(tmp_path: Path) -> None:
    file = tmp_path / "conf" / "policy.yaml"
    file.parent.mkdir()
    file.write_text(BASE)
    assert watch_targets([file, file.parent, tmp_path]) == [file.parent, tmp_path]


def test_the_background_job_reloads_on_a_configmap_swap(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path / "policy", {"default.yaml": BASE})
    holder = Holder(load_policy([volume.directory]))

    async def scenario() -> str:
        job = asyncio.create_task(policy_reload_job([volume.directory])(holder)())
        try:
            await asyncio.sleep(0.5)  # the watch is set up
            volume.update({"default.yaml": LIGHT_DEFAULT})
            for _ in range(100):
                if holder.policy.default_tier == "light":
                    break
                await asyncio.sleep(0.1)
            return holder.policy.default_tier
        finally:
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)

    assert asyncio.run(scenario()) == "light"


# ---- a running server ---------------------------------------------------------------------


class RequestLoop(threading.Thread):
    """Posts the fixture-a review (no resources, no tier asked) over TLS until stopped,
    recording the tier of each answer and every failure."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.review = load_review("a")
        self.tiers: list[str] = []
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        ctx = client_context(self.server.cert_dir)
        with httpx.Client(base_url=self.server.url, verify=ctx, timeout=10) as client:
            while not self.halt.is_set():
                try:
                    answer = client.post("/mutate", json=self.review)
                    response = answer.json()["response"]
                    if (
                        answer.status_code != 200
                        or not response["allowed"]
                        or "patch" not in response
                    ):
                        self.failures.append(f"{answer.status_code} {answer.text[:200]}")
                        continue
                    self.tiers.append(response["auditAnnotations"]["tier"])
                except Exception as err:
                    self.failures.append(repr(err))

    def wait_for_tier(self, tier: str, timeout: float = 10.0) -> None:
        seen = len(self.tiers)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if tier in self.tiers[seen:]:
                return
            time.sleep(0.05)
        raise AssertionError(f"no {tier} decision within {timeout} s: {self.tiers[-5:]}")

    def recent(self, count: int) -> list[str]:
        start = len(self.tiers)
        while len(self.tiers) < start + count:
            time.sleep(0.02)
        return self.tiers[start : start + count]


def metric(server: Server, result: str) -> float:
    text = server.client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(f'podtier_policy_reloads_total{{result="{result}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_a_running_server_reloads_without_failing_a_request(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path / "policy", {"00-default.yaml": BASE})
    server = Server(
        make_cert_dir(tmp_path / "certs"), ["--cluster", "none", "--policy", str(volume.directory)]
    )
    loop = RequestLoop(server)
    try:
        server.wait_ready()
        loop.start()
        assert set(loop.recent(5)) == {"medium"}

        # A valid edit: the next decisions use it, within seconds.
        volume.update({"00-default.yaml": LIGHT_DEFAULT})
        loop.wait_for_tier("light")
        assert set(loop.recent(5)) == {"light"}
        assert metric(server, "success") == 1

        # A second file arrives in the same ConfigMap: its rule applies.
        volume.update({"00-default.yaml": LIGHT_DEFAULT, "10-overlay.yaml": OVERLAY})
        loop.wait_for_tier("heavy")

        # An invalid edit: the last good policy keeps serving, the error is counted and logged.
        volume.update({"00-default.yaml": BROKEN_MODE, "10-overlay.yaml": OVERLAY})
        deadline = time.monotonic() + 10
        while metric(server, "error") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metric(server, "error") == 1
        assert set(loop.recent(5)) == {"heavy"}
        ready = server.client.get("/readyz")
        assert ready.status_code == 200
        lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
        failed = [line for line in lines if line.get("msg", "").startswith("policy reload failed")]
        assert failed, server.logs()
        assert failed[-1]["file"] == str(volume.directory / "00-default.yaml")
        assert failed[-1]["field"] == "spec.mode"
        assert ready.json()["policy"].startswith("default+overlay@sha256:")
    finally:
        loop.halt.set()
        loop.join(10)
        server.stop()
    assert loop.failures == []
    assert len(loop.tiers) > 20


def test_patch_of_a_reloaded_policy_names_the_new_revision(tmp_path: Path) -> None:
    """podtier.io/policy names the policy and its content hash: anyone can see which revision
    decided."""
    volume = ConfigMapVolume(tmp_path / "policy", {"default.yaml": BASE})
    server = Server(
        make_cert_dir(tmp_path / "certs"), ["--cluster", "none", "--policy", str(volume.directory)]
    )
    try:
        server.wait_ready()
        first = _policy_annotation(server)
        volume.update({"default.yaml": LIGHT_DEFAULT})
        deadline = time.monotonic() + 10
        while _policy_annotation(server) == first and time.monotonic() < deadline:
            time.sleep(0.05)
        second = _policy_annotation(server)
    finally:
        server.stop()
    assert first == load_policy([DEFAULT_POLICY]).ident
    assert second != first and second.startswith("default@sha256:")


def _policy_annotation(server: Server) -> str:
    review = load_review("a")
    response = server.post("/mutate", review).json()["response"]
    ops = json.loads(base64.b64decode(response["patch"]))
    pod = jsonpatch.apply_patch(review["request"]["object"], ops)
    return str(pod["metadata"]["annotations"]["podtier.io/policy"])
