"""Learning what each Airflow task really uses, from the pods podtier already watches.

    pod watch (headroom's) ─► `recorder`: the base container ended ─► `outcome` (pure)
    PodMetrics poller (insight's) ─► `usage`: each running pod's memory peak and cpu p95
    `prometheus` (optional): the finished pod's peak and p95 from Prometheus
        └─► `writer` (the Lease holder only): `fold` (pure, `decay`) ─► TaskProfile objects
    TaskProfile watch (every replica) ─► `watch`: the profiles view the decision reads

Modules: `names` (object names), `profiles` (the custom resource to and from the core model,
refusing hostile objects), `outcome`, `decay`, `fold` (pure); `usage`, `recorder`, `watch`,
`prometheus`, `writer`, `snapshot` (profiles from a `kubectl get -o json` file), `job` (wiring
into `podtier serve`). The decision side is `webhook.core.learned`.
"""
