"""The memory budget: what a run will need, estimated before it allocates, and who to blame."""

from __future__ import annotations

import pytest

from linesweep.core.errors import ConfigError
from linesweep.run import plots
from linesweep.run.budget import RGBA, check_fits, estimate, figure_bytes
from linesweep.run.model import build_model
from linesweep.run.shapes import plan_cnn
from linesweep.run.validation import to_train_config
from tests.conftest import TINY


def needs(cfg):
    return {need.part: need for need in estimate(cfg, plan_cnn(cfg.model, cfg.data.image_size))}


def test_the_estimate_grows_with_what_sizes_each_part(compose_config):
    small = needs(to_train_config(compose_config(*TINY)))
    more_images = needs(to_train_config(compose_config(*TINY, "data.N_images=4000")))
    bigger_batch = needs(to_train_config(compose_config(*TINY, "trainer.batch_size=100")))
    assert more_images["data"].nbytes > small["data"].nbytes
    assert bigger_batch["activations"].nbytes > small["activations"].nbytes
    assert more_images["weights"].nbytes == small["weights"].nbytes


def test_the_largest_figure_is_estimated_from_the_real_figure_sizes(compose_config):
    only_kernels = ("plots=none", "plots.kernels=true")
    cfg = to_train_config(compose_config("model.out_1=6", "model.out_2=5", *only_kernels))
    plan = plan_cnn(cfg.model, cfg.data.image_size)
    model = build_model(cfg.model, plan, seed=0)
    drawn = max(
        plots.kernels(model.conv1.weight.detach().numpy(), "conv1").get_size_inches().prod(),
        plots.kernels(model.conv2.weight.detach().numpy(), "conv2").get_size_inches().prod(),
    )
    assert figure_bytes(cfg) == pytest.approx(drawn * cfg.plots.dpi**2 * RGBA)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.N_images=4000000", "data.N_images"),
        ("data.image_size=3000", "data.image_size"),
        ("model.conv1.padding=5000", "model.conv1.padding"),
        ("plots.dpi=20000", "plots.dpi"),
    ],
)
def test_a_run_that_does_not_fit_is_refused_naming_the_key_to_lower(compose_config, override, key):
    cfg = to_train_config(compose_config("plots=all", override))
    with pytest.raises(ConfigError, match=rf"^{key}=\d+ is not allowed: a run that fits in the"):
        check_fits(estimate(cfg, plan_cnn(cfg.model, cfg.data.image_size)), available=2**30)


def test_the_notebook_run_fits_in_a_laptop(compose_config):
    cfg = to_train_config(compose_config("experiment=notebook"))
    check_fits(estimate(cfg, plan_cnn(cfg.model, cfg.data.image_size)), available=2**30)
