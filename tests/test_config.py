"""The config: composed from conf/, typed by linesweep/config.py, checked before any work."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from linesweep.core.errors import ConfigError
from linesweep.run.config import AdamConfig, SGDConfig, TrainConfig
from linesweep.run.validation import to_train_config


def test_defaults_are_the_notebook_setup(compose_config):
    cfg = to_train_config(compose_config())
    assert (cfg.model.out_1, cfg.model.out_2) == (2, 1)
    assert all(
        getattr(cfg.model, layer).kernel_size == 2 for layer in ("conv1", "pool1", "conv2", "pool2")
    )
    assert (cfg.model.pool1.stride, cfg.model.pool2.stride) == (1, 1)
    assert isinstance(cfg.optimizer, AdamConfig) and cfg.optimizer.lr == 0.001
    assert (cfg.trainer.batch_size, cfg.trainer.epochs) == (10, 10)
    assert (cfg.data.N_images, cfg.data.N_val_images, cfg.data.offset, cfg.data.p) == (
        10_000, 1_000, 0, 0.9
    )  # fmt: skip


def test_yaml_defaults_agree_with_the_schema_defaults(compose_config):
    """conf/ repeats the schema's defaults for readability; they must never drift apart."""
    composed = to_train_config(compose_config())
    expected = TrainConfig(optimizer=AdamConfig())
    assert OmegaConf.structured(composed) == OmegaConf.structured(expected)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_each_optimizer_composes_to_its_typed_schema(compose_config, name):
    cfg = to_train_config(compose_config(f"optimizer={name}"))
    assert cfg.optimizer._target_.lower().endswith(name)


@pytest.mark.parametrize(
    ("experiment", "images", "epochs"),
    [("notebook", 10_000, 10), ("hard", 2_000, 10), ("smoke", 200, 2)],
)
def test_each_experiment_preset_sets_what_its_comment_promises(
    compose_config, experiment, images, epochs
):
    cfg = to_train_config(compose_config(f"experiment={experiment}"))
    assert (cfg.data.N_images, cfg.trainer.epochs) == (images, epochs)


def test_notebook_preset_keeps_the_notebooks_unshuffled_order(compose_config):
    assert to_train_config(compose_config("experiment=notebook")).trainer.shuffle is False
    assert to_train_config(compose_config()).trainer.shuffle is True


def test_required_interface_keys_exist_and_override(compose_config):
    cfg = compose_config(
        "data.N_images=100", "data.offset=1", "data.p=0.5", "model.out_1=3", "model.out_2=4",
        "optimizer.lr=0.02", "trainer.epochs=3", "trainer.batch_size=7",
    )  # fmt: skip
    typed = to_train_config(cfg)
    assert (typed.data.N_images, typed.data.offset, typed.data.p) == (100, 1, 0.5)
    assert (typed.model.out_1, typed.model.out_2, typed.optimizer.lr) == (3, 4, 0.02)
    assert (typed.trainer.epochs, typed.trainer.batch_size) == (3, 7)


def test_unknown_key_fails_at_compose_time(compose_config):
    with pytest.raises(ConfigCompositionException, match=r"model\.out_3"):
        compose_config("model.out_3=4")


def test_unknown_optimizer_key_fails_at_compose_time(compose_config):
    with pytest.raises(ConfigCompositionException, match="momentun"):
        compose_config("optimizer=sgd", "optimizer.momentun=0.9")


def test_wrong_type_fails_at_compose_time(compose_config):
    with pytest.raises(ConfigCompositionException) as info:
        compose_config("model.out_1=four")
    assert isinstance(info.value.__cause__, (ValidationError, ConfigKeyError))


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        ("data.p=1.5", "data.p=1.5", "a probability in [0, 1]"),
        ("data.noise_p=-0.1", "data.noise_p=-0.1", "a probability in [0, 1]"),
        ("data.N_images=101", "data.N_images=101", "an even integer >= 2"),
        ("data.N_val_images=0", "data.N_val_images=0", "an even integer >= 2"),
        ("data.offset=2", "data.offset=2", "an integer in [0, 1]"),
        ("data.offset=-1", "data.offset=-1", "an integer in [0, 1]"),
        ("data.line_length=12", "data.line_length=12", "an integer in [1, data.image_size=11]"),
        ("data.line_width=9", "data.line_width=9", "a square bar has no orientation"),
        ("model.out_1=0", "model.out_1=0", "an integer in [1, 512]"),
        ("model.out_2=-3", "model.out_2=-3", "an integer in [1, 512]"),
        ("model.conv1.kernel_size=0", "model.conv1.kernel_size=0", "an integer >= 1"),
        ("model.pool2.stride=0", "model.pool2.stride=0", "an integer >= 1"),
        ("model.conv2.padding=-1", "model.conv2.padding=-1", "an integer >= 0"),
        ("model.pool1.dilation=0", "model.pool1.dilation=0", "an integer >= 1"),
        ("optimizer.lr=0", "optimizer.lr=0.0", "a finite number > 0"),
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1", "a finite number > 0"),
        ("optimizer.lr=inf", "optimizer.lr=inf", "a finite number > 0"),
        ("optimizer.weight_decay=-1", "optimizer.weight_decay=-1.0", "a finite number >= 0"),
        ("optimizer.betas=[0.9,1.0]", "optimizer.betas=[0.9,1.0]", "two numbers in [0, 1)"),
        ("trainer.epochs=0", "trainer.epochs=0", "an integer >= 1"),
        ("trainer.batch_size=0", "trainer.batch_size=0", "an integer >= 1"),
        ("trainer.device=gpu", "trainer.device=gpu", "one of cpu, cuda, cuda:N, auto"),
        ("trainer.num_threads=0", "trainer.num_threads=0", "null (automatic) or an integer >= 1"),
        ("objective.metrics=[accuracy]", "objective.metrics=[accuracy]", "names from"),
        ("objective.epoch=first", "objective.epoch=first", "last or best"),
    ],
)
def test_semantic_errors_name_the_key_the_value_and_what_is_allowed(
    compose_config, override, key, allowed
):
    with pytest.raises(ConfigError) as info:
        to_train_config(compose_config(override))
    message = str(info.value)
    assert message.startswith(f"{key} is not allowed: ")
    assert allowed in message
    assert "\n" not in message


def test_nesterov_needs_momentum(compose_config):
    with pytest.raises(ConfigError, match=r"optimizer.nesterov=true .*momentum > 0"):
        to_train_config(
            compose_config("optimizer=sgd", "optimizer.momentum=0", "optimizer.nesterov=true")
        )
    assert isinstance(
        to_train_config(compose_config("optimizer=sgd", "optimizer.nesterov=true")).optimizer,
        SGDConfig,
    )


def test_offset_limit_follows_the_geometry(compose_config):
    # A 7-pixel bar centred in a 13-pixel image has 3 pixels of room on each side.
    assert to_train_config(
        compose_config("data.image_size=13", "data.line_length=7", "data.offset=3")
    )
    with pytest.raises(ConfigError, match=r"data.offset=4 .*\[0, 3\]"):
        to_train_config(compose_config("data.image_size=13", "data.line_length=7", "data.offset=4"))
