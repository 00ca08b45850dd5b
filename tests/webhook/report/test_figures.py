"""U and C by hand: a table of pods (with and without usage, GPUs, still running, never
started, in a pool without prices, clipped by the window), their sums per pool and tier, the
waits, the task tables and the saving of the recommended tiers.

Prices (builders.PRICES): worker 0.04 per core-hour and 0.005 per GiB-hour; gpu the same and
2.0 per GPU-hour; compute has none.
"""

from __future__ import annotations

import pytest

from podtier.webhook.report.facts import Profile, Usage
from podtier.webhook.report.figures import figures, pod_figures, usage_of
from podtier.webhook.report.waits import SERIES_POINTS, percentile
from tests.webhook.report.builders import GIB, HOUR, NOW, priced_policy, run

POLICY = priced_policy()
COST = {name: pool.cost for name, pool in POLICY.pools.items()}

# (pod, usage, since, expected PodFigures fields: hours, cpu·h, GiB·h, GPU·h, cost, used cpu·h,
#  used GiB·h, U cpu, U memory)
PODS = [
    pytest.param(
        # 1 core, 2 GiB for 1 h: c = 1×0.04 + 2×0.005 = 0.05 per hour
        run("done", started=NOW - 2 * HOUR, finished=NOW - HOUR),
        Usage(cpu=250, memory=GIB),
        None,
        (1.0, 1.0, 2.0, 0.0, 0.05, 0.25, 1.0, 0.25, 0.5),
        id="finished-with-usage",
    ),
    pytest.param(
        # 0.5 core, 1 GiB for 2 h: (0.02 + 0.005) × 2 = 0.05
        run("nousage", cpu=500, memory=GIB, started=NOW - 3 * HOUR, finished=NOW - HOUR),
        None,
        None,
        (2.0, 1.0, 2.0, 0.0, 0.05, None, None, None, None),
        id="finished-without-usage",
    ),
    pytest.param(
        # 2 cores, 8 GiB, 1 GPU for 30 min: (0.08 + 0.04 + 2.0) × 0.5 = 1.06
        run(
            "train",
            tier="gpu",
            pool="gpu",
            cpu=2000,
            memory=8 * GIB,
            gpu=1,
            started=NOW - HOUR,
            finished=NOW - HOUR / 2,
        ),
        Usage(cpu=1500, memory=6 * GIB),
        None,
        (0.5, 1.0, 4.0, 0.5, 1.06, 0.75, 3.0, 0.75, 0.75),
        id="gpu",
    ),
    pytest.param(
        # running for 1.5 h until now: 0.05 × 1.5 = 0.075; it bursts to twice its cpu request
        run("busy", phase="Running", started=NOW - 1.5 * HOUR, bound=NOW - 1.5 * HOUR),
        Usage(cpu=2000, memory=GIB // 2),
        None,
        (1.5, 1.5, 3.0, 0.0, 0.075, 3.0, 0.75, 2.0, 0.25),
        id="still-running-until-now",
    ),
    pytest.param(
        # Pending, never bound nor started: no run time, no cost (zero, not unknown)
        run("queued", phase="Pending", created=NOW - 600),
        None,
        None,
        (0.0, 0.0, 0.0, 0.0, 0.0, None, None, None, None),
        id="never-started",
    ),
    pytest.param(
        # bound and pulling its image since 5 min: its requests hold the node, it costs
        run("pulling", phase="Pending", bound=NOW - 300, started=NOW - 300),
        None,
        None,
        (300 / HOUR, 300 / HOUR, 600 / HOUR, 0.0, 0.05 * 300 / HOUR, None, None, None, None),
        id="started-while-pending",
    ),
    pytest.param(
        # compute has no prices: resource·hours but no cost
        run(
            "heavy",
            tier="heavy",
            pool="compute",
            cpu=2000,
            memory=4 * GIB,
            started=NOW - 2 * HOUR,
            finished=NOW - HOUR,
        ),
        Usage(cpu=1000, memory=GIB),
        None,
        (1.0, 2.0, 4.0, 0.0, None, 1.0, 1.0, 0.5, 0.25),
        id="pool-without-prices",
    ),
    pytest.param(
        # running for 2 h, the window is the last hour
        run("long", phase="Running", started=NOW - 2 * HOUR),
        Usage(cpu=500, memory=GIB),
        NOW - HOUR,
        (1.0, 1.0, 2.0, 0.0, 0.05, 0.5, 1.0, 0.5, 0.5),
        id="clipped-to-the-window",
    ),
    pytest.param(
        # Failed with no finish time said: its run time is unknown, so 0
        run("lost", phase="Failed", started=NOW - HOUR),
        None,
        None,
        (0.0, 0.0, 0.0, 0.0, 0.0, None, None, None, None),
        id="finished-without-a-finish-time",
    ),
]
FIELDS = (
    "hours",
    "cpu_hours",
    "memory_gib_hours",
    "gpu_hours",
    "cost",
    "used_cpu_hours",
    "used_memory_gib_hours",
    "cpu_utilization",
    "memory_utilization",
)


@pytest.mark.parametrize(("pod", "usage", "since", "expected"), PODS)
def test_a_pod_costs_its_requests_times_its_pool_prices_for_its_run_time(
    pod, usage, since, expected
) -> None:
    got = pod_figures(pod, usage, COST[pod.pool], NOW, since)
    for name, want in zip(FIELDS, expected, strict=True):
        value = getattr(got, name)
        if want is None:
            assert value is None, name
        else:
            assert value == pytest.approx(want), name


def test_sums_per_pool_and_tier_weight_u_by_run_time_over_pods_with_usage() -> None:
    pods = [p.values[0] for p in PODS[:7]]  # all but the windowed and the lost pod
    metrics = {p.values[0].key: p.values[1] for p in PODS[:7] if p.values[1] is not None}
    f = figures(pods, metrics, {}, POLICY, now=NOW)

    worker = f.by_pool["worker"]  # done, nousage, busy, queued, pulling
    assert worker.pods == 5
    assert worker.cpu_hours == pytest.approx(1.0 + 1.0 + 1.5 + 0 + 300 / HOUR)
    assert worker.memory_gib_hours == pytest.approx(2.0 + 2.0 + 3.0 + 0 + 600 / HOUR)
    assert worker.cost == pytest.approx(0.05 + 0.05 + 0.075 + 0 + 0.05 * 300 / HOUR)
    # U over done and busy only: (0.25 + 3.0) / (1.0 + 1.5) cpu, (1.0 + 0.75) / (2 + 3) memory
    assert worker.sampled_cpu_hours == pytest.approx(2.5)
    assert worker.cpu_utilization == pytest.approx(3.25 / 2.5)
    assert worker.memory_utilization == pytest.approx(1.75 / 5.0)

    assert f.by_pool["gpu"].gpu_hours == pytest.approx(0.5)
    assert f.by_pool["gpu"].cost == pytest.approx(1.06)
    compute = f.by_pool["compute"]
    assert (compute.cost, compute.unpriced_pods, compute.cpu_hours) == (None, 1, 2.0)

    assert f.total.pods == 7
    assert f.total.cost == pytest.approx(0.175 + 0.05 * 300 / HOUR + 1.06)
    assert f.total.unpriced_pods == 1
    assert f.total.cpu_utilization == pytest.approx((3.25 + 0.75 + 1.0) / (2.5 + 1.0 + 2.0))

    medium = f.by_tier["medium"]  # done, nousage, busy, queued, pulling
    assert medium.pods == 5 and medium.cost == pytest.approx(worker.cost)
    assert list(f.by_tier) == ["medium", "heavy", "gpu"]  # the policy's order
    assert f.usage_sources == {"metrics": 4, "none": 3}


def test_pods_that_ended_before_the_window_are_left_out() -> None:
    old = run("old", started=NOW - 5 * HOUR, finished=NOW - 4 * HOUR)
    recent = run("recent", started=NOW - 2 * HOUR, finished=NOW - HOUR / 2)
    f = figures([old, recent], {}, {}, POLICY, now=NOW, since=NOW - HOUR)
    assert f.total.pods == 1
    assert f.total.run_hours == pytest.approx(0.5)  # clipped to the window's start


def test_finished_pods_without_a_finish_time_are_noted() -> None:
    lost = PODS[-1].values[0]
    f = figures([lost], {}, {}, POLICY, now=NOW)
    assert f.no_run_time == 1 and f.total.run_hours == 0.0
    assert "finished pods that say no finish time, counted with no run time: 1" in f.notes


def test_no_prices_at_all_gives_resource_hours_and_no_cost() -> None:
    unpriced = priced_policy(prices={}, currency="")
    f = figures([PODS[0].values[0]], {}, {}, unpriced, now=NOW)
    assert not f.priced
    assert f.total.cost is None and f.total.cpu_hours == pytest.approx(1.0)


# ---------------------------------------------------------------------------- usage sources


def profile(task: str = "done", **fields) -> Profile:
    values = {
        "task": ("airflow", "etl", task),
        "runs": 10,
        "oom_kills": 0,
        "run_seconds": 10 * HOUR,
        "memory_peak": GIB,
        "cpu_p95": 500,
        "cpu": 1000,
        "memory": 2 * GIB,
        "gpu": 0,
        "tier": "medium",
        "pool": "worker",
        "recommended_tier": None,
        "last_runs": {},
        "updated": NOW,
    }
    values.update(fields)
    return Profile(**values)


RUN = ("scheduled__1", 1, -1)


@pytest.mark.parametrize(
    ("metrics", "profiles", "expected"),
    [
        pytest.param(
            {"airflow/done": Usage(100, GIB)},
            {("airflow", "etl", "done"): profile(last_runs={RUN: Usage(300, 3 * GIB)})},
            (Usage(100, GIB), "metrics"),
            id="pod-metrics-first",
        ),
        pytest.param(
            {},
            {("airflow", "etl", "done"): profile(last_runs={RUN: Usage(300, 3 * GIB)})},
            (Usage(300, 3 * GIB), "run profile"),
            id="its-own-run-in-the-profile",
        ),
        pytest.param(
            {},
            {("airflow", "etl", "done"): profile(last_runs={("other", 1, -1): Usage(1, 1)})},
            (Usage(500, GIB), "task profile"),
            id="its-task-profile",
        ),
        pytest.param(
            {},
            {("airflow", "etl", "done"): profile(cpu_p95=None, memory_peak=None)},
            (None, "none"),
            id="a-profile-never-sampled",
        ),
        pytest.param({}, {}, (None, "none"), id="nothing"),
    ],
)
def test_usage_comes_from_pod_metrics_then_the_runs_profile_then_the_tasks(
    metrics, profiles, expected
) -> None:
    pod = run("done", run_key=RUN, started=NOW - HOUR, finished=NOW)
    assert usage_of(pod, metrics, profiles) == expected


# ---------------------------------------------------------------------------- waits


def test_pending_p50_and_p95_per_pool_count_pods_still_waiting() -> None:
    waits = [10, 20, 30, 40, 100]
    pods = [
        run(f"w{i}", phase="Running", created=NOW - 1000, bound=NOW - 1000 + w, started=NOW - 900)
        for i, w in enumerate(waits)
    ]
    pods.append(run("waiting", phase="Pending", created=NOW - 50))
    pods.append(run("gpu", pool="gpu", phase="Running", created=NOW - 100, bound=NOW - 90))
    f = figures(pods, {}, {}, POLICY, now=NOW)
    worker = f.pending["worker"]
    # waits 10, 20, 30, 40, 50 (so far), 100: p50 = 35; p95 at rank 4.75: 50 + 0.75 × 50
    assert (worker.pods, worker.waiting_now) == (6, 1)
    assert worker.p50_seconds == pytest.approx(35.0)
    assert worker.p95_seconds == pytest.approx(87.5)
    assert f.pending["gpu"].p50_seconds == pytest.approx(10.0)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)


