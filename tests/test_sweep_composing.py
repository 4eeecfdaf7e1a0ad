"""SweepComposer gives every trial exactly the config Hydra's `load_sweep_config` gives it.

Each test composes the real config the way a sweep does (the master config of a multirun, then
one override list per trial, as the sweeper writes them) through the composer and through Hydra,
and compares the two: the YAML (hydra node included, unresolved), every node's type, metadata and
flags, and the resolver cache; or, where Hydra refuses a trial, the exception.
"""

from __future__ import annotations

import contextlib
import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf

from linesweep.run.config import register_configs
from linesweep.sweep.composing import ComposingLoader, SweepComposer

# A sweep's command line: the master config is composed from it once.
MASTER = [
    "hydra/sweeper=linesweep",
    "experiment=smoke",
    "plots=none",
    "hydra.sweeper.sampler.seed=0",
    "optimizer.lr=tag(log,interval(1e-4,1e-1))",
    "hydra.sweep.dir=sweeps/composing",
    "hydra.mode=MULTIRUN",
]


def trial(number: int, *overrides: str) -> list[str]:
    """A trial's overrides as the sweeper writes them: fixed ones (experiment=smoke unless it
    names another), sampled ones, its folder, and its link to the study (a quoted string that
    differs in every trial)."""
    link = json.dumps({"study": "linesweep", "number": number})
    named = any(o.startswith("experiment=") for o in overrides)
    return [
        *([] if named else ["experiment=smoke"]),
        "plots=none",
        *overrides,
        f"hydra.sweep.subdir={number}",
        f"++hydra.job.env_set.LINESWEEP_TRIAL='{link}'",
    ]


class CountingLoader:
    """The config loader, counting its full compositions; `answers` holds the fingerprint of
    each (or of its refusal) as Hydra gave it, before the composer got it, by override list."""

    def __init__(self, loader: Any) -> None:
        self.loader, self.full = loader, 0
        self.answers: dict[tuple[int, tuple[str, ...]], dict[str, Any]] = {}

    def load_sweep_config(self, master: DictConfig, overrides: list[str]) -> DictConfig:
        self.full += 1
        key = (id(master), tuple(overrides))
        try:
            config = self.loader.load_sweep_config(master, overrides)
        except Exception as err:
            self.answers[key] = fingerprint(err)
            raise
        self.answers[key] = fingerprint(config)
        return config

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


@pytest.fixture
def sweep_hydra(hydra_restore_singletons):
    """start(*master overrides) -> (config loader, master config) of a sweep; Hydra stays
    initialised for it until the test ends."""
    with contextlib.ExitStack() as stack:

        def start(*extra_master: str) -> tuple[Any, DictConfig]:
            register_configs()
            stack.enter_context(
                initialize_config_module("linesweep.conf", version_base="1.3", job_name="train")
            )
            loader = GlobalHydra.instance().config_loader()
            overrides = [*MASTER, *extra_master]
            return loader, loader.load_configuration("train", overrides, RunMode.MULTIRUN)

        yield start


def anatomy(config: DictConfig) -> list[tuple]:
    """Every node: its path, class, metadata and flags (what YAML alone would not show)."""
    rows = []

    def walk(node: Any, path: str) -> None:
        meta = node._metadata
        flags = sorted((meta.flags or {}).items())
        rows.append(
            (path, type(node).__name__, meta.ref_type, meta.object_type, meta.optional, flags)
        )
        if isinstance(node, DictConfig | ListConfig) and not (
            node._is_none() or node._is_missing() or node._is_interpolation()
        ):
            keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
            for key in keys:
                walk(node._get_node(key), f"{path}.{key}")

    walk(config, "")
    return rows


def outcome(compose: Any, overrides: list) -> Any:
    """compose(overrides), or the exception it raised."""
    try:
        return compose(list(overrides))
    except Exception as err:  # compared by the caller
        return err


def compose_both(composer: SweepComposer, loader: Any, master: DictConfig, overrides: list):
    """(composer's config, Hydra's config), or the exception each raised."""
    return [
        outcome(composer.compose, overrides),
        outcome(lambda o: loader.load_sweep_config(master, o), overrides),
    ]


def fingerprint(result: Any) -> dict[str, Any]:
    """Everything compared of a composed config (or of a refusal), taken once."""
    if isinstance(result, Exception):
        return {
            "refusal": (type(result), str(result)),
            "cause": (type(result.__cause__), str(result.__cause__)),
        }
    return {
        "yaml": OmegaConf.to_yaml(result),  # the hydra node included
        "anatomy": anatomy(result),
        "resolver cache": dict(OmegaConf.get_cache(result)),
    }


