import pytest

from podtier.webhook.core.quantity import QuantityError, format_milli, to_milli


@pytest.mark.parametrize(
    ("value", "milli"),
    [
        pytest.param("500m", 500, id="millicores"),
        pytest.param("1", 1000, id="one-core"),
        pytest.param("1.5", 1500, id="decimal"),
        pytest.param("2Gi", 2 * 2**30 * 1000, id="binary-suffix"),
        pytest.param("1G", 10**9 * 1000, id="decimal-suffix"),
        pytest.param("1e3", 10**6, id="exponent"),
        pytest.param(4, 4000, id="json-number"),
        pytest.param("100.5m", 101, id="sub-milli-rounds-up"),
        pytest.param("0.0000001m", 1, id="tiny-rounds-up-to-1m"),
        pytest.param("0", 0, id="zero"),
    ],
)
def test_parses_kubernetes_quantities(value, milli):
    assert to_milli(value) == milli


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("abc", '"abc" is not a quantity', id="garbage"),
        pytest.param("2 cores", '"2 cores" is not a quantity', id="words"),
        pytest.param("-1", '"-1" is negative', id="negative"),
        pytest.param("1e400", '"1e400" is too large', id="overflow"),
        pytest.param(True, "True is not a quantity", id="boolean"),
        pytest.param(None, "None is not a quantity", id="null"),
        pytest.param(["1"], "['1'] is not a quantity", id="list"),
    ],
)
def test_rejects_what_the_api_server_rejects(value, message):
    with pytest.raises(QuantityError) as err:
        to_milli(value)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("milli", "resource", "text"),
    [
        pytest.param(250, "cpu", "250m", id="cpu-milli"),
        pytest.param(2000, "cpu", "2", id="cpu-cores"),
        pytest.param(2 * 2**30 * 1000, "memory", "2Gi", id="memory-gi"),
        pytest.param(1536 * 2**20 * 1000, "memory", "1536Mi", id="memory-mi"),
        pytest.param(1000, "nvidia.com/gpu", "1", id="gpu"),
    ],
)
def test_formats_back_as_kubernetes_prints(milli, resource, text):
    assert format_milli(milli, resource) == text
    assert to_milli(text) == milli
