"""What the chart gives a platform team's Prometheus and Grafana: a ServiceMonitor or PodMonitor
that reaches /metrics the way podtier serves it, the prometheus.io/* annotations, a
PrometheusRule carrying files/prometheus-rules.yaml, and the dashboard ConfigMap for Grafana's
sidecar. Off by default; the schema refuses bad values, naming the key."""

from __future__ import annotations

import json
from typing import Any

import helm_python
import pytest
import yaml

from tests.chart.chart_rendering import (
    CHART_DIR,
    Manifest,
    chart,
    container,
    of_kind,
    one,
    render,
    serving_certificate,
)

MONITORING_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")
RULES = yaml.safe_load((CHART_DIR / "files" / "prometheus-rules.yaml").read_text())
DASHBOARD = json.loads((CHART_DIR / "files" / "dashboard.json").read_text())
EVERYTHING_ON: dict[str, Any] = {
    "metrics": {
        "annotations": True,
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    }
}


def dashboard_configmaps(objects: list[Manifest]) -> list[Manifest]:
    return [o for o in of_kind(objects, "ConfigMap") if "podtier.json" in o.get("data", {})]


def endpoint(objects: list[Manifest], kind: str) -> Manifest:
    spec = one(objects, kind)["spec"]
    (found,) = spec["endpoints"] if kind == "ServiceMonitor" else spec["podMetricsEndpoints"]
    result: Manifest = found
    return result


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({}, id="defaults"),
        *[
            pytest.param(yaml.safe_load(p.read_text()) or {}, id=p.stem)
            for p in sorted((CHART_DIR / "ci").glob("*-values.yaml"))
        ],
    ],
)
def test_nothing_for_monitoring_unless_asked(values: dict[str, Any]) -> None:
    objects = render(values)
    assert [o["kind"] for o in objects if o["kind"] in MONITORING_KINDS] == []
    assert dashboard_configmaps(objects) == []
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"].get("annotations", {})
    assert not any(key.startswith("prometheus.io/") for key in annotations)


def test_everything_asked_for_is_rendered() -> None:
    objects = render(EVERYTHING_ON)
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert one(objects, kind)["apiVersion"] == "monitoring.coreos.com/v1"
    assert of_kind(objects, "PodMonitor") == []
    assert len(dashboard_configmaps(objects)) == 1
    with_pods = {
        "metrics": {
            **EVERYTHING_ON["metrics"],
            "serviceMonitor": {"enabled": False},
            "podMonitor": {"enabled": True},
        }
    }
    assert one(render(with_pods), "PodMonitor")["apiVersion"] == "monitoring.coreos.com/v1"
    assert of_kind(render(with_pods), "ServiceMonitor") == []


def test_both_monitors_at_once_are_refused_saying_why() -> None:
    both = {"metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}}
    with pytest.raises(helm_python.HelmError, match="scraped twice"):
        render(both)


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PodMonitor"])
def test_monitors_scrape_https_verified_against_the_serving_ca_by_default(kind: str) -> None:
    key = "serviceMonitor" if kind == "ServiceMonitor" else "podMonitor"
    objects = render({"metrics": {key: {"enabled": True, "labels": {"release": "kps"}}}})
    monitor = one(objects, kind)
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["metadata"]["namespace"] == "podtier"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["podtier"]}
    # the monitor selects the objects the chart made (the Service, or the Deployment's pods)
    target = one(objects, "Service") if kind == "ServiceMonitor" else one(objects, "Deployment")
    labels = (
        target["metadata"]["labels"]
        if kind == "ServiceMonitor"
        else target["spec"]["template"]["metadata"]["labels"]
    )
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    scrape = endpoint(objects, kind)
    # the port by name: the Service's port and the container's port are both called https
    assert scrape["port"] == "https"
    assert "https" in [p["name"] for p in one(objects, "Service")["spec"]["ports"]]
    assert "https" in [p["name"] for p in container(objects)["ports"]]
    assert (scrape["scheme"], scrape["path"]) == ("https", "/metrics")
    assert (scrape["interval"], scrape["scrapeTimeout"], scrape["honorLabels"]) == (
        "30s",
        "10s",
        True,
    )
    tls = scrape["tlsConfig"]
    assert tls["ca"] == {"secret": {"name": "podtier-tls", "key": "ca.crt"}}
    # the name the serving certificate carries (the scrape goes to pod IPs, not that name)
    assert tls["serverName"] == "podtier.podtier.svc"
    assert "insecureSkipVerify" not in tls
    assert {"targetLabel": "job", "replacement": "podtier"} in scrape["relabelings"]


def test_the_server_name_is_one_the_serving_certificate_carries() -> None:
    objects = render(
        {"metrics": {"serviceMonitor": {"enabled": True}}, "certs": {"mode": "cert-manager"}}
    )
    scrape = endpoint(objects, "ServiceMonitor")
    certificate = serving_certificate(objects)
    assert scrape["tlsConfig"]["serverName"] in certificate["spec"]["dnsNames"]
    assert scrape["tlsConfig"]["ca"]["secret"]["name"] == certificate["spec"]["secretName"]


