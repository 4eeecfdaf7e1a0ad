"""The C forward and backward (`linesweep.run.native`): built once per machine, never in the way.

What it computes is specified with torch's layers in tests/test_step.py (every step test runs on
both); here, what is the C step's own:

- it is built into the user's cache folder once, and a second process loads it without
  building again; a cached file that does not load is built again; a compiler that refuses
  `-march=native` builds it without;
- where it cannot be built (no compiler, a compiler that fails, `LINESWEEP_NATIVE=0`), the
  step is torch's, and one warning line says why (none when switched off on purpose);
- a member whose parameters went to NaN gets a NaN loss, as in torch, and the others step bit
  for bit as they would without it;
- a label outside the classes is refused before anything is computed, as torch's
  cross_entropy refuses it (C would read out of bounds);
- float64 models and tensors off the CPU take torch's layers.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch

from linesweep.run import native
from linesweep.run.config import ModelConfig
from linesweep.run.model import build_model
from linesweep.run.shapes import plan_cnn
from linesweep.run.step import HandStep, UpdateRule

LOAD = "from linesweep.run import native; print(native.library()._name)"


@pytest.fixture
def fresh_library():
    """`native.library()` asked anew (it is cached per process), and cached anew afterwards."""
    native.library.cache_clear()
    yield native.library
    native.library.cache_clear()


def models(n: int, dtype=torch.float32):
    cfg = ModelConfig(out_1=3, out_2=2)
    return [build_model(cfg, plan_cnn(cfg, 11), seed).to(dtype) for seed in range(n)]


def batch(r: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(r, 10, 1, 11, 11, generator=generator) < 0.4).float()
    return x, torch.randint(0, 2, (r, 10), generator=generator)


def test_the_library_is_built_once_into_the_cache_folder_and_loaded_after(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True)
    built = list((tmp_path / "linesweep" / "native").glob("native_step-*.so"))
    assert first.returncode == 0 and [str(p) for p in built] == [first.stdout.strip()], first
    made = built[0].stat().st_mtime_ns
    again = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True)
    assert again.stdout == first.stdout and built[0].stat().st_mtime_ns == made
    assert list(built[0].parent.iterdir()) == built  # no temporary file left behind


def test_a_cached_library_that_does_not_load_is_built_again(fresh_library, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = native._built(native._compiler(), (*native.FOR_THIS_PROCESSOR, *native.FLAGS))
    built.write_bytes(b"cut short by a full disk")
    lib = fresh_library()
    assert lib is not None and lib._name == str(built) and built.stat().st_size > 1000


def test_a_compiler_that_refuses_march_native_builds_it_without(
    fresh_library, monkeypatch, tmp_path
):
    cc = tmp_path / "picky-cc"
    cc.write_text('#!/bin/sh\ncase "$*" in *march=native*) exit 1;; esac\nexec cc "$@"\n')
    cc.chmod(0o755)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(cc))
    lib = fresh_library()
    assert lib is not None and lib._name == str(native._built([str(cc)], native.FLAGS))
    assert HandStep.for_models(models(1), UpdateRule("sgd", 0.1)).compiled


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"CC": "false"}, "the C step did not compile"),  # a compiler that fails
        ({"CC": "", "PATH": ""}, "no C compiler found"),
        ({"LINESWEEP_NATIVE": "0"}, None),  # switched off on purpose: nothing to say
    ],
)
def test_without_the_library_the_step_is_torchs_and_one_line_says_why(
    fresh_library, monkeypatch, tmp_path, caplog, env, said
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing built before
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with caplog.at_level(logging.WARNING, logger="linesweep.run.native"):
        step = HandStep.for_models(models(2), UpdateRule("adam", 0.01))
        HandStep.for_models(models(1), UpdateRule("adam", 0.01))  # asked again: said once
    lines = [r.getMessage() for r in caplog.records]
    assert not step.compiled
    if said is None:
        assert lines == []
    else:
        assert len(lines) == 1 and lines[0].startswith(said), lines
        assert lines[0].endswith("the step runs in torch, slower")
    x, y = batch(2)
    assert torch.isfinite(step(x, y)).all()


def test_a_member_gone_to_nan_has_a_nan_loss_and_the_others_step_as_without_it():
    rule = UpdateRule("adam", 0.01)
    three, two = models(3), models(3)
    del two[1]
    with torch.no_grad():
        three[1].conv2.weight[0, 0, 0, 0] = float("nan")
    with_nan, without = HandStep.for_models(three, rule), HandStep.for_models(two, rule)
    assert with_nan.compiled
    x, y = batch(3)
    for _ in range(5):
        loss = with_nan(x, y)
        kept = without(x[[0, 2]], y[[0, 2]])
    assert torch.isnan(loss[1]) and torch.equal(loss[[0, 2]], kept)
    assert torch.equal(with_nan.params[[0, 2]], without.params)
    reference = HandStep.for_models(three[1:2], rule, compiled=False)  # torch's layers agree
    assert torch.isnan(reference(x[1:2], y[1:2])).all()


@pytest.mark.parametrize("label", [2, -1, 1 << 40])
def test_a_label_outside_the_classes_is_refused_and_nothing_moves(label):
    step = HandStep.for_models(models(2), UpdateRule("adam", 0.01))
    x, y = batch(2)
    y[1, 7] = label
    before = step.params.clone()
    with pytest.raises(IndexError, match=rf"^Target {label} is out of bounds \(classes 0..1\)$"):
        step(x, y)
    assert torch.equal(step.params, before) and not step.grad.any()


def test_float64_and_a_switched_off_step_take_torchs_layers():
    assert HandStep.for_models(models(1), UpdateRule("sgd", 0.1)).compiled
    assert not HandStep.for_models(models(1, torch.float64), UpdateRule("sgd", 0.1)).compiled
    assert not HandStep.for_models(models(1), UpdateRule("sgd", 0.1), compiled=False).compiled