def assert_matches(ours: Any, expected: dict[str, Any], overrides: list) -> None:
    """`ours` is what `expected` (Hydra's fingerprint) says, part by part."""
    if "refusal" in expected:
        assert isinstance(ours, Exception), f"Hydra refuses {overrides}, the composer does not"
    else:
        assert not isinstance(ours, Exception), f"{overrides}: {ours!r}"
    found = fingerprint(ours)
    for part, value in expected.items():
        assert found[part] == value, f"{overrides}: {part}"


def assert_same(ours: Any, hydras: Any, overrides: list) -> None:
    assert_matches(ours, fingerprint(hydras), overrides)


# In this order: frames made, hit, missed, and hit again after other frames.
CASES: list[tuple[str, ...]] = [
    ("optimizer.lr=0.01",),
    ("optimizer.lr=0.002",),
    ("optimizer.lr=1e-4",),
    ("optimizer.lr=1",),  # an int into a float
    ("optimizer.lr=${optimizer.eps}",),  # an interpolation
    ("optimizer.lr=${seed}",),
    ("optimizer.lr=0.5",),
    ("optimizer.lr=0.01", "trainer.epochs=3"),
    ("optimizer.lr=0.02", "trainer.epochs=7"),
    ("optimizer.betas=[0.8,0.99]",),
    ("optimizer.betas=[0.5,0.9]",),
    ("optimizer.betas=[]",),
    ("hydra.callbacks.output_folder_check=abc",),  # a dict replaced by a string
    ("hydra.callbacks.output_folder_check=[1,2]",),  # refused: a list is not a string
    ("objective.metrics=${seed}",),
    ("objective.metrics=[a]",),  # a list where there was none: a fresh node
    ("trainer.device=cuda",),
    ("trainer.device='cuda:1'",),
    ('trainer.device="a b,c=d"',),
    (r"trainer.device='it\'s'",),
    ("trainer.num_threads=null",),
    ("trainer.num_threads=2",),
    ("trainer.num_threads=4",),
    ("trainer.shuffle=false",),
    ("trainer.shuffle=true",),
    ("seed=${trainer.epochs}",),
    ("seed=5",),
    ("optimizer=sgd", "optimizer.lr=0.1"),  # a group: the frame holds the choice
    ("optimizer=sgd", "optimizer.lr=0.2"),
    ("optimizer=adamw", "optimizer.lr=0.2"),
    ("optimizer=sgd", "optimizer.momentum=0.5", "optimizer.lr=0.3"),
    ("model=cnn", "model.out_1=4"),
    ("model=cnn", "model.out_1=8"),
    ("experiment=hard", "optimizer.lr=0.01"),
    ("experiment=hard", "optimizer.lr=0.03"),
    ("logger=[csv,tensorboard]", "optimizer.lr=0.1"),
    ("+new.key=1", "optimizer.lr=0.1"),  # `+`: fails if set, so every value a frame
    ("+new.key=2", "optimizer.lr=0.2"),
    ("++new.key=1",),
    ("++new.key=2",),
    ("++trainer.epochs=4",),
    ("++trainer.epochs=5",),
    ("~trainer.progress_bar",),  # refused: a schema's key
    ("~hydra.callbacks.output_folder_check", "optimizer.lr=0.2"),
    ("~hydra.callbacks.output_folder_check", "optimizer.lr=0.3"),
    ("+new={a:1,b:2}", "~new.a", "optimizer.lr=0.3"),
    ("+new={a:1,b:2}", "~new.a", "optimizer.lr=0.4"),
    ("~optimizer", "seed=3"),  # a group deleted: no optimizer at all
    ("~optimizer", "seed=4"),
    ("trainer.epochs=3", "trainer.epochs=4"),  # one key twice: each a frame of its own
    ("trainer.epochs=5", "trainer.epochs=6"),
    ("++seed=1", "seed=2"),
    ("++seed=3", "seed=4"),
    ("++new.a=1", "~new.a"),  # set, then deleted
    ("++new.a=2", "~new.a"),
    ("optimizer.lr@foo=0.1",),  # refused: a package is for config groups
    ("optimizer={lr:0.1}",),  # a dict merges with what is there
    ("optimizer={lr:0.2}",),
    ("optimizer={weight_decay:0.2}",),  # lr back to its default
    ("hydra.job.chdir=true", "optimizer.lr=0.1"),
    ("hydra.job.chdir=false", "optimizer.lr=0.2"),
    ("hydra.verbose=true",),
    ("hydra.job.env_copy=[HOME]",),  # Hydra derives env_set from it
    ("hydra.job.env_copy=[PATH]",),
    ("++hydra.job.env_set.HOME=x", "hydra.job.env_copy=[HOME]"),
    ("++hydra.job.env_set.HOME=y", "hydra.job.env_copy=[HOME]"),  # copied: $HOME wins
    ("hydra.job.config.override_dirname.kv_sep=:", "optimizer.lr=0.1"),
    ("hydra.job.config.override_dirname.kv_sep=+", "optimizer.lr=0.2"),
    ("hydra.job.config.override_dirname.exclude_keys=[optimizer.lr]", "seed=1"),
    ("trainer.epochs=abc",),  # refused: Hydra's message
    ("optimizer.lr=0.01", "trainer.epochs=abc"),
    ("optimizer.lr=0.01", "trainer.epochs=7"),
    ("trainer.epochs=[1,2]",),
    ("no.such.key=1",),
    ("optimizer.lr=choice(0.1,0.2)",),  # a sweep in one trial: refused
    ("optimizer.lr=0.004",),
]
TRIALS = [trial(number, *overrides) for number, overrides in enumerate(CASES)]


