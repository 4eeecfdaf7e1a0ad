"""The data generator: balanced classes, bars of the right shape and place, reproducible seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from linesweep.run.bars import centred_start, max_offset
from linesweep.run.config import DataConfig
from linesweep.run.data import make_split, make_splits


def bounding_box(image: torch.Tensor) -> tuple[int, int, int, int]:
    rows = torch.nonzero(image.any(dim=1)).flatten()
    cols = torch.nonzero(image.any(dim=0)).flatten()
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def test_classes_are_exactly_balanced_and_ordered():
    split = make_split(DataConfig(), 1_000, seed=1)
    assert split.images.shape == (1_000, 1, 11, 11) and split.images.dtype == torch.float32
    assert split.labels.tolist() == [0] * 500 + [1] * 500


def test_full_bars_are_vertical_for_class_0_and_horizontal_for_class_1():
    split = make_split(DataConfig(p=1.0), 10, seed=0)
    vertical, horizontal = split.images[0, 0], split.images[-1, 0]
    assert vertical.sum() == horizontal.sum() == 27
    assert bounding_box(vertical) == (1, 9, 4, 6)  # the notebook's rows 1..9, columns 4..6
    assert bounding_box(horizontal) == (4, 6, 1, 9)


def test_pixels_outside_the_bar_stay_off_without_noise():
    split = make_split(DataConfig(p=0.9, offset=1), 400, seed=3)
    for image, label in zip(split.images[:, 0], split.labels, strict=True):
        top, bottom, left, right = bounding_box(image)
        tall, wide = bottom - top + 1, right - left + 1
        assert (tall <= 9 and wide <= 3) if label == 0 else (tall <= 3 and wide <= 9)


def test_p_is_the_fraction_of_bar_pixels_that_are_on():
    split = make_split(DataConfig(p=0.7), 2_000, seed=5)
    fraction = split.images.sum() / (2_000 * 27)
    assert abs(float(fraction) - 0.7) < 0.01


def test_noise_lights_the_background():
    quiet = make_split(DataConfig(p=0.0, noise_p=0.0), 200, seed=2)
    noisy = make_split(DataConfig(p=0.0, noise_p=0.2), 200, seed=2)
    assert quiet.images.sum() == 0
    background = (11 * 11 - 27) * 200
    assert abs(float(noisy.images.sum()) / background - 0.2) < 0.03


@pytest.mark.parametrize(
    ("size", "length", "width", "offset"), [(11, 9, 3, 1), (13, 7, 2, 2), (16, 8, 3, 4)]
)
def test_offsets_cover_the_whole_range_and_never_cut_a_bar(size, length, width, offset):
    cfg = DataConfig(image_size=size, line_length=length, line_width=width, offset=offset, p=1.0)
    split = make_split(cfg, 2_000, seed=7)
    starts = set()
    for image in split.images[:1_000, 0]:  # vertical bars
        top, bottom, left, right = bounding_box(image)
        assert (bottom - top + 1, right - left + 1) == (length, width)  # whole, never truncated
        starts.add((top - centred_start(size, length), left - centred_start(size, width)))
    expected = {(a, b) for a in range(-offset, offset + 1) for b in range(-offset, offset + 1)}
    assert starts == expected


def test_max_offset_is_the_room_on_the_tightest_side():
    assert max_offset(11, 9, 3) == 1
    assert max_offset(13, 7, 2) == 3
    assert max_offset(10, 9, 3) == 0


def test_same_seed_same_images_different_seed_different_images():
    a, b, c = (make_split(DataConfig(offset=1), 100, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)


def test_train_and_validation_come_from_independent_streams():
    train, val = make_splits(DataConfig(N_images=100, N_val_images=100, offset=1), 11, 12)
    assert not torch.equal(train.images, val.images)


def test_generation_leaves_global_random_state_untouched():
    np.random.seed(123)
    torch.manual_seed(123)
    expected_np, expected_torch = np.random.random(), torch.rand(1)
    np.random.seed(123)
    torch.manual_seed(123)
    make_splits(DataConfig(N_images=100, N_val_images=20, offset=1), 1, 2)
    assert np.random.random() == expected_np
    assert torch.equal(torch.rand(1), expected_torch)


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(4, 20),
    data=st.data(),
)
def test_any_valid_geometry_generates_whole_bars(size, data):
    length = data.draw(st.integers(2, size))
    width = data.draw(st.integers(1, length - 1))
    offset = data.draw(st.integers(0, max_offset(size, length, width)))
    cfg = DataConfig(image_size=size, line_length=length, line_width=width, offset=offset, p=1.0)
    split = make_split(cfg, 20, seed=data.draw(st.integers(0, 2**32 - 1)))
    assert split.images.sum() == 20 * length * width
