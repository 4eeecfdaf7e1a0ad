"""The C forward and backward (`linesweep.run.native`): built once per machine, never in the way.

What it computes is specified with torch's layers in tests/test_step.py (every step test runs on
both); here, what is the C step's own:

- it is built into the user's cache folder once, and a second process loads it without
  building again; a cached file that does not load is built again; a compiler that refuses
  `-march=native` builds it without; a library that would abort the process loading it is
  never loaded there, nor cached;
- where it cannot be built (no compiler, one that fails, hangs, writes nothing or says bytes
  that are not UTF-8, an unbalanced `$CC`, no home folder, `LINESWEEP_NATIVE=0`), the step is
  torch's, and one warning line says why (none when switched off on purpose); a sweep's process
  that cannot build it switches it off for its trials; Ctrl-C or SIGTERM during a build ends
  the process and the compiler at once;
- a member whose parameters went to NaN gets a NaN loss, as in torch, and the others step bit
  for bit as they would without it;
- inputs torch's layers refuse are refused before C reads them: a label outside the classes or
  not an integer, images or labels off the CPU, images of another size, dtype, rank or member
  count, labels that do not match the batch, an empty batch, an epoch of batch size 0;
  images expanded over the batch are read as their copy; NaN images send NaN gradients where
  torch's layers do;
- float64 models and a step asked with `compiled=False` take torch's layers.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

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
    cached = native._library_path(native._compiler(), (*native.FOR_THIS_PROCESSOR, *native.FLAGS))
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cut short by a full disk")
    leftover = cached.parent / "tmp_of_a_killed_build"
    leftover.mkdir()
    os.utime(leftover, (0, 0))  # long ago
    lib = fresh_library()
    assert lib is not None and lib._name == str(cached) and cached.stat().st_size > 1000
    assert not leftover.exists()


def compiler(tmp_path, name: str, script: str) -> str:
    """A fake compiler: a shell script that does `script` (`cc "$@"` compiles for real)."""
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return str(path)


def test_a_compiler_that_refuses_march_native_builds_it_without(
    fresh_library, monkeypatch, tmp_path
):
    cc = compiler(tmp_path, "picky-cc", 'case "$*" in *march=native*) exit 1;; esac\nexec cc "$@"')
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", cc)
    lib = fresh_library()
    assert lib is not None and lib._name == str(native._library_path([cc], native.FLAGS))
    assert HandStep.for_models(models(1), UpdateRule("sgd", 0.1)).compiled


FAILING = {  # name: (the compiler's script, what the warning says in its parentheses)
    "fails": ("exit 1", "no output"),
    "says why": ('echo "x.c:1: error: it went wrong" >&2; exit 1', "x.c:1: error: it went wrong"),
    "not UTF-8": ("printf '\\377\\376 error\\n' >&2; exit 1", "\ufffd\ufffd error"),
    "writes nothing": ("exit 0", "ended well but wrote no library"),
    "hangs": ("sleep 30", "took over 1 s; stopped"),
}


ABORTS = "__attribute__((constructor)) static void loaded(void) { abort(); }"


def test_a_library_that_would_abort_its_process_is_never_loaded_here(
    fresh_library, monkeypatch, tmp_path, caplog
):  # what a library built with CC="gcc -fsanitize=address" does when loaded late
    (tmp_path / "aborts.c").write_text(f"#include <stdlib.h>\n{ABORTS}\n")
    cc = compiler(tmp_path, "cc", f'exec cc "$@" {tmp_path / "aborts.c"}')
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", cc)
    with caplog.at_level(logging.WARNING, logger="linesweep.run.native"):
        assert not HandStep.for_models(models(1), UpdateRule("adam", 0.01)).compiled
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert lines[0].startswith("the C step was built but does not load ("), lines
    assert not list((tmp_path / "cache").rglob("*.so"))  # never cached


def test_a_sweep_process_that_cannot_build_switches_it_off_for_its_trials(
    fresh_library, monkeypatch, tmp_path
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CC", "false")
    monkeypatch.setenv("LINESWEEP_NATIVE", "1")  # monkeypatch puts it back afterwards
    native.prepare_for_trials()
    assert os.environ["LINESWEEP_NATIVE"] == "0"


@pytest.mark.parametrize("case", FAILING)
def test_a_compiler_that_fails_is_said_in_one_line_and_torch_trains(
    fresh_library, monkeypatch, tmp_path, caplog, case
):
    script, said = FAILING[case]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", compiler(tmp_path, "cc", script))
    monkeypatch.setattr(native, "BUILD_TIMEOUT_S", 1)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="linesweep.run.native"):
        step = HandStep.for_models(models(1), UpdateRule("adam", 0.01))
    lines = [r.getMessage() for r in caplog.records]
    assert not step.compiled and len(lines) == 1, lines
    assert lines[0].startswith("the C step did not compile (") and said in lines[0], lines
    assert time.monotonic() - started < 10  # a hung compiler is not waited for twice
    assert list((tmp_path / "cache" / "linesweep" / "native").iterdir()) == []  # nothing left


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_hung_build_ends_the_process_and_the_compiler(tmp_path, signum):
    pid_file = tmp_path / "compiler.pid"
    cc = compiler(tmp_path, "cc", f"echo $$ > {pid_file}; exec sleep 100")
    env = {**os.environ, "CC": cc, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    building = subprocess.Popen([sys.executable, "-c", LOAD], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline and building.poll() is None
        time.sleep(0.05)
    building.send_signal(signum)
    assert building.wait(timeout=10) in (128 + signum, -signum)  # promptly, by that signal
    compiler_pid = int(pid_file.read_text())
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(compiler_pid, 0)  # stopped with it, not left running in its own session


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"CC": "false"}, "the C step did not compile"),  # a compiler that fails
        ({"CC": 'gcc "'}, "the C step did not compile (No closing quotation)"),
        ({"CC": "", "PATH": ""}, "no C compiler found"),
        ({"CC": "/no/such/cc"}, "the C step did not compile (/no/such/cc: No such file"),
        ({"LINESWEEP_NATIVE": "0"}, None),  # switched off on purpose: nothing to say
        ({"LINESWEEP_NATIVE": "Off"}, None),
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


def test_no_home_folder_is_one_line_and_torch_trains(fresh_library, monkeypatch, caplog):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def homeless():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(native.Path, "home", staticmethod(homeless))
    with caplog.at_level(logging.WARNING, logger="linesweep.run.native"):
        assert not HandStep.for_models(models(1), UpdateRule("adam", 0.01)).compiled
    assert [r.getMessage() for r in caplog.records] == [
        "the C step did not compile (Could not determine home directory.): the step runs in "
        "torch, slower"
    ]


def test_an_unknown_switch_value_is_said_and_leaves_the_c_step_on(fresh_library, monkeypatch,
                                                                  caplog):  # fmt: skip
    monkeypatch.setenv("LINESWEEP_NATIVE", "maybe")
    with caplog.at_level(logging.WARNING, logger="linesweep.run.native"):
        assert HandStep.for_models(models(1), UpdateRule("adam", 0.01)).compiled
    assert [r.getMessage() for r in caplog.records] == [
        "LINESWEEP_NATIVE='maybe' is not one of 1/true/yes/on (on) or 0/false/no/off (off): "
        "the C step stays on"
    ]


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


def test_nan_images_send_nan_gradients_where_torchs_layers_do():
    x, y = batch(2)
    x[0, 3, 0, 4, 5] = float("nan")
    found = {}
    for compiled in (True, False):
        step = HandStep.for_models(models(2), UpdateRule("sgd", 0.1), compiled=compiled)
        found[compiled] = step.gradient(x, y)[1].clone()
    assert torch.equal(found[True].isnan(), found[False].isnan())
    assert found[True][0].isnan().any() and not found[True][1].isnan().any()


def test_images_expanded_over_the_batch_step_as_their_copy():
    x, y = batch(2)
    expanded = x[:, :1].expand(2, 10, 1, 11, 11)  # stride 0 between a member's images
    grads = []
    for images in (expanded, expanded.contiguous()):
        step = HandStep.for_models(models(2), UpdateRule("sgd", 0.1))
        grads.append(step.gradient(images, y)[1].clone())
    assert torch.equal(grads[0], grads[1])


BAD_INPUTS = {  # name: (images, labels) of a step of 2 members, what it raises
    "float64 images": (lambda x, y: (x.double(), y), TypeError, "images are torch.float64"),
    "images on the meta device": (lambda x, y: (x.to("meta"), y), TypeError, "on meta"),
    "labels on the meta device": (lambda x, y: (x, y.to("meta")), TypeError, "on meta"),
    "float labels": (lambda x, y: (x, y * 0.95), TypeError, "labels are torch.float32"),
    "bool labels": (lambda x, y: (x, y.bool()), TypeError, "labels are torch.bool"),
    "images of 4 dimensions": (lambda x, y: (x[:, :, 0], y), ValueError, r"\(R, B, C0, H, W\)"),
    "one member's images expanded over three": (
        lambda x, y: (x[:1].expand(3, -1, -1, -1, -1), y),
        ValueError,
        r"for 2 member\(s\)",
    ),
    "an empty batch": (lambda x, y: (x[:, :0], y[:, :0]), ValueError, r"B >= 1"),
    "three image sets for two members": (
        lambda x, y: (torch.cat([x, x[:1]]), y),
        ValueError,
        r"for 2 member\(s\)",
    ),
    "labels shorter than the batch": (
        lambda x, y: (x, y[:, :4]),
        ValueError,
        r"^labels \(2, 4\) for images of 2 x 10$",
    ),
    "images of another size": (
        lambda x, y: (torch.zeros(2, 10, 1, 13, 13), y),
        ValueError,
        r"^images of 13x13 give the fc layer 162 features; it takes 98$",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_inputs_torchs_layers_refuse_are_refused_before_c_reads_them(case):
    make, error, says = BAD_INPUTS[case]
    step = HandStep.for_models(models(2), UpdateRule("adam", 0.01))
    before = step.params.clone()
    with pytest.raises(error, match=says):
        step(*make(*batch(2)))
    assert torch.equal(step.params, before)


@pytest.mark.parametrize("compiled", [True, False])
def test_an_epoch_refuses_a_batch_size_below_1_and_images_the_labels_do_not_match(compiled):
    step = HandStep.for_models(models(2), UpdateRule("adam", 0.01), compiled=compiled)
    x, y = batch(2)
    for images, labels, size in ((x, y, 0), (x, y[:, :6], 5)):
        with pytest.raises(ValueError, match=r"^epoch: images .* batches of 1 or more"):
            list(step.epoch(images, labels, size))


def test_float64_and_a_switched_off_step_take_torchs_layers():
    assert HandStep.for_models(models(1), UpdateRule("sgd", 0.1)).compiled
    assert not HandStep.for_models(models(1, torch.float64), UpdateRule("sgd", 0.1)).compiled
    assert not HandStep.for_models(models(1), UpdateRule("sgd", 0.1), compiled=False).compiled