def test_pending_pods_over_time_follow_creation_and_binding() -> None:
    start = NOW - 2390  # 240 points, one every 10 s up to now
    pods = [
        run("a", phase="Running", created=start, bound=start + 100, started=start + 100),
        run("b", phase="Running", created=start + 50, bound=start + 150, started=start + 150),
        run("c", phase="Pending", created=start + 120),  # still waiting
        run("d", pool="gpu", phase="Running", created=start + 10, bound=start + 10),
    ]
    f = figures(pods, {}, {}, POLICY, now=NOW)
    series = f.pending_series
    assert series is not None and len(series.times) == SERIES_POINTS
    assert series.times[0] == start and series.times[-1] == NOW
    worker = dict(zip(series.times, series.by_pool["worker"], strict=True))
    assert [worker[start + s] for s in (0, 40, 50, 90, 100, 120, 150, 2390)] == [
        1, 1, 2, 2, 1, 2, 1, 1
    ]  # fmt: skip
    assert set(series.by_pool["gpu"]) == {0}  # bound at once: never waiting


def test_no_waits_no_time_series() -> None:
    pods = [run("a", phase="Running", created=NOW - 60, bound=NOW - 60, started=NOW - 60)]
    assert figures(pods, {}, {}, POLICY, now=NOW).pending_series is None


