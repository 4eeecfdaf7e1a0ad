"""compare on folders and inputs someone else made: each attack reproduced, then shown harmless.

Runs are shared (a colleague's outputs, an archive from a cluster, a study on a shared server),
so compare reads only regular files inside the tree it was given, bounds what it parses, opens
no storage a file names, and deletes or overwrites no file it did not write.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import resource
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from linesweep.compare.cli import main
from tests.conftest import ROOT
from tests.test_compare import BASE_CONFIG, PNG, fake_run, three_runs

SECRET = "TOPSECRET-7f3a"
MANIFEST = ".linesweep-compare.json"
RUN_PICTURES = ("kernels_conv1.png", "kernels_conv2.png", "feature_maps.png")
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)  # nine levels of nine references: 387,420,489 strings once expanded


class Hung(BaseException):
    """Not an Exception (TimeoutError is an OSError): no `except OSError` in compare catches it."""


@contextmanager
def time_limit(seconds: float):
    """Fail (rather than hang the test session) if the block runs past `seconds`."""

    def expire(_signum, _frame):
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def compare_in_process(capsys, *argv, seconds: float = 60):
    """(exit status, stdout, stderr lines) of `python -m linesweep.compare ARGV`, in-process."""
    with time_limit(seconds):
        code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def warnings_for(lines, folder):
    return [line for line in lines if line.startswith(f"warning: {folder}: ")]


@pytest.fixture
def private(tmp_path):
    """Files only the user may read, outside every compared tree, each holding SECRET."""
    folder = tmp_path / "private"
    folder.mkdir()
    (folder / "key.png").write_bytes(PNG + SECRET.encode())
    (folder / "config.yaml").write_text(yaml.safe_dump({**BASE_CONFIG, "password": SECRET}))
    (folder / "summary.json").write_text(json.dumps({"status": "failed", "error": SECRET}))
    (folder / "hydra").mkdir()
    (folder / "hydra" / "config.yaml").write_text(f"password: {SECRET}\n")
    fake_run(folder / "run", (0.99,), {"model.out_1": 7}, error=SECRET)
    return folder


def everything_written(out: Path, *texts: str) -> str:
    """All the comparison wrote and printed, as one text (PNGs as their base64 too)."""
    parts = list(texts)
    for path in sorted(out.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            parts += [data.decode("utf-8", "replace"), base64.b64encode(data).decode()]
    return "\n".join(parts)


# ---------------------------------------------------------------- symbolic links


def test_no_symbolic_link_leads_compare_out_of_the_folder_it_was_given(tmp_path, capsys, private):
    shared = tmp_path / "shared"
    best = fake_run(shared / "best", (0.99,))
    (best / "plots").mkdir()
    for name in RUN_PICTURES:
        (best / "plots" / name).symlink_to(private / "key.png")
    (best / ".hydra" / "config.yaml").unlink()
    (best / ".hydra" / "config.yaml").symlink_to(private / "config.yaml")
    linked_summary = fake_run(shared / "linked_summary", (0.5,))
    (linked_summary / "summary.json").unlink()
    (linked_summary / "summary.json").symlink_to(private / "summary.json")
    linked_hydra = fake_run(shared / "linked_hydra", (0.4,))
    for name in ("config.yaml", "overrides.yaml"):
        (linked_hydra / ".hydra" / name).unlink()
    (linked_hydra / ".hydra").rmdir()
    (linked_hydra / ".hydra").symlink_to(private / "hydra")
    (shared / "linked_run").symlink_to(private / "run")  # a whole run elsewhere: not searched

    out = tmp_path / "out"
    code, printed, lines = compare_in_process(capsys, shared, "--out", out)
    assert code == 0, lines
    assert SECRET not in everything_written(out, printed, *lines)
    assert base64.b64encode(PNG + SECRET.encode()).decode() not in everything_written(out)
    assert "3 runs (3 with warnings)" in printed  # not the linked run
    assert warnings_for(lines, best) == [
        f"warning: {best}: .hydra/config.yaml is unreadable (is a symbolic link, not followed): "
        "its config values are unknown",
        *(
            f"warning: {best}: plots/{name} is not shown (is a symbolic link, not followed)"
            for name in RUN_PICTURES
        ),
    ]
    assert warnings_for(lines, linked_summary) == [
        f"warning: {linked_summary}: summary.json is unreadable (is a symbolic link, not followed)"
    ]
    (config_warning,) = warnings_for(lines, linked_hydra)
    assert "reached through a symbolic link" in config_warning


def test_a_glob_that_matches_a_symbolic_link_does_not_follow_it(tmp_path, capsys, private):
    fake_run(tmp_path / "shared" / "mine", (0.8,))
    (tmp_path / "shared" / "theirs").symlink_to(private / "run")
    out = tmp_path / "out"
    code, printed, lines = compare_in_process(
        capsys, tmp_path / "shared" / "*", "--out", out, "--no-plots"
    )
    assert code == 0
    assert "1 run (0 with warnings)" in printed
    assert lines == [f"warning: {tmp_path / 'shared' / 'theirs'}: a symbolic link, not followed"]
    assert SECRET not in everything_written(out, printed)


def test_a_config_interpolation_never_reads_the_users_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LINESWEEP_TEST_TOKEN", SECRET)
    best = fake_run(
        tmp_path / "runs" / "best", (0.9,), {"model.out_1": "${oc.env:LINESWEEP_TEST_TOKEN}"}
    )
    (best / "model.pt").write_bytes(b"weights")  # compare rebuilds no model from a config
    fake_run(tmp_path / "runs" / "other", (0.5,))
    out = tmp_path / "out"
    code, printed, lines = compare_in_process(capsys, tmp_path / "runs", "--out", out)
    assert code == 0 and SECRET not in everything_written(out, printed, *lines)
    assert lines == []  # the value is shown as written: ${oc.env:LINESWEEP_TEST_TOKEN}
    assert "${oc.env:LINESWEEP_TEST_TOKEN}" in (out / "table.csv").read_text()


# ---------------------------------------------------------------- study storages


def sweep_folder(root: Path, storage: str | None, study: str = "s") -> Path:
    (root / "multirun.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {}, **BASE_CONFIG}))
    for n in range(2):
        fake_run(root / str(n), (0.5 + n / 10,), {"model.out_1": n + 1})
    results = {"study_name": study, "storage": storage, "n_trials": 2}
    (root / "optimization_results.yaml").write_text(yaml.safe_dump(results))
    return root


def test_a_storage_named_in_a_results_file_is_never_opened(tmp_path, capsys, monkeypatch):
    import optuna.storages

    opened = []

    def spy(url, *args, **kwargs):
        opened.append(url)
        raise RuntimeError("a database was opened")

    monkeypatch.setattr(optuna.storages, "RDBStorage", spy)
    urls = [f"sqlite:///{tmp_path / 'pwn.db'}", "postgresql://user@127.0.0.1:9/db"]
    for n, url in enumerate(urls):
        sweep = sweep_folder(tmp_path / f"sweep{n}", url)
        code, _, lines = compare_in_process(capsys, sweep, "--out", tmp_path / f"out{n}")
        assert code == 0
        assert lines == [
            f"warning: {sweep}: no study plots: cannot open the study (no optuna_journal.log "
            "in the sweep folder; pass --storage URL to read its study from a database)"
        ]
    assert opened == [] and not (tmp_path / "pwn.db").exists()


def make_study(storage, name: str = "s") -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("n", 1, 4), n_trials=6)


@pytest.mark.slow
def test_a_sweeps_study_comes_from_its_own_journal_or_from_storage(tmp_path, capsys):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    sweep = sweep_folder(tmp_path / "sweep", "/elsewhere/optuna_journal.log")
    make_study(JournalStorage(JournalFileBackend(str(sweep / "optuna_journal.log"))))
    out = tmp_path / "out"
    code, _, lines = compare_in_process(capsys, sweep, "--out", out)
    assert code == 0 and lines == []
    assert (out / "plots" / "study_sweep_history.png").read_bytes()[:8] == PNG
    written_in_sweep = sorted(p.name for p in sweep.iterdir() if not p.is_dir())
    assert written_in_sweep == ["multirun.yaml", "optimization_results.yaml", "optuna_journal.log"]

    database = f"sqlite:///{tmp_path / 'study.db'}"
    make_study(database)
    (sweep / "optuna_journal.log").rename(tmp_path / "outside.log")
    (sweep / "optuna_journal.log").symlink_to(tmp_path / "outside.log")
    code, _, lines = compare_in_process(capsys, sweep, "--out", tmp_path / "linked")
    assert code == 0 and lines == [
        f"warning: {sweep}: no study plots: cannot open the study (optuna_journal.log is a "
        "symbolic link, not followed; pass --storage URL to read its study from a database)"
    ]
    code, _, lines = compare_in_process(
        capsys, sweep, "--out", tmp_path / "db", "--storage", database
    )
    assert code == 0 and lines == []
    assert (tmp_path / "db" / "plots" / "study_sweep_history.png").exists()


# ---------------------------------------------------------------- the output folder


def test_out_into_a_folder_holding_files_compare_did_not_write_is_refused(tmp_path, capsys):
    three_runs(tmp_path / "runs")
    out = tmp_path / "mine"
    (out / "plots").mkdir(parents=True)
    mine = {"plots/mine.png": PNG + b"mine", "table.md": b"my notes", "notes.txt": b"x"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    for flags in ([], ["--no-plots"]):
        code, _, lines = compare_in_process(capsys, tmp_path / "runs", "--out", out, *flags)
        assert code == 2 and lines == [
            f"error: --out {out}: holds files compare did not write (it has no {MANIFEST}); "
            "give a new or empty folder"
        ]
        assert {name: (out / name).read_bytes() for name in mine} == mine
        assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == sorted(["plots", *mine])


def test_out_into_a_compared_run_folder_is_refused(tmp_path, capsys):
    run_ = fake_run(tmp_path / "run", (0.8,))
    (run_ / "plots").mkdir()
    for name in ("samples.png", "learning_curve.png"):
        (run_ / "plots" / name).write_bytes(PNG + name.encode())
    before = sorted(p.relative_to(run_) for p in run_.rglob("*"))
    for out in (run_, run_ / "compare", run_ / "plots"):
        code, _, lines = compare_in_process(capsys, run_, "--out", out, "--no-plots")
        assert code == 2 and lines == [
            f"error: --out {out}: inside the run folder {run_}, which is being compared; "
            "give a folder outside the runs"
        ]
    assert sorted(p.relative_to(run_) for p in run_.rglob("*")) == before
    assert (run_ / "plots" / "samples.png").read_bytes() == PNG + b"samples.png"


def manifest_files(out: Path) -> list[str]:
    return json.loads((out / MANIFEST).read_text())["files"]


def test_a_later_comparison_replaces_only_what_its_manifest_lists(tmp_path, capsys):
    runs = three_runs(tmp_path / "runs")
    out = tmp_path / "out"
    code, _, _ = compare_in_process(capsys, runs, "--out", out)
    assert code == 0
    pictures = sorted(f"plots/{p.name}" for p in (out / "plots").iterdir())
    assert pictures == [
        "plots/accuracy_by_size.png", "plots/learning_curves.png",
        "plots/objective_by_parameter.png",
    ]  # fmt: skip
    assert sorted(manifest_files(out)) == sorted(
        ["table.csv", "table.md", "report.html", *pictures]
    )
    (out / "notes.txt").write_text("mine")
    drawn = {name: (out / name).read_bytes() for name in pictures}

    code, _, _ = compare_in_process(
        capsys, runs, "--out", out, "--no-plots", "--no-report", "--top", "1"
    )
    assert code == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "report.html").exists()  # no report of the earlier, larger table
    assert {name: (out / name).read_bytes() for name in pictures} == drawn  # --no-plots: kept
    assert sorted(manifest_files(out)) == sorted(["table.csv", "table.md", *pictures])

    (out / "plots" / "mine.png").write_bytes(PNG)
    code, _, lines = compare_in_process(capsys, runs, "--out", out)
    assert code == 2 and lines == [
        f"error: --out {out}: plots/mine.png is not a file compare wrote; "
        "move it, or give a new or empty folder"
    ]
    code, _, _ = compare_in_process(capsys, runs, "--out", out, "--no-plots")
    assert code == 0 and (out / "plots" / "mine.png").read_bytes() == PNG


def test_a_manifest_that_names_other_files_is_refused(tmp_path, capsys):
    runs = three_runs(tmp_path / "runs")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    for files in (["../victim.txt"], ["table.csv", "/etc/passwd"], "table.csv"):
        (out / MANIFEST).write_text(json.dumps({"files": files}))
        code, _, lines = compare_in_process(capsys, runs, "--out", out, "--no-plots")
        assert code == 2 and len(lines) == 1
        assert lines[0].startswith(f"error: --out {out}: its {MANIFEST} was not written by compare")
    (out / MANIFEST).unlink()
    (out / MANIFEST).symlink_to(victim)
    code, _, lines = compare_in_process(capsys, runs, "--out", out, "--no-plots")
    assert code == 2 and "symbolic link" in lines[0]
    assert victim.read_text() == "keep me"


def test_an_output_folder_that_is_a_symbolic_link_is_refused(tmp_path, capsys):
    runs = three_runs(tmp_path / "runs")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "elsewhere")
    code, _, lines = compare_in_process(capsys, runs, "--out", tmp_path / "out", "--no-plots")
    assert code == 2 and lines == [
        f"error: --out {tmp_path / 'out'}: a symbolic link; give the folder it points to"
    ]
    assert not list((tmp_path / "elsewhere").iterdir())


# ---------------------------------------------------------------- odd folders and values


def deep_tree(root: Path, levels: int) -> None:
    """root/d/d/.../d, built from the bottom up: each step touches short paths only."""
    root.mkdir()
    for _ in range(levels):
        root.rename(root.with_name("next"))  # the tree so far becomes root/d
        root.mkdir()
        root.with_name("next").rename(root / "d")


def remove_deep_tree(root: Path) -> None:
    """shutil.rmtree recurses and would fail here: lift root/d up one level at a time."""
    while (root / "d").is_dir():
        (root / "d").rename(root.with_name("next"))
        root.rmdir()
        root.with_name("next").rename(root)
    root.rmdir()


@pytest.mark.slow  # removing 1,500 nested folders takes seconds of disk time, even for rm -rf
def test_a_folder_tree_1500_levels_deep_is_one_warning(tmp_path, capsys):
    fake_run(tmp_path / "runs" / "ok", (0.9,))
    deep_tree(tmp_path / "runs" / "deep", 1500)
    try:
        code, printed, lines = compare_in_process(
            capsys, tmp_path / "runs", "--out", tmp_path / "out", "--no-plots"
        )
    finally:
        remove_deep_tree(tmp_path / "runs" / "deep")
    assert code == 0 and "1 run (0 with warnings)" in printed
    assert lines == [
        f"warning: {tmp_path / 'runs'}: folders more than 32 levels below it were not searched"
    ]


def summary_of(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def edit_summary(folder: Path, **changes) -> None:
    (folder / "summary.json").write_text(json.dumps({**summary_of(folder), **changes}))


def nested_summary(folder):
    (folder / "summary.json").write_text("[" * 100_000)


def metrics_not_a_list(folder):
    edit_summary(folder, objective={"metrics": 5, "values": [0.95]})


def huge_n_params(folder):
    edit_summary(folder, n_params=10**400)


def plan_not_a_list(folder):
    (folder / "shapes.yaml").write_text("plan: 5\nn_params: 119\n")


def huge_n_params_in_shapes(folder):
    summary = summary_of(folder)
    del summary["n_params"]
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "shapes.yaml").write_text(f"n_params: {10**400}\n")


def huge_csv_field(folder):
    with (folder / "metrics.csv").open("a") as handle:
        handle.write("3," + "9" * 200_000 + ",0,0,0,0,0\n")


def fifo_summary(folder):
    (folder / "summary.json").unlink()
    os.mkfifo(folder / "summary.json")


ODD_FILES = {
    "summary.json of 100,000 [": (
        nested_summary,
        "summary.json is unreadable (nests 100000 levels deep, over the 32 compare reads)",
    ),
    "objective.metrics: 5": (
        metrics_not_a_list,
        "summary.json has malformed values, left out: objective.metrics (not a list of metric "
        "names: 5)",
    ),
    "n_params: 10**400": (
        huge_n_params,
        "summary.json has malformed values, left out: n_params (not a count: inf)",
    ),
    "shapes.yaml plan: 5": (
        plan_not_a_list,
        "shapes.yaml has malformed values, left out: plan (not a list of layers: 5)",
    ),
    "shapes.yaml n_params: 10**400": (
        huge_n_params_in_shapes,
        "shapes.yaml has malformed values, left out: n_params (not a count: inf)",
    ),
    "a metrics.csv field over 131,072 characters": (
        huge_csv_field,
        "metrics.csv line 4 is corrupt (field larger than field limit (131072)): "
        "kept the 2 epochs before it",
    ),
    "a FIFO named summary.json": (fifo_summary, "summary.json is unreadable (is a FIFO)"),
}


@pytest.mark.parametrize("attack", ODD_FILES, ids=list(ODD_FILES))
def test_an_odd_file_in_the_best_run_is_one_warning_never_a_crash_or_a_hang(
    attack, tmp_path, capsys
):
    spoil, warning = ODD_FILES[attack]
    fake_run(tmp_path / "runs" / "other", (0.5, 0.6), {"model.out_1": 3}, n_params=200)
    best = fake_run(tmp_path / "runs" / "best", (0.8, 0.95))
    spoil(best)
    out = tmp_path / "out"
    start = time.monotonic()
    code, _, lines = compare_in_process(capsys, tmp_path / "runs", "--out", out, seconds=30)
    assert code == 0 and time.monotonic() - start < 20
    assert lines == [f"warning: {best}: {warning}"]
    assert (out / "report.html").exists() and (out / "plots" / "learning_curves.png").exists()


def test_config_values_that_read_as_mathtext_are_drawn_as_text(tmp_path, capsys):
    fake_run(tmp_path / "runs" / "a", (0.6,), {"model.activation": "$\\foo$"})
    fake_run(tmp_path / "runs" / "b", (0.7,), {"model.activation": "$x^{$"})
    fake_run(tmp_path / "runs" / "c", (0.8,), {"model.activation": "relu"})
    out = tmp_path / "out"
    code, _, lines = compare_in_process(capsys, tmp_path / "runs", "--out", out)
    assert code == 0 and lines == []
    assert {p.name for p in (out / "plots").iterdir()} >= {
        "learning_curves.png", "objective_by_parameter.png",
    }  # fmt: skip


def test_text_from_run_files_is_escaped_in_the_report(tmp_path, capsys):
    fake_run(tmp_path / "runs" / "a", (0.6,), {"model.act": "<img src=x onerror=alert(1)>"})
    fake_run(tmp_path / "runs" / "b", (0.7,), {"model.act": "relu"}, error="<script>x</script>")
    code, _, _ = compare_in_process(capsys, tmp_path / "runs", "--out", tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    assert code == 0 and "<script" not in page and "<img src=x" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page


def test_hostile_folders_through_the_command_line_exit_0_with_one_warning_each(tmp_path):
    """The alias bomb and the FIFO in a real process, with its memory capped: on failure they
    hit the cap or the timeout instead of the machine."""
    runs = tmp_path / "runs"
    fake_run(runs / "ok", (0.9,))
    bomb = fake_run(runs / "bomb", (0.5,))
    (bomb / ".hydra" / "config.yaml").write_text(ALIAS_BOMB)
    fifo = fake_run(runs / "fifo", (0.6,))
    (fifo / "metrics.csv").unlink()
    os.mkfifo(fifo / "metrics.csv")
    deep = fake_run(runs / "deep", (0.7,))
    (deep / "shapes.yaml").write_text("[" * 100_000)

    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))

    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "linesweep.compare", str(runs), "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=cap_memory,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - start < 60
    assert done.stderr.splitlines() == [
        f"warning: {bomb}: .hydra/config.yaml is unreadable (uses YAML anchors or aliases, "
        "which compare does not expand): its config values are unknown",
        f"warning: {deep}: shapes.yaml is unreadable (ScannerError: while increasing flow level "
        'exceeded maximum nesting depth in "<unicode string>", line 1, column 1001)',
        f"warning: {fifo}: metrics.csv is unreadable (is a FIFO)",
    ]


# ---------------------------------------------------------------- refused runs


def refused_run(folder: Path) -> Path:
    """What a run refused by validation leaves: its config and a summary, nothing trained."""
    (folder / ".hydra").mkdir(parents=True)
    config = {**BASE_CONFIG, "model": {**BASE_CONFIG["model"], "out_1": 0}}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["model.out_1=0"]))
    record = {
        "status": "refused",
        "error": "model.out_1=0 is not allowed: an integer in [1, 512]",
        "overrides": ["model.out_1=0"],
    }
    (folder / "summary.json").write_text(json.dumps(record))
    return folder


def test_refused_runs_are_left_out_by_default_and_counted_in_one_line(tmp_path, capsys):
    three_runs(tmp_path / "runs")
    for n in range(2):
        refused_run(tmp_path / "runs" / f"refused{n}")
    code, printed, lines = compare_in_process(
        capsys, tmp_path / "runs", "--out", tmp_path / "out", "--no-plots"
    )
    assert code == 0 and lines == []
    assert "3 shown of 5 runs (0 with warnings)" in printed
    assert "2 refused runs not shown; --state refused shows them" in printed
    assert len(list(csv.DictReader((tmp_path / "out" / "table.csv").open()))) == 3

    code, printed, _ = compare_in_process(
        capsys, tmp_path / "runs", "--out", tmp_path / "out", "--no-plots", "--state", "refused"
    )
    assert code == 0 and "refused runs not shown" not in printed
    rows = list(csv.DictReader((tmp_path / "out" / "table.csv").open()))
    assert [r["state"] for r in rows] == ["refused", "refused"]


def test_a_bare_compare_skips_refused_runs_when_it_picks_the_latest(tmp_path, capsys, monkeypatch):
    good = fake_run(tmp_path / "outputs" / "runs" / "2026-01-01" / "10-00-00", (0.8,))
    refused = refused_run(tmp_path / "outputs" / "runs" / "2026-01-02" / "10-00-00")
    os.utime(good, (1, 1))
    os.utime(refused, (2, 2))
    monkeypatch.chdir(tmp_path)
    code, _, lines = compare_in_process(capsys, "--no-plots", "--no-report")
    assert code == 0
    assert lines[0] == "comparing outputs/runs/2026-01-01/10-00-00 (the latest under outputs/)"


# ---------------------------------------------------------------- the bounds themselves


def test_json_and_yaml_are_parsed_within_bounds_into_plain_data():
    from linesweep.core.safe_read import Unreadable, load_json, load_yaml

    assert load_json('{"error": "' + "[{" * 100 + '\\"]"}') == {"error": "[{" * 100 + '"]'}
    assert load_json("[" * 32 + "]" * 32) is not None  # brackets in strings do not count
    with pytest.raises(Unreadable, match="nests 33 levels deep, over the 32"):
        load_json("[" * 33 + "]" * 33)
    assert load_json('{"n": 1' + "0" * 400 + "}") == {"n": float("inf")}  # counts: a float
    with pytest.raises(Unreadable, match="nests over the 32 levels"):
        load_yaml("a: " + "[" * 33 + "]" * 33)
    with pytest.raises(Unreadable, match="holds over the 100,000 values"):
        load_yaml("[" + "0," * 100_001 + "]")
    for text in ("a: &x 1\n", "a: &x 1\nb: *x\n"):
        with pytest.raises(Unreadable, match="anchors or aliases"):
            load_yaml(text)
    start = time.monotonic()
    with time_limit(10), pytest.raises(Unreadable, match="anchors or aliases"):
        load_yaml(ALIAS_BOMB)
    assert time.monotonic() - start < 2
    odd = "1: 2001-12-14\nnull: " + "9" * 30 + "\ns: !!set {b, a}\nb: !!binary aGk=\n"
    assert load_yaml(odd) == {"1": "2001-12-14", "null": 1e30, "s": ["a", "b"], "b": "hi"}
    with pytest.raises(Unreadable, match="ValueError"):
        load_yaml("a: 2001-13-45")  # PyYAML raises a bare ValueError for this date


def test_only_regular_files_below_the_root_are_read_and_each_within_its_cap(tmp_path, private):
    from linesweep.core.safe_read import Unreadable, read_bytes

    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "ok").write_bytes(b"x" * 10)
    assert read_bytes(root / "ok", root, 10) == b"x" * 10
    with pytest.raises(Unreadable, match="is 10 bytes, over the 9 bytes compare reads"):
        read_bytes(root / "ok", root, 9)
    os.mkfifo(root / "fifo")
    (root / "link").symlink_to(private / "config.yaml")
    (root / "linked").symlink_to(private / "hydra")
    cases = {
        "fifo": "is a FIFO",
        "sub": "is a folder",
        "link": "is a symbolic link, not followed",
        "linked/config.yaml": "reached through a symbolic link",
    }
    for name, reason in cases.items():
        with time_limit(10), pytest.raises(Unreadable, match=reason):
            read_bytes(root / name, root, 1024)
    with pytest.raises(FileNotFoundError):
        read_bytes(root / "missing", root, 1024)


def test_a_huge_csv_field_leaves_csv_field_size_limit_alone(tmp_path):
    from linesweep.compare.runs import read_run

    folder = fake_run(tmp_path / "run", (0.5, 0.6))
    huge_csv_field(folder)
    before = csv.field_size_limit()
    assert read_run(folder).history[-1]["epoch"] == 2
    assert csv.field_size_limit() == before == 131_072
