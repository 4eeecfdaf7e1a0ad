"""`python -m linesweep.draw RUN`: the pictures a run did not draw, as the run would have drawn.

compare shows the pictures a run drew and draws none itself; a run trained with plots=light or
plots=none gets them from this command, from its config and weights, through the run's own
drawing code: byte for byte what plots=all would have left.
"""

from __future__ import annotations

import os

import pytest
import yaml
from omegaconf import OmegaConf

from linesweep.compare.cli import main as compare
from linesweep.draw import main as draw
from linesweep.run.task import run
from tests.conftest import run_cli

PICTURES = [
    "feature_maps.png", "flattened_activations.png", "kernels_conv1.png", "kernels_conv2.png",
    "learning_curve.png", "samples.png",
]  # fmt: skip
FAST = ["experiment=smoke", "data.N_images=40", "data.N_val_images=20", "trainer.epochs=1"]


def trained(compose_config, folder, plots: str):
    """A run folder as `python -m linesweep.train ... plots=<plots>` leaves it, .hydra/ too."""
    overrides = [*FAST, f"plots={plots}"]
    cfg = compose_config(*overrides)
    run(cfg, folder, overrides=overrides)
    (folder / ".hydra").mkdir()
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    return folder


@pytest.mark.slow
def test_the_pictures_drawn_later_are_the_ones_the_run_would_have_drawn(
    compose_config, tmp_path, capsys
):
    folder = trained(compose_config, tmp_path / "run", "all")
    drawn_by_the_run = {p.name: p.read_bytes() for p in (folder / "plots").iterdir()}
    assert sorted(drawn_by_the_run) == PICTURES
    for name in ("kernels_conv1.png", "kernels_conv2.png", "samples.png", "learning_curve.png"):
        (folder / "plots" / name).unlink()
    kept = (folder / "plots" / "feature_maps.png").stat()

    assert draw([str(folder)]) == 0
    assert capsys.readouterr().out == (
        f"{folder}: drew samples.png, learning_curve.png, kernels_conv1.png, kernels_conv2.png "
        f"into {folder / 'plots'}/\n"
    )
    assert {p.name: p.read_bytes() for p in (folder / "plots").iterdir()} == drawn_by_the_run
    assert (folder / "plots" / "feature_maps.png").stat().st_mtime_ns == kept.st_mtime_ns
    assert draw([str(folder)]) == 0
    assert capsys.readouterr().out == f"{folder}: every picture is there already\n"


@pytest.mark.slow
def test_a_light_runs_pictures_are_drawn_and_then_shown_by_compare(
    compose_config, tmp_path, monkeypatch, capfd
):
    folder = trained(compose_config, tmp_path / "runs" / "light", "light")
    assert [p.name for p in (folder / "plots").iterdir()] == ["learning_curve.png"]
    monkeypatch.chdir(tmp_path)  # compare in this process; the command it prints, a process
    assert compare(["runs", "--out", "cmp", "--no-plots"]) == 0
    out, err = capfd.readouterr()
    assert "  its pictures: python -m linesweep.draw runs/light\n" in out, err
    done = run_cli("linesweep.draw", "runs/light", cwd=tmp_path)  # the command, as printed
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert sorted(p.name for p in (folder / "plots").iterdir()) == PICTURES
    assert compare([str(tmp_path / "runs"), "--out", str(tmp_path / "cmp"), "--no-plots"]) == 0
    page = (tmp_path / "cmp" / "report.html").read_text()
    assert page.count("<img ") == 4 and "linesweep.draw" not in page  # the run's four pictures


def test_a_folder_it_cannot_draw_from_is_one_line_each(compose_config, tmp_path, capsys):
    interpolated = tmp_path / "interpolated"
    (interpolated / ".hydra").mkdir(parents=True)
    config = OmegaConf.to_container(compose_config(*FAST))
    config["model"]["out_1"] = "${oc.env:HOME}"  # a shared folder must not read my environment
    (interpolated / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    unweighted = tmp_path / "unweighted"
    (unweighted / ".hydra").mkdir(parents=True)
    (unweighted / ".hydra" / "config.yaml").write_text(yaml.safe_dump({**config, "model": {}}))
    linked = tmp_path / "linked"
    (linked / ".hydra").mkdir(parents=True)
    (linked / "plots").symlink_to(tmp_path)
    folders = [tmp_path / "nothing", interpolated, unweighted, linked]
    assert draw([str(f) for f in folders]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [
        f"error: {folders[0]}: no .hydra/config.yaml: not a run folder linesweep wrote",
        f"error: {interpolated}: .hydra/config.yaml holds an interpolation (${{...}}), which "
        "is not resolved",
        f"error: {unweighted}: no model.pt: the run saved no weights (it never trained)",
        f"error: {linked}: plots/ is a symbolic link; give the run folder it belongs to",
    ]
    assert os.environ["HOME"] not in err


@pytest.mark.slow
def test_a_picture_planted_as_a_link_is_replaced_and_its_target_left_alone(
    compose_config, tmp_path
):
    folder = trained(compose_config, tmp_path / "run", "none")
    private = tmp_path / "private.png"
    private.write_bytes(b"mine")
    (folder / "plots").mkdir(exist_ok=True)
    (folder / "plots" / "kernels_conv1.png").symlink_to(private)
    assert draw([str(folder)]) == 0
    assert private.read_bytes() == b"mine"
    picture = folder / "plots" / "kernels_conv1.png"
    assert not picture.is_symlink() and picture.read_bytes()[:4] == b"\x89PNG"