# ---------------------------------------------------------------------------- tasks


def test_tasks_come_from_their_profile_else_from_their_pods() -> None:
    # profiled: 2 cores asked, p95 0.5 core, 4 GiB asked, 1 GiB peak, over 2 h of runs
    profiles = {
        ("airflow", "etl", "profiled"): profile(
            "profiled", cpu=2000, cpu_p95=500, memory=4 * GIB, memory_peak=GIB, run_seconds=2 * HOUR
        )
    }
    pods = [
        run("profiled", started=NOW - HOUR, finished=NOW),  # its profile speaks for it
        run("p1", task="plain", started=NOW - 2 * HOUR, finished=NOW - HOUR),
        run("p2", task="plain", started=NOW - HOUR, finished=NOW, oom_killed=True),
    ]
    metrics = {"airflow/p1": Usage(250, GIB), "airflow/p2": Usage(1000, 3 * GIB)}
    f = figures(pods, metrics, profiles, POLICY, now=NOW)
    rows = {t.task_id: t for t in f.tasks}
    profiled, plain = rows["profiled"], rows["plain"]
    assert (profiled.source, profiled.runs, profiled.run_hours) == ("profile", 10, 2.0)
    assert profiled.wasted_cpu_hours == pytest.approx(1.5 * 2)
    assert profiled.wasted_memory_gib_hours == pytest.approx(3 * 2)
    assert profiled.wasted_cost == pytest.approx(3 * 0.04 + 6 * 0.005)
    # p1 wastes 0.75 core for 1 h; p2 uses all its cpu, and more memory than asked
    assert (plain.source, plain.runs, plain.oom_kills) == ("pods", 2, 1)
    assert plain.wasted_cpu_hours == pytest.approx(0.75)
    assert plain.wasted_memory_gib_hours == pytest.approx(1.0)
    assert (plain.cpu_used, plain.memory_peak) == (1000, 3 * GIB)
    assert [t.task_id for t in f.wasteful] == ["profiled", "plain"]
    assert [t.task_id for t in f.killed] == ["plain"]


