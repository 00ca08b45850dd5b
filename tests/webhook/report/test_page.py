"""The report page in a real headless Chromium: it loads with no console error and no request,
and a screenshot of the whole page shows every chart, drawn and titled. Without Debian's
`chromium` the browser test is skipped, saying so (`.ci/run` installs it, best effort)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from podtier.webhook.report.charts import charts
from podtier.webhook.report.figures import figures
from podtier.webhook.report.page import page
from tests.chromium import Chromium, chromium_binary
from tests.conftest import run_podtier
from tests.webhook.headroom.builders import as_list
from tests.webhook.report.builders import NOW, policy_text, priced_policy, small_cluster

TITLES = [
    "Requested and used, per tier",
    "Requested and peak memory, per task",
    "Cost per pool and per tier",
    "Pods waiting for a node, per pool",
    "With every recommended tier applied",
]
FIGURES_JS = """
[...document.querySelectorAll('figure')].map(figure => {
  const svg = figure.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : null;
  return {
    heading: figure.querySelector('h3').textContent,
    title: svg && svg.querySelector('title') ? svg.querySelector('title').textContent : null,
    drawn: svg ? svg.querySelectorAll('path, use, image').length : 0,
    text: svg ? [...svg.querySelectorAll('text')].map(t => t.textContent).join(' ') : '',
    box: box ? [box.left + scrollX, box.top + scrollY, box.width, box.height] : null,
  };
})
"""


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page `podtier report --out` writes for the small cluster."""
    folder = tmp_path_factory.mktemp("report")
    (folder / "policy.yaml").write_text(policy_text())
    (folder / "cluster.json").write_text(json.dumps(as_list(*small_cluster())))
    out = folder / "report.html"
    result = run_podtier(
        "report",
        "--cluster",
        str(folder / "cluster.json"),
        "--policy",
        str(folder / "policy.yaml"),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def rasterized_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The same page with its scatter drawn as an embedded image, as for thousands of tasks."""
    from podtier.webhook.report import charts as charts_module
    from podtier.webhook.report.source import from_file

    monkeypatch.setattr(charts_module, "RASTERIZE_ABOVE", 0)
    (tmp_path / "cluster.json").write_text(json.dumps(as_list(*small_cluster())))
    policy = priced_policy()
    seen = from_file(str(tmp_path / "cluster.json"), policy)
    assert seen.latest is not None
    f = figures(seen.pods, seen.metrics, seen.profiles, policy, now=seen.latest, source="file")
    out = tmp_path / "rasterized.html"
    out.write_text(page(f, charts(f)))
    assert "data:image/png;base64," in out.read_text()
    return out


@pytest.mark.skipif(
    chromium_binary() is None,
    reason="Debian's chromium is not installed (apt-get install chromium; .ci/run tries)",
)
@pytest.mark.parametrize("which", ["report_page", "rasterized_page"])
def test_the_page_in_chromium_shows_every_chart_and_fetches_nothing(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    report = request.getfixturevalue(which)
    with Chromium.start(tmp_path / "profile") as browser:
        loaded = browser.open(report)
        shown = browser.evaluate(FIGURES_JS)
        png = browser.screenshot()
    (tmp_path / "report.png").write_bytes(png)
    assert loaded.errors == []
    assert loaded.requests == []
    assert [f["heading"] for f in shown] == TITLES
    assert [f["title"] for f in shown] == TITLES  # the SVG's own <title>, in the DOM
    for figure in shown:
        assert figure["drawn"] > 10, figure["heading"]
        left, top, width, height = figure["box"]
        assert width > 600 and height > 150, figure["heading"]
    assert "U " in shown[0]["text"] and "requested memory (GiB)" in shown[1]["text"]
    assert "EUR" in shown[2]["text"] and "compute" not in shown[2]["text"]  # unpriced: left out

    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.width == 1280
    for figure in shown:  # each chart's part of the screenshot has ink on it, in colour
        left, top, width, height = (round(v) for v in figure["box"])
        crop = image.crop((left, top, left + width, top + height)).resize((width // 4, height // 4))
        colours = crop.getcolors(maxcolors=100_000) or []
        inked = sum(n for n, rgb in colours if sum(rgb) < 600)
        assert len(colours) > 20, figure["heading"]
        assert inked > crop.width * crop.height * 0.005, figure["heading"]


def test_charts_without_data_say_why_instead() -> None:
    f = figures([], {}, {}, priced_policy(), now=NOW)
    drawn = charts(f)
    assert [c.svg for c in drawn] == [None] * 5
    html = page(f, drawn)
    assert "No usage figures" in html and "No pod waited for a node" in html
    assert "No TaskProfile recommends another tier" in html
    assert "<svg" not in html


def test_cluster_strings_are_escaped() -> None:
    pods = [o for o in small_cluster() if o["kind"] == "Pod"]
    from podtier.webhook.report.facts import pod_run

    runs = [r for r in (pod_run(p, priced_policy()) for p in pods) if r is not None]
    evil = runs[0]._replace(task=("airflow", "<script>alert(1)</script>", "t"), oom_killed=True)
    f = figures([evil], {}, {}, priced_policy(), now=NOW, source="<b>x</b>")
    html = page(f, [])
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>x</b>" not in html
