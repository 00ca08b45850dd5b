"""Property-based fuzzing of the admission path: generated Airflow pods and damaged real
fixtures, in process against the pure core (fast) and a smaller sample over real TLS.

About 2,000 examples in all; `bench/fuzz_long.py` runs the same properties 100,000+ times.
The properties are written out in `tests/reliability/properties.py`.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.policy.load import load_policy
from tests.conftest import review_of
from tests.webhook.http.reliability.generate import REVIEWS, damaged_fixtures, generated_reviews
from tests.webhook.http.reliability.properties import (
    UNKNOWN,
    RoomIn,
    check_core,
    check_http_reply,
    fuzz_policy,
)

POLICIES = {"default": load_policy([DEFAULT_POLICY]), "default+rules": fuzz_policy()}
NODE_TYPES = ["worker", "compute-optimized", "gpu"]

settings.register_profile(
    "podtier-ci",
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CI = settings.get_profile("podtier-ci")

capacities = st.one_of(
    st.just(UNKNOWN), st.lists(st.sampled_from(NODE_TYPES), unique=True).map(RoomIn)
)


def encode(review) -> bytes:
    # The stdlib encoder: it writes what orjson will not (integers past 64 bits, NaN), and
    # the decoder must refuse those with a 400.
    return json.dumps(review).encode()


@settings(CI, max_examples=900)
@given(generated_reviews(), st.sampled_from(sorted(POLICIES)), capacities)
def test_generated_reviews_keep_every_promise(review, policy, capacity):
    check_core(encode(review), POLICIES[policy], capacity)


@settings(CI, max_examples=800)
@given(damaged_fixtures(), st.sampled_from(sorted(POLICIES)), capacities)
def test_damaged_fixtures_keep_every_promise(review, policy, capacity):
    check_core(encode(review), POLICIES[policy], capacity)


@settings(CI, max_examples=300)
@given(REVIEWS, st.sampled_from(["/mutate", "/validate"]))
def test_real_server_never_answers_5xx_or_an_invalid_review(server, review, path):
    reply = server.post(path, encode(review))
    request = review.get("request")
    uid = request.get("uid") if isinstance(request, dict) else None
    check_http_reply(
        reply.status_code, reply.headers.get("content-type", ""), reply.content, uid, path
    )


def pod(resources=None, labels=None, **spec):
    base = {"name": "base", "image": "apache/airflow:3.3.2"}
    if resources is not None:
        base["resources"] = resources
    meta_labels = {"kubernetes_executor": "True", "dag_id": "sales_etl", **(labels or {})}
    return {
        "metadata": {"name": "p", "namespace": "airflow", "labels": meta_labels},
        "spec": {"containers": [base], **spec},
    }


# Each of these once broke a promise; found by the properties above, fixed, and kept here.
FOUND = [
    pytest.param(
        "default",
        pod({"requests": {"ephemeral-storage": "100Gi"}}),
        id="above-every-tier-reinvoked-gained-limits",
    ),
    pytest.param(
        "default",
        pod({"requests": {"nvidia.com/gpu": "223m", "hugepages-2Mi": "1"}, "limits": {"cpu": "0"}}),
        id="above-every-tier-gpu-reinvoked-gained-limits",
    ),
    pytest.param(
        "default+rules",
        pod({"limits": {"cpu": "500m"}}, labels={"tier": "burst"}),
        id="always-mode-request-above-kept-limit",
    ),
    pytest.param(
        "default+rules",
        pod({"requests": {"cpu": "1936M", "memory": "354G"}, "limits": {"cpu": "0"}}),
        id="always-mode-tier-without-cpu-limit",
    ),
    pytest.param("default", pod(tolerations=False), id="tolerations-false-unpatchable"),
    pytest.param("default", pod(tolerations=[{"key": ["x"]}]), id="toleration-key-unhashable"),
    pytest.param("default", pod(overhead={"cpu": "abc"}), id="overhead-invalid-raised"),
]


@pytest.mark.parametrize(("policy", "found"), FOUND)
@pytest.mark.parametrize("capacity", [UNKNOWN, RoomIn(NODE_TYPES)], ids=["unknown", "room"])
def test_inputs_that_once_broke_a_promise(policy, found, capacity):
    check_core(encode(review_of(found)), POLICIES[policy], capacity)