def test_the_top_lists_hold_twenty() -> None:
    profiles = {
        ("airflow", "etl", f"t{i}"): profile(f"t{i}", oom_kills=i + 1, cpu_p95=i * 10)
        for i in range(30)
    }
    f = figures([], {}, profiles, POLICY, now=NOW)
    assert len(f.wasteful) == 20 and len(f.killed) == 20
    assert f.killed[0].task_id == "t29" and f.wasteful[0].task_id == "t0"


# ---------------------------------------------------------------------------- savings


def test_the_saving_prices_the_windows_pods_at_their_recommendations() -> None:
    """Per resource (the default sizing): each task's cpu p95 and memory peak x (1 + margin),
    in the pod's own pool when the tier it would be sized in may go there."""
    profiles = [
        profile("shrink", tier="heavy"),  # cpu p95 500m, peak 1 GiB: 500m, 1184Mi in medium
        profile("grow", tier="light", cpu_p95=3000),  # 3 cores: above medium's 2, so heavy
        profile("young", runs=2),  # fewer than minRuns (5): no recommendation
        profile("unknown", runs=2, recommended_tier="huge"),  # not in the policy: a note
    ]
    pods = [
        # heavy (2 cores, 4 GiB) in worker for 10 h: 0.1 x 10 = 1.0 now;
        # 500m and 1184Mi: (0.5 x 0.04 + 1.15625 x 0.005) x 10 = 0.2578125 recommended
        run(
            "shrink", tier="heavy", cpu=2000, memory=4 * GIB, started=NOW - 10 * HOUR, finished=NOW
        ),
        # light (0.25 core, 0.5 GiB) in worker for 1 h: 0.0125 now; 3 cores and 1184Mi, heavy
        # may go to worker so it stays there: 0.12 + 0.00578125 recommended
        run("grow", tier="light", cpu=250, memory=GIB // 2, started=NOW - HOUR, finished=NOW),
        run("young", started=NOW - HOUR, finished=NOW),  # 0.05 in both
        run("unknown", started=NOW - HOUR, finished=NOW),  # 0.05 in both
        run("plain", started=NOW - HOUR, finished=NOW),  # no profile: 0.05 in both
        run("idle", phase="Pending", created=NOW - 60),  # never ran: 0 in both
    ]
    f = figures(pods, {}, {p.task: p for p in profiles}, POLICY, now=NOW)
    worker = f.savings["worker"]
    assert worker.pods == 2
    assert worker.now.cost == pytest.approx(1.0 + 0.0125 + 3 * 0.05)
    assert worker.now.cost == pytest.approx(f.total.cost)  # the window's cost
    assert worker.recommended.cost == pytest.approx(0.2578125 + 0.12578125 + 3 * 0.05)
    assert worker.now.cpu_hours == pytest.approx(20 + 0.25 + 3)
    assert worker.recommended.cpu_hours == pytest.approx(5 + 3 + 3)
    assert worker.recommended.memory_gib_hours == pytest.approx(11.5625 + 1.15625 + 3 * 2)
    assert f.saving_total.pods == 2
    assert any("huge" in note for note in f.notes)
