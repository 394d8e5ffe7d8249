"""Tests of course_lib.data: the digits against scikit-learn's raw pixels, the split, minibatches."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sk_load_digits

from course_lib.data import iterate_minibatches, load_digits, train_test_split_digits


def test_load_digits_shape_range_labels():
    images, labels = load_digits()
    assert images.shape == (1797, 1, 8, 8)
    assert images.dtype == torch.float32
    assert labels.shape == (1797,) and labels.dtype == torch.long
    assert images.min().item() == -1.0 and images.max().item() == 1.0
    assert set(labels.tolist()) == set(range(10))
    assert np.bincount(labels.numpy()).min() >= 170  # every class well represented (174..183)


def test_load_digits_matches_sklearn_raw_pixels():
    """Invert the stated map x = v/8 - 1 and compare with sklearn's flat 0..16 pixel rows."""
    raw = sk_load_digits()
    images, labels = load_digits(dtype=torch.float64)
    recovered = ((images.reshape(1797, 64) + 1.0) * 8.0).numpy()
    np.testing.assert_array_equal(recovered, raw.data)
    np.testing.assert_array_equal(labels.numpy(), raw.target)


def test_load_digits_device_and_dtype(device):
    images, labels = load_digits(device=device, dtype=torch.float32)
    assert images.device.type == device.type and labels.device.type == device.type


def test_load_digits_bad_dtype():
    with pytest.raises(TypeError, match="dtype"):
        load_digits(dtype=torch.long)


def _rows(x):
    return Counter(tuple(r) for r in x.reshape(x.shape[0], -1).tolist())


def test_split_partitions_the_data_deterministically():
    x_tr, y_tr, x_te, y_te = train_test_split_digits(0.2)
    assert x_te.shape == (359, 1, 8, 8) and x_tr.shape == (1438, 1, 8, 8)
    assert y_tr.shape == (1438,) and y_te.shape == (359,)
    images, labels = load_digits()
    full = torch.cat([images.reshape(1797, -1), labels[:, None].float()], 1)
    parts = torch.cat([torch.cat([x_tr.reshape(-1, 64), y_tr[:, None].float()], 1),
                       torch.cat([x_te.reshape(-1, 64), y_te[:, None].float()], 1)])
    assert _rows(full) == _rows(parts)  # same multiset of (image, label) rows
    again = train_test_split_digits(0.2)
    assert all(torch.equal(a, b) for a, b in zip((x_tr, y_tr, x_te, y_te), again))
    other = train_test_split_digits(0.2, generator=torch.Generator().manual_seed(5))
    assert not torch.equal(other[3], y_te)


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.1, 1e-6])
def test_split_bad_fraction(frac):
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split_digits(frac)


@pytest.mark.parametrize("drop_last", [False, True])
def test_iterate_minibatches_covers_every_row_once(generator, drop_last):
    x = torch.arange(23.0)[:, None].repeat(1, 2)
    y = torch.arange(23)
    batches = list(iterate_minibatches((x, y), 5, generator=generator, drop_last=drop_last))
    sizes = [len(b[1]) for b in batches]
    assert sizes == ([5, 5, 5, 5] if drop_last else [5, 5, 5, 5, 3])
    seen = torch.cat([b[1] for b in batches])
    for bx, by in batches:  # rows stay aligned across tensors
        assert torch.equal(bx[:, 0].long(), by)
    if not drop_last:
        assert sorted(seen.tolist()) == list(range(23))
    assert seen.tolist() != sorted(seen.tolist())  # shuffled


def test_iterate_minibatches_in_order_and_single_tensor():
    x = torch.arange(7.0)
    batches = list(iterate_minibatches(x, 3, shuffle=False))
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]


def test_iterate_minibatches_bad_input():
    with pytest.raises(ValueError, match="tensors"):
        list(iterate_minibatches((torch.zeros(3), torch.zeros(4)), 2))
    with pytest.raises(ValueError, match="batch_size"):
        list(iterate_minibatches(torch.zeros(3), 0))
    with pytest.raises(TypeError, match="tensors"):
        list(iterate_minibatches([1, 2, 3], 2))
