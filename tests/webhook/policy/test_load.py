"""Several policy files: load order, merge, conflicts naming both files, and directories laid
out as ConfigMap volumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.policy import Cost, PolicyError
from podtier.webhook.policy.load import load_policy
from tests.webhook.policy.configmap import ConfigMapVolume

BASE = DEFAULT_POLICY.read_text()
OVERLAY = """
apiVersion: podtier.io/v1alpha1
kind: TierPolicy
metadata: {name: overlay}
spec:
  tiers:
    xl: {requests: {cpu: "8"}, limits: {cpu: "16"}, placement: [big, compute]}
  pools:
    big: {nodeSelector: {node-type: big}}
  rules:
    - {name: overlay rule, match: {namespaces: [big-*]}, tier: xl}
"""


def overlay(spec: str, name: str = "overlay") -> str:
    head = "apiVersion: podtier.io/v1alpha1\nkind: TierPolicy\n"
    return f"{head}metadata: {{name: {name}}}\nspec:\n{spec}"


def files(tmp_path: Path, **texts: str) -> list[Path]:
    out = []
    for name, text in texts.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        out.append(path)
    return out


def test_files_merge_in_the_order_given(tmp_path: Path) -> None:
    rule = "  rules: [{name: base rule, match: {namespaces: [big-*]}, tier: heavy}]\n"
    base, extra = files(tmp_path, base=BASE.replace("  rules: []\n", rule), extra=OVERLAY)
    policy = load_policy([base, extra])
    assert list(policy.tiers) == ["light", "medium", "heavy", "gpu", "xl"]
    assert list(policy.pools) == ["worker", "compute", "gpu", "big"]
    assert [r.name for r in policy.rules] == ["base rule", "overlay rule"]
    assert [r.source for r in policy.rules] == [str(base), str(extra)]
    assert policy.name == "default+overlay"
    assert policy.sources == (str(base), str(extra))
    reversed_order = load_policy([extra, base])
    assert [r.name for r in reversed_order.rules] == ["overlay rule", "base rule"]
    assert reversed_order.digest != policy.digest


@pytest.mark.parametrize(
    ("second", "field", "expected"),
    [
        pytest.param(
            overlay("  tiers:\n    medium: {requests: {cpu: '1'}, placement: [worker]}\n"),
            "spec.tiers.medium",
            "tier also defined in",
            id="tier",
        ),
        pytest.param(
            overlay("  pools:\n    worker: {nodeSelector: {a: b}}\n"),
            "spec.pools.worker",
            "pool also defined in",
            id="pool",
        ),
        pytest.param(
            overlay("  defaultTier: light\n"), "spec.defaultTier", "also set in", id="default-tier"
        ),
        pytest.param(overlay("  mode: audit\n"), "spec.mode", "also set in", id="mode"),
        pytest.param(
            overlay("  ceilings: {cpu: '8'}\n"), "spec.ceilings", "also set in", id="ceilings"
        ),
        pytest.param(
            overlay("  airflowPods: [{matchLabels: {a: b}}]\n"),
            "spec.airflowPods",
            "also set in",
            id="airflow-pods",
        ),
    ],
)
def test_conflicts_name_both_files(tmp_path: Path, second: str, field: str, expected: str) -> None:
    base, extra = files(tmp_path, base=BASE, extra=second)
    with pytest.raises(PolicyError) as err:
        load_policy([base, extra])
    assert err.value.source == str(extra)
    assert err.value.path == field
    assert f"{expected} {base}" in str(err.value)


def test_a_setting_missing_from_the_whole_set_names_the_first_file(tmp_path: Path) -> None:
    (only,) = files(tmp_path, only=OVERLAY)
    with pytest.raises(PolicyError, match=r"only\.yaml: spec\.airflowPods: is required"):
        load_policy([only])


def test_names_may_refer_to_another_file(tmp_path: Path) -> None:
    # The overlay's xl tier places on the base file's compute pool, and the other way round.
    base, extra = files(
        tmp_path, base=BASE.replace("placement: [gpu]", "placement: [gpu, big]"), extra=OVERLAY
    )
    assert load_policy([base, extra]).tiers["gpu"].placement == ("gpu", "big")


def test_directory_loads_yaml_in_name_order_and_skips_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "20-overlay.yaml").write_text(OVERLAY)
    (tmp_path / "10-default.yaml").write_text(BASE)
    (tmp_path / ".10-default.yaml.swp.yaml").write_text("not: [a policy")
    (tmp_path / "README.md").write_text("# notes")
    policy = load_policy([tmp_path])
    assert policy.sources == (str(tmp_path / "10-default.yaml"), str(tmp_path / "20-overlay.yaml"))


def test_configmap_volume_loads_each_file_once_through_its_symlink(tmp_path: Path) -> None:
    volume = ConfigMapVolume(
        tmp_path / "policy", {"00-default.yaml": BASE, "10-overlay.yaml": OVERLAY}
    )
    policy = load_policy([volume.directory])
    assert policy.sources == (
        str(volume.directory / "00-default.yaml"),
        str(volume.directory / "10-overlay.yaml"),
    )
    assert len(policy.rules) == 1


def test_a_directory_without_policy_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="holds no \\*.yaml policy files"):
        load_policy([tmp_path])


def test_pool_prices_and_the_currency_come_from_any_file_of_the_set(tmp_path: Path) -> None:
    priced = overlay(
        "  currency: EUR\n"
        "  pools:\n"
        "    big: {nodeSelector: {node-type: big}, cost: {cpuHour: 0.04, gpuHour: 2}}\n"
    )
    base, extra = files(tmp_path, base=BASE, extra=priced)
    policy = load_policy([base, extra])
    assert policy.currency == "EUR"
    assert policy.pools["big"].cost == Cost(cpu_hour=0.04, memory_gib_hour=0.0, gpu_hour=2.0)
    assert policy.pools["worker"].cost is None  # a pool without prices
    assert load_policy([base]).currency == ""