@pytest.mark.slow  # 150 full compositions; the tests below check each kind of frame quickly
def test_every_trial_is_composed_as_hydra_composes_it(sweep_hydra):
    loader, master = sweep_hydra()
    master_before = fingerprint(master)
    counting = CountingLoader(loader)
    composer = SweepComposer(counting, master)
    hydras = []  # Hydra's answer for each trial: the same master and overrides give the same
    for overrides in TRIALS:
        ours = outcome(composer.compose, overrides)
        # Where the composer composed the trial fully, Hydra's answer is the one the loader gave
        # it (fingerprinted before the composer saw it); every other trial Hydra composes here.
        answer = counting.answers.pop((id(master), tuple(overrides)), None)
        hydras.append(
            answer or fingerprint(outcome(partial(loader.load_sweep_config, master), overrides))
        )
        counting.answers.clear()
        assert_matches(ours, hydras[-1], overrides)
    for overrides, expected in reversed(list(zip(TRIALS, hydras, strict=True))):
        full_before = counting.full
        ours = outcome(composer.compose, overrides)
        assert_matches(ours, expected, overrides)
        if "refusal" not in expected:  # its frame made in the first pass
            assert counting.full == full_before, overrides
    assert fingerprint(master) == master_before  # what every trial is composed from, untouched


def test_an_lr_only_sweep_composes_fully_once(sweep_hydra):
    loader, master = sweep_hydra()
    counting = CountingLoader(loader)
    composer = SweepComposer(counting, master)
    for number in range(20):
        composer.compose(trial(number, f"optimizer.lr={1e-4 * 1.4**number!r}"))
    assert counting.full == 1


def test_a_choice_of_group_composes_fully_once_per_option(sweep_hydra):
    loader, master = sweep_hydra()
    counting = CountingLoader(loader)
    composer = SweepComposer(counting, master)
    for number in range(6):  # alternating: each frame met again after the other, three times
        option = ("adam", "sgd")[number % 2]
        overrides = trial(number, f"optimizer={option}", f"optimizer.lr={0.001 * (number + 1)!r}")
        assert_same(*compose_both(composer, loader, master, overrides), overrides)
    assert counting.full == 2


def test_a_bad_value_is_refused_in_hydras_words_without_a_full_composition(sweep_hydra):
    loader, master = sweep_hydra()
    counting = CountingLoader(loader)
    composer = SweepComposer(counting, master)
    composer.compose(trial(0, "trainer.epochs=3"))
    bad = trial(1, "trainer.epochs=abc")
    ours, hydras = compose_both(composer, loader, master, bad)
    assert counting.full == 1  # the composer's refusal came from re-applying the value
    assert isinstance(ours, ConfigCompositionException)
    assert str(ours) == str(hydras) == "Error merging override trainer.epochs=abc"
    assert_same(ours, hydras, bad)
    assert "Value 'abc' of type 'str' could not be converted to Integer" in str(ours.__cause__)


def test_trials_share_nothing(sweep_hydra):
    """Each config is the trial's own: edits to it (as `_compose` and a trial's process make)
    reach neither later trials nor the cached frame, and later trials leave it alone."""
    loader, master = sweep_hydra()
    composer = SweepComposer(loader, master)
    first = composer.compose(trial(0, "optimizer.lr=0.01"))
    first.optimizer.betas[0] = 0.1
    first.hydra.job.num = 99
    edited = OmegaConf.to_yaml(first)
    for number in (1, 2):
        overrides = trial(number, f"optimizer.lr={0.01 * (number + 1)!r}")
        later = composer.compose(overrides)
        assert_same(later, loader.load_sweep_config(master, overrides), overrides)
        later.optimizer.betas.append(0.5)
        later.trainer.epochs = 1
    assert OmegaConf.to_yaml(first) == edited


