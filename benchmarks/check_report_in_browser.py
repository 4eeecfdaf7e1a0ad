"""Open a comparison's report.html in headless Chromium: does it load and show its table and images?

    python benchmarks/check_report_in_browser.py                    # a small real comparison
    python benchmarks/check_report_in_browser.py outputs/sweeps/channels_lr/compare/report.html
    python benchmarks/check_report_in_browser.py --out /tmp/check  # keep everything there

Without a report, it trains a small Optuna sweep and one single run with every plot (real commands,
about 20 s on 2 cores) and runs `python -m linesweep.compare` on them. Then Chromium, with every
host name unresolvable (so any network request would fail), loads a copy of the report with a
one-line probe script appended (the report itself has no script) and `--dump-dom` prints the DOM
after the load event: the check counts the comparison table's rows against table.csv and the
<img> elements with data: URIs that the browser decoded (naturalWidth > 0). A `--screenshot` of
the page is saved for a person to look at. Exit status 0: all checks pass; 1: one failed;
2: Chromium is missing (Debian: apt-get install -y chromium).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PROBE = """<script>
addEventListener("load", () => {
  const images = [...document.images];
  document.body.dataset.images = images.length;
  document.body.dataset.decoded = images.filter((i) => i.complete && i.naturalWidth > 0).length;
});
</script>"""


def find_browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    print(
        "error: no Chromium found (looked for " + ", ".join(BROWSERS) + "); "
        "install it with: apt-get install -y chromium",
        file=sys.stderr,
    )
    raise SystemExit(2)


def browser_flags(profile: Path) -> list[str]:
    return [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}",
        '--host-resolver-rules=MAP * ~NOTFOUND',  # a page that reached for the network would fail
    ]  # fmt: skip


def linesweep(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(args[:2])} failed:\n{done.stderr[-2000:]}")


def build_comparison(scratch: Path) -> Path:
    """A small Optuna sweep and one single run with every plot, compared; returns report.html."""
    print("training a 4-trial sweep and one run with plots=all ...", flush=True)
    linesweep(
        "linesweep.train", "-m", "hparams_search=channels_lr", "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=1", "trainer.epochs=2", cwd=scratch,
    )  # fmt: skip
    linesweep("linesweep.train", "experiment=smoke", "plots=all", cwd=scratch)
    linesweep("linesweep.compare", "outputs", "--out", "comparison", cwd=scratch)
    return scratch / "comparison" / "report.html"


class DomCount(HTMLParser):
    """Rows of the comparison table, data: images, and the probe's answer, from a DOM dump."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = self.data_images = 0
        self.decoded: int | None = None
        self._in_runs = self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "body" and attr.get("data-decoded") is not None:
            self.decoded = int(attr["data-decoded"] or 0)
        elif tag == "table":
            self._in_runs = "runs" in (attr.get("class") or "").split()
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_runs and self._in_body:
            self.rows += 1
        elif tag == "img" and (attr.get("src") or "").startswith("data:image/png;base64,"):
            self.data_images += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._in_runs = False


def check(report: Path, out: Path, browser: str) -> bool:
    """Load the report in Chromium; print each check; True when all pass."""
    html = report.read_text(encoding="utf-8")
    probe = out / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    flags = browser_flags(out / "profile")
    dump = subprocess.run(
        [browser, *flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    screenshot = out / "report_screenshot.png"
    subprocess.run(
        [browser, *flags, "--hide-scrollbars", "--window-size=1400,2600",
         f"--screenshot={screenshot}", report.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    dom = DomCount()
    dom.feed(dump.stdout)
    table = report.with_name("table.csv")
    expected_rows = len(list(csv.DictReader(table.open()))) if table.exists() else None
    in_file = html.count('<img src="data:image/png;base64,')
    checks = [
        ("Chromium loaded the page", dump.returncode == 0 and "<body" in dump.stdout),
        (
            f"comparison table: {dom.rows} rows (table.csv: {expected_rows})",
            dom.rows > 0 and expected_rows in (None, dom.rows),
        ),
        (f"<img> with data: URIs: {dom.data_images} (in the file: {in_file})", dom.data_images > 0
         and dom.data_images == in_file),
        (f"images decoded by the browser: {dom.decoded} of {dom.data_images}",
         dom.decoded == dom.data_images),
        ("no external URL in the file", "http://" not in html and "https://" not in html),
        (f"screenshot written: {screenshot}", screenshot.is_file()
         and screenshot.stat().st_size > 10_000),
    ]  # fmt: skip
    for label, ok in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {label}")
    return all(ok for _, ok in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", nargs="?", type=Path, help="report.html (default: build one)")
    parser.add_argument("--out", type=Path, help="folder for the comparison and the screenshot")
    args = parser.parse_args()
    browser = find_browser()
    out = args.out or Path(tempfile.mkdtemp(prefix="linesweep_report_check_"))
    out.mkdir(parents=True, exist_ok=True)
    report = args.report if args.report is not None else build_comparison(out)
    print(f"checking {report} in {browser}")
    passed = check(report.resolve(), out, browser)
    print("all checks pass" if passed else "some checks FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