def test_with_a_metrics_port_monitors_and_annotations_use_plain_http_there() -> None:
    for kind, key in (("ServiceMonitor", "serviceMonitor"), ("PodMonitor", "podMonitor")):
        monitor = {"enabled": True, "interval": "15s", "scrapeTimeout": "5s"}
        objects = render({"metrics": {"port": 9090, "annotations": True, key: monitor}})
        scrape = endpoint(objects, kind)
        assert (scrape["port"], scrape["scheme"]) == ("metrics", "http")
        assert (scrape["interval"], scrape["scrapeTimeout"]) == ("15s", "5s")
        assert "tlsConfig" not in scrape
    assert "--metrics-port=9090" in container(objects)["args"]
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container(objects)[
        "ports"
    ]
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9090"
    assert annotations["prometheus.io/scheme"] == "http"


def test_annotations_point_at_the_https_port_and_keep_the_users_own() -> None:
    objects = render({"metrics": {"annotations": True}, "podAnnotations": {"team": "data"}})
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "team": "data",
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8443",
        "prometheus.io/path": "/metrics",
        "prometheus.io/scheme": "https",
    }
    assert {"name": "https", "containerPort": 8443, "protocol": "TCP"} in container(objects)[
        "ports"
    ]


def test_own_tls_settings_and_relabelings_replace_and_extend_the_defaults() -> None:
    tls = {"insecureSkipVerify": True}
    drop = {"action": "drop", "sourceLabels": ["__name__"], "regex": "podtier_reservations"}
    extra = {"targetLabel": "cluster", "replacement": "eu-1"}
    monitor = {
        "enabled": True,
        "tlsConfig": tls,
        "relabelings": [extra],
        "metricRelabelings": [drop],
    }
    scrape = endpoint(render({"metrics": {"podMonitor": monitor}}), "PodMonitor")
    assert scrape["tlsConfig"] == tls
    assert scrape["relabelings"] == [{"targetLabel": "job", "replacement": "podtier"}, extra]
    assert scrape["metricRelabelings"] == [drop]


def test_the_prometheus_rule_carries_the_plain_rule_file_unchanged() -> None:
    rule = one(render({"metrics": {"prometheusRule": {"enabled": True}}}), "PrometheusRule")
    assert rule["spec"]["groups"] == RULES["groups"]


def test_rule_labels_reach_every_alert_and_the_object_without_overriding_severity() -> None:
    values = {
        "metrics": {
            "prometheusRule": {
                "enabled": True,
                "labels": {"release": "kps"},
                "additionalRuleLabels": {"team": "data-platform", "severity": "page-me"},
            }
        }
    }
    rule = one(render(values), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    shipped = {r["alert"]: r for g in RULES["groups"] for r in g["rules"]}
    rendered = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert [r["alert"] for r in rendered] == list(shipped)
    for alert in rendered:
        original = shipped[alert["alert"]]
        assert alert["labels"] == {**original["labels"], "team": "data-platform"}
        assert {k: v for k, v in alert.items() if k != "labels"} == {
            k: v for k, v in original.items() if k != "labels"
        }


def test_the_dashboard_configmap_is_labelled_for_the_sidecar_where_asked() -> None:
    values = {
        "metrics": {
            "dashboard": {
                "enabled": True,
                "label": "grafana.example.com/dashboard",
                "labelValue": "podtier",
                "namespace": "monitoring",
                "annotations": {"grafana_folder": "Airflow"},
            }
        }
    }
    (configmap,) = dashboard_configmaps(render(values))
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["labels"]["grafana.example.com/dashboard"] == "podtier"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Airflow"}
    assert json.loads(configmap["data"]["podtier.json"]) == DASHBOARD
    default = dashboard_configmaps(render({"metrics": {"dashboard": {"enabled": True}}}))[0]
    assert default["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert default["metadata"]["namespace"] == "podtier"


def test_every_dashboard_panel_queries_podtiers_job_through_the_datasource_variable() -> None:
    panels = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
    assert len({p["title"] for p in panels}) == len(panels)
    assert {v["name"] for v in DASHBOARD["templating"]["list"]} == {"datasource"}
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'job="podtier"' in target["expr"], panel["title"]


@pytest.mark.parametrize(
    ("values", "path"),
    [
        pytest.param({"metrics": {"annotations": "yes"}}, "/metrics/annotations", id="annotations"),
        pytest.param(
            {"metrics": {"serviceMonitor": {"interval": "30 seconds"}}},
            "/metrics/serviceMonitor/interval",
            id="interval",
        ),
        pytest.param(
            {"metrics": {"podMonitor": {"scrapeTimeout": 10}}},
            "/metrics/podMonitor/scrapeTimeout",
            id="timeout-not-a-duration",
        ),
        pytest.param(
            {"metrics": {"serviceMonitor": {"tlsConfig": {"insecureSkipVerifyy": True}}}},
            "/metrics/serviceMonitor/tlsConfig",
            id="tls-typo",
        ),
        pytest.param(
            {"metrics": {"podMonitor": {"labels": {"release": 1}}}},
            "/metrics/podMonitor/labels/release",
            id="label-not-a-string",
        ),
        pytest.param(
            {"metrics": {"prometheusRule": {"enable": True}}},
            "/metrics/prometheusRule",
            id="rule-typo",
        ),
        pytest.param(
            {"metrics": {"dashboard": {"label": "grafana dashboard"}}},
            "/metrics/dashboard/label",
            id="label-key",
        ),
        pytest.param(
            {"metrics": {"dashboard": {"namespace": "Monitoring"}}},
            "/metrics/dashboard/namespace",
            id="namespace",
        ),
    ],
)
def test_schema_refuses_bad_monitoring_values_naming_the_key(
    values: dict[str, Any], path: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        chart().validate_schema(values)
    assert path in str(refused.value)
