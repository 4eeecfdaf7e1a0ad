"""Open a comparison's report.html in headless Chromium: does its first screen answer, and load?

    python benchmarks/check_report_in_browser.py                    # a small real comparison
    python benchmarks/check_report_in_browser.py outputs/sweeps/channels_lr/compare/report.html
    python benchmarks/check_report_in_browser.py --out /tmp/check  # keep everything there

Without a report, it trains a small Optuna sweep and one single run with every plot (real commands,
about 20 s on 2 cores) and runs `python -m linesweep.compare` on them. Then Chromium, with the
network blocked (every host name unresolvable and every request sent to a proxy that is not
there), loads a copy of the report with a one-line probe script appended (the report itself has no
script) in a 1280x800 window; `--dump-dom` prints the DOM after the load event, where the probe
has written what it measured. The checks: the answer block and the runs table's header lie within
the first 800 px, the key columns' headers within the 1280 px width, the comparison table has
table.csv's rows, every <img> (all data: URIs) decoded (naturalWidth > 0), and the page fetched
nothing. Screenshots of the first screen (1280x800) and of the top of the page are saved for a
person to look at. tests/test_report_browser.py runs the same checks in CI.
Exit status 0: all checks pass; 1: one failed; 2: Chromium is missing (apt-get install chromium).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
INSTALL = "install it with: apt-get install -y chromium (Debian, Ubuntu)"
WIDTH, HEIGHT = 1280, 800  # a laptop's first screen
PROBE = """<script>
addEventListener("load", () => {
  const out = document.body.dataset;
  const images = [...document.images];
  out.images = images.length;
  out.decoded = images.filter((i) => i.complete && i.naturalWidth > 0).length;
  const bottom = (selector) => {
    const element = document.querySelector(selector);
    return element ? Math.round(element.getBoundingClientRect().bottom) : -1;
  };
  out.viewport = innerWidth + "x" + innerHeight;
  out.answerBottom = bottom("#answer");
  out.headerBottom = bottom("table.runs thead");
  const keys = [...document.querySelectorAll("table.runs th.key")];
  out.keyRight = Math.round(Math.max(0, ...keys.map((k) => k.getBoundingClientRect().right)));
  out.keys = keys.map((k) => k.textContent).join(" ");
  out.fetched = performance.getEntriesByType("resource")
    .filter((r) => !r.name.startsWith("data:")).length;
});
</script>"""


def find_browser() -> str | None:
    """The Chromium (or Chrome) on PATH, or None."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def browser_flags(profile: Path) -> list[str]:
    return [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", f"--user-data-dir={profile}", "--hide-scrollbars",
        f"--window-size={WIDTH},{HEIGHT}",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # a page that reached for the network would fail
        "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",  # and no proxy
    ]  # fmt: skip


class Dom(HTMLParser):
    """Rows of the comparison table, data: images, and the probe's findings, from a DOM dump."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = self.data_images = 0
        self.probe: dict[str, str] = {}
        self._in_runs = self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "body":
            self.probe = {k[5:]: v or "" for k, v in attr.items() if k.startswith("data-")}
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

    def number(self, key: str) -> int:
        try:
            return int(self.probe.get(key, "-1"))
        except ValueError:
            return -1


@dataclass
class Findings:
    """What Chromium made of a report, and where its screenshots are."""

    loaded: bool
    dom: Dom
    html: str
    first_screen: Path
    page: Path
    browser_output: str

    def checks(self, expected_rows: int | None) -> list[tuple[str, bool]]:
        """(what, passed) for every check, in the order a reader cares about."""
        dom, html = self.dom, self.html
        in_file = html.count('<img src="data:image/png;base64,')
        answer, header = dom.number("answer-bottom"), dom.number("header-bottom")
        right = dom.number("key-right")
        return [
            ("Chromium loaded the page", self.loaded),
            # Chromium's headless window keeps some height for itself; positions are measured
            # from the top of the page, so only the width (which sets the layout) must match.
            (f"viewport {dom.probe.get('viewport')} wide {WIDTH}",
             dom.probe.get("viewport", "").startswith(f"{WIDTH}x")),
            (f"answer block ends at {answer} px (<= {HEIGHT})", 0 < answer <= HEIGHT),
            (f"runs table header ends at {header} px (<= {HEIGHT})", 0 < header <= HEIGHT),
            (f"key columns ({dom.probe.get('keys')}) end at {right} px (<= {WIDTH})",
             0 < right <= WIDTH),
            (f"comparison table: {dom.rows} rows (table.csv: {expected_rows})",
             dom.rows > 0 and expected_rows in (None, dom.rows)),
            (f"<img> with data: URIs: {dom.data_images} (in the file: {in_file})",
             dom.data_images > 0 and dom.data_images == in_file),
            (f"images decoded by the browser: {dom.probe.get('decoded')} of {dom.data_images}",
             dom.number("decoded") == dom.data_images == dom.number("images")),
            (f"resources fetched: {dom.probe.get('fetched')}", dom.number("fetched") == 0),
            ("no external URL in the file", "http://" not in html and "https://" not in html),
            (f"first screen saved: {self.first_screen}", self.first_screen.is_file()
             and self.first_screen.stat().st_size > 10_000),
        ]  # fmt: skip


def inspect(report: Path, out: Path, browser: str) -> Findings:
    """Load `report` in Chromium (a probed copy for the DOM, the file itself for screenshots)."""
    html = report.read_text(encoding="utf-8")
    probe = out / "probe.html"  # beside nothing: the report needs no file next to it
    probe.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    flags = browser_flags(out / "profile")
    dump = subprocess.run(
        [browser, *flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    shots = {"first_screen": out / "first_screen.png", "page": out / "report_page.png"}
    for name, size in (("first_screen", f"{WIDTH},{HEIGHT}"), ("page", f"{WIDTH},2400")):
        subprocess.run(
            [browser, *flags, f"--window-size={size}", f"--screenshot={shots[name]}",
             report.as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    dom = Dom()
    dom.feed(dump.stdout)
    return Findings(
        loaded=dump.returncode == 0 and "<body" in dump.stdout,
        dom=dom,
        html=html,
        first_screen=shots["first_screen"],
        page=shots["page"],
        browser_output=dump.stderr[-2000:],
    )


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


def table_rows(report: Path) -> int | None:
    table = report.with_name("table.csv")
    if not table.exists():
        return None
    with table.open(newline="", encoding="utf-8") as handle:
        return len(list(csv.DictReader(handle)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", nargs="?", type=Path, help="report.html (default: build one)")
    parser.add_argument("--out", type=Path, help="folder for the comparison and the screenshots")
    args = parser.parse_args()
    browser = find_browser()
    if browser is None:
        print(f"error: no Chromium found (looked for {', '.join(BROWSERS)}); {INSTALL}",
              file=sys.stderr)  # fmt: skip
        return 2
    out = (args.out or Path(tempfile.mkdtemp(prefix="linesweep_report_check_"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    report = args.report if args.report is not None else build_comparison(out)
    print(f"checking {report} in {browser}")
    findings = inspect(report.resolve(), out, browser)
    checks = findings.checks(table_rows(report))
    for label, ok in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {label}")
    passed = all(ok for _, ok in checks)
    print("all checks pass" if passed else "some checks FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
