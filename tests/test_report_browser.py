"""The report in a real browser: headless Chromium, the network blocked, a 1280x800 first screen.

Chromium comes from the distribution's packages (Debian: apt-get install chromium); without it
this test fails with that instruction, never skips. The checks are the ones
benchmarks/check_report_in_browser.py prints: the answer and the runs table's header within the
first 800 px, the key columns within 1280 px, every image decoded, nothing fetched.
"""

from __future__ import annotations

import pytest

from benchmarks.check_report_in_browser import INSTALL, find_browser, inspect, table_rows
from linesweep.compare.cli import main


@pytest.mark.slow
def test_the_reports_first_screen_answers_and_every_image_decodes_offline(
    sweep_in_process, tmp_path, capsys
):
    browser = find_browser()
    if browser is None:
        pytest.fail(f"Chromium is missing: {INSTALL}")
    sweep = tmp_path / "sweeps" / "channels"
    sweep_in_process(
        sweep,
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.study_name=channels",
        "model.out_1=choice(1,2,4)",
        "optimizer.lr=tag(log,interval(1e-3,1e-1))",
    )
    report = tmp_path / "comparison" / "report.html"
    assert main([str(sweep), "--out", str(report.parent)]) == 0
    capsys.readouterr()

    (tmp_path / "browser").mkdir()
    findings = inspect(report, tmp_path / "browser", browser)
    checks = findings.checks(table_rows(report))
    failed = [label for label, ok in checks if not ok]
    assert not failed, f"{failed}\nChromium said: {findings.browser_output}"
    assert findings.dom.rows == 4 and findings.dom.data_images >= 5  # plots and the best run's
