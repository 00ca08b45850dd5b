"""A sample AdmissionReview for `podtier serve --dev`'s ready-made curl line: a
KubernetesExecutor worker pod as kube-apiserver sends it, with no resources, so the answer shows
a tier being filled."""

from __future__ import annotations

from typing import Any


def sample_review() -> dict[str, Any]:
    labels = {
        "dag_id": "sales_etl",
        "task_id": "extract_orders",
        "try_number": "1",
        "kubernetes_executor": "True",
        "airflow-worker": "42",
        "run_id": "manual__2026-11-26T0500000000-51e150d46",
    }
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "sales-etl-extract-orders-8i1zzols",
            "namespace": "airflow",
            "labels": labels,
            "annotations": {"dag_id": "sales_etl", "task_id": "extract_orders", "try_number": "1"},
        },
        "spec": {
            "containers": [{"name": "base", "image": "apache/airflow:3.3.2", "resources": {}}],
            "restartPolicy": "Never",
        },
        "status": {},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0d5c8a4e-7f1b-4c1e-9a57-3c6f1f9d2b10",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": pod["metadata"]["name"],
            "namespace": "airflow",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:airflow:airflow-scheduler"},
            "object": pod,
            "oldObject": None,
            "dryRun": False,
        },
    }
