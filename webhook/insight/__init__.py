"""Airflow pod insight from the headroom watch: no API calls of its own (but utilization).

Modules: `facts` (pure: what a raw Pod says), `scaling` (pure: the per-pool scaling signal),
`census` (the per-event counts, a `ClusterHeadroom` pod listener), `collector` (the gauges at
scrape time), `utilization` (metrics.k8s.io polling), `job` (wiring into `podtier serve`).
"""
