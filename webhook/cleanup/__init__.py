"""Cleanup of finished Airflow worker pods (`podtier serve --cleanup-after DURATION`).

Modules: `duration` (pure: `90m`, `1h`, `2d`), `select` (pure: which finished pods may go),
`bucket` (a token bucket on an injected clock), `lease` (one replica at a time, through a
`coordination.k8s.io/v1` Lease), `cleaner` (rounds of rate-limited deletes), `job` (wiring
into `podtier serve`).
"""
