"""Make docs/report.png, the README's picture of a `podtier report` page.

    pip install -e ".[test]" && apt-get install -y chromium
    python docs/report_screenshot.py [--out docs/report.png] [--keep-html report.html]

A small cluster with a day of history (bench/cluster_history.py: 60 nodes, 1,800 pods, their
TaskProfiles and PodMetrics, seeded, so the picture is the same each time), a policy that
prices every pool, `podtier report --out`, then a real headless Chromium (tests/chromium.py)
takes the whole page.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import cluster_history  # noqa: E402
from report_bench import priced_policy  # noqa: E402

from tests.chromium import Chromium  # noqa: E402

NODES_PER_POOL = "30,20,10"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "report.png"))
    parser.add_argument("--keep-html", metavar="FILE", help="also keep the page here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        dump = work / "cluster.json"
        cluster_history.main([str(dump), "--nodes-per-pool", NODES_PER_POOL])
        page = Path(args.keep_html) if args.keep_html else work / "report.html"
        command = [sys.executable, "-m", "podtier.webhook", "report", "--cluster", dump.name]
        command += ["--policy", str(priced_policy(work)), "--out", str(page.resolve())]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run(command, check=True, cwd=work, env=env)  # the page says "file cluster.json"
        with Chromium.start(work / "profile") as browser:
            loaded = browser.open(page)
            if loaded.errors or loaded.requests:
                raise SystemExit(f"the page misbehaved: {loaded.errors} {loaded.requests}")
            png = browser.screenshot()
    Path(args.out).write_bytes(_smaller(png))
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1024:,.0f} KB)")
    return 0


def _smaller(png: bytes) -> bytes:
    """The screenshot in 256 colours (a page of flat colours loses nothing visible)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return out.getvalue()


if __name__ == "__main__":
    sys.exit(main())