def test_what_hydra_reads_afresh_is_read_for_every_trial(sweep_hydra, monkeypatch, tmp_path):
    """The working directory, the variables of `env_copy`, and the master's resolver cache."""
    monkeypatch.setenv("LINESWEEP_COMPOSING", "first")
    loader, master = sweep_hydra("hydra.job.env_copy=[LINESWEEP_COMPOSING]")
    counting = CountingLoader(loader)
    composer = SweepComposer(counting, master)
    composer.compose(trial(0, "optimizer.lr=0.01"))
    monkeypatch.setenv("LINESWEEP_COMPOSING", "second")
    monkeypatch.chdir(tmp_path)
    assert master.hydra.run.dir  # resolved: the master caches another `${now:...}`
    overrides = trial(1, "optimizer.lr=0.02")
    ours, hydras = compose_both(composer, loader, master, overrides)
    assert_same(ours, hydras, overrides)
    assert ours.hydra.job.env_set.LINESWEEP_COMPOSING == "second"
    assert ours.hydra.runtime.cwd == str(tmp_path)
    assert ("%H-%M-%S-%f",) in OmegaConf.get_cache(ours)["now"]
    assert counting.full == 1


def test_groups_found_through_hydra_searchpath_are_groups(sweep_hydra, tmp_path: Path):
    """A group only the searched folder has: each option a frame, never a value re-applied."""
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "extra.yaml").write_text(
        "# @package _global_\ndefaults:\n  - /faster: one\n"
    )
    (tmp_path / "faster").mkdir()
    for name, lr in (("one", 0.5), ("two", 0.7)):
        (tmp_path / "faster" / f"{name}.yaml").write_text(
            f"# @package _global_\noptimizer:\n  lr: {lr}\n"
        )
    loader, master = sweep_hydra(f"hydra.searchpath=[file://{tmp_path}]")
    counting = CountingLoader(loader)
    composer = SweepComposer(counting, master)
    for number, option in enumerate(("one", "two", "one", "two")):
        overrides = trial(number, "experiment=extra", f"faster={option}")
        ours, hydras = compose_both(composer, loader, master, overrides)
        assert_same(ours, hydras, overrides)
        assert ours.optimizer.lr == {"one": 0.5, "two": 0.7}[option]
    assert counting.full == 2


def test_a_loader_without_hydras_internals_composes_every_trial_fully(sweep_hydra):
    loader, master = sweep_hydra()

    class PublicOnly:
        full = 0

        def load_sweep_config(self, master: DictConfig, overrides: list[str]) -> DictConfig:
            self.full += 1
            return loader.load_sweep_config(master, overrides)

    public = PublicOnly()
    composer = SweepComposer(public, master)
    for number in range(3):
        overrides = trial(number, f"optimizer.lr={0.01 * (number + 1)!r}")
        ours = composer.compose(overrides)
        assert_same(ours, loader.load_sweep_config(master, overrides), overrides)
    assert public.full == 3


def test_a_launcher_composes_through_the_frames_and_sends_its_workers_the_plain_loader(
    sweep_hydra,
):
    loader, master = sweep_hydra()
    counting = CountingLoader(loader)
    launchers = ComposingLoader(counting, master)  # what Hydra's launcher is handed
    for number in range(4):
        overrides = trial(number, f"optimizer.lr={0.01 * (number + 1)!r}")
        ours = launchers.load_sweep_config(master, overrides)
        assert_same(ours, loader.load_sweep_config(master, overrides), overrides)
    assert counting.full == 1  # one frame: composed fully once
    other_master = loader.load_configuration("train", MASTER, RunMode.MULTIRUN)
    launchers.load_sweep_config(other_master, trial(9, "optimizer.lr=0.5"))
    assert counting.full == 2  # another master config: the loader's own composition
    assert launchers.get_search_path() is loader.get_search_path()  # the rest: the loader's
    rebuild, arguments = ComposingLoader(loader, master).__reduce__()  # as pickle sends it
    assert rebuild(*arguments) is loader  # to joblib's or submitit's workers: the plain loader


def test_linesweeps_sweeper_hands_its_launcher_the_composing_loader(sweep_hydra):
    from hydra.types import HydraContext

    from hydra_plugins.linesweep_optuna_sweeper.optuna_sweeper import LinesweepOptunaSweeper

    loader, master = sweep_hydra()
    sweeper = LinesweepOptunaSweeper()
    context = HydraContext(config_loader=loader, callbacks=None)  # type: ignore[arg-type]
    sweeper.setup(hydra_context=context, task_function=lambda cfg: None, config=master)
    handed = sweeper.launcher.hydra_context.config_loader
    assert isinstance(handed, ComposingLoader)
    overrides = trial(0, "optimizer.lr=0.02")
    assert_same(
        handed.load_sweep_config(master, overrides),
        loader.load_sweep_config(master, overrides),
        overrides,
    )
