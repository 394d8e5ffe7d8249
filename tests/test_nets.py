"""Tests of course_lib.nets: the sinusoidal embedding against its closed form, shapes, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from course_lib.nets import MLP, SinusoidalEmbedding, TimeConditionedMLP


def _closed_form(t: float, dim: int, max_period: float = 10000.0) -> list[float]:
    """emb_j = cos(t w_j) for j < dim/2, sin(t w_{j-dim/2}) after, w_i = max_period^(-i/(dim/2))."""
    half = dim // 2
    w = [max_period ** (-i / half) for i in range(half)]
    return [math.cos(t * wi) for wi in w] + [math.sin(t * wi) for wi in w]


@pytest.mark.parametrize("dim", [2, 8, 64])
def test_sinusoidal_embedding_closed_form_float64(dim):
    ts = [0.0, 1.0, 2.0, 17.0, 999.0, 0.37, 1e-3]
    emb = SinusoidalEmbedding(dim)(torch.tensor(ts, dtype=torch.float64))
    assert emb.shape == (len(ts), dim) and emb.dtype == torch.float64
    expected = torch.tensor([_closed_form(t, dim) for t in ts], dtype=torch.float64)
    torch.testing.assert_close(emb, expected, rtol=0, atol=1e-12)


def test_sinusoidal_embedding_integer_t_and_scale():
    t = torch.arange(0, 1000, 111)
    emb = SinusoidalEmbedding(16)(t)
    assert emb.dtype == torch.get_default_dtype()
    expected = torch.tensor([_closed_form(float(v), 16) for v in t], dtype=emb.dtype)
    torch.testing.assert_close(emb, expected, rtol=0, atol=1e-4)
    scaled = SinusoidalEmbedding(16, max_period=100.0, scale=1000.0)(torch.tensor([0.25], dtype=torch.float64))
    torch.testing.assert_close(scaled[0], torch.tensor(_closed_form(250.0, 16, 100.0), dtype=torch.float64))


def test_sinusoidal_embedding_distinct_for_distinct_steps():
    """All 1000 DDPM steps get different embeddings (the network can tell them apart)."""
    emb = SinusoidalEmbedding(64)(torch.arange(1000, dtype=torch.float64))
    dist = torch.cdist(emb, emb) + torch.eye(1000, dtype=torch.float64) * 1e9
    assert dist.min().item() > 0.1


@given(st.floats(min_value=-1e4, max_value=1e4, allow_nan=False))
def test_sinusoidal_embedding_unit_circle_pairs(t):
    """Each frequency contributes a point on the unit circle: cos^2 + sin^2 = 1."""
    emb = SinusoidalEmbedding(10)(torch.tensor([t], dtype=torch.float64))[0]
    torch.testing.assert_close(emb[:5] ** 2 + emb[5:] ** 2, torch.ones(5, dtype=torch.float64))


def test_sinusoidal_embedding_bad_input():
    with pytest.raises(ValueError, match="dim"):
        SinusoidalEmbedding(7)
    with pytest.raises(ValueError, match="max_period"):
        SinusoidalEmbedding(8, max_period=1.0)
    with pytest.raises(ValueError, match="t"):
        SinusoidalEmbedding(8)(torch.zeros(3, 1))


def test_mlp_shapes(device):
    torch.manual_seed(0)
    net = MLP(5, 3, hidden=(16, 8)).to(device)
    out = net(torch.randn(4, 5, device=device))
    assert out.shape == (4, 3) and out.device.type == device.type
    linear = MLP(5, 3, hidden=())
    assert sum(p.numel() for p in linear.parameters()) == 5 * 3 + 3
    tanh_out = MLP(5, 3, hidden=(8,), activation=nn.Tanh, final_activation="tanh")(torch.randn(4, 5) * 100)
    assert tanh_out.abs().max() <= 1.0
    acts = [type(m) for m in MLP(5, 3, hidden=(8, 8), activation="relu").modules()]
    assert acts.count(nn.ReLU) == 2


def test_mlp_bad_input():
    net = MLP(64, 2)
    with pytest.raises(ValueError, match=r"x: .*\(N, 64\).*flatten"):
        net(torch.zeros(3, 1, 8, 8))
    with pytest.raises(ValueError, match=r"x: .*\(N, 64\)"):
        net(torch.zeros(3, 5))
    with pytest.raises(TypeError, match="x"):
        net(torch.zeros(3, 64, dtype=torch.long))
    with pytest.raises(ValueError, match="activation"):
        MLP(2, 2, activation="sigmoidal")
    with pytest.raises(TypeError, match="activation"):
        MLP(2, 2, activation=nn.ReLU())
    with pytest.raises(ValueError, match="in_dim"):
        MLP(0, 2)
    with pytest.raises(TypeError, match="hidden"):
        MLP(2, 2, hidden=8)


def test_time_conditioned_mlp_shapes(device):
    torch.manual_seed(0)
    net = TimeConditionedMLP(2, hidden=32, num_layers=2, embed_dim=16).to(device)
    x = torch.randn(6, 2, device=device)
    t = torch.randint(0, 1000, (6,), device=device)
    out = net(x, t)
    assert out.shape == (6, 2) and out.device.type == device.type
    assert net(x, t.float() / 1000).shape == (6, 2)
    # A scalar t means "the same t for every row".
    torch.testing.assert_close(net(x, 5), net(x, torch.full((6,), 5, device=device)))
    # The output depends on t.
    assert not torch.allclose(net(x, torch.zeros(6, dtype=torch.long, device=device)),
                              net(x, torch.full((6,), 500, device=device)))


def test_time_conditioned_mlp_float64_and_classes():
    torch.manual_seed(0)
    net = TimeConditionedMLP(3, hidden=16, num_layers=1, embed_dim=8, num_classes=4).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    t = torch.arange(5)
    y = torch.tensor([0, 1, 2, 3, 0])
    out = net(x, t, y)
    assert out.dtype == torch.float64 and out.shape == (5, 3)
    assert not torch.allclose(out, net(x, t, (y + 1) % 4))
    assert net(x, t).shape == (5, 3)  # y=None: unconditional


def test_time_conditioned_mlp_bad_input():
    net = TimeConditionedMLP(2, hidden=8, num_layers=1, embed_dim=4)
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"t: expected shape \(4,\)"):
        net(x, torch.zeros(3))
    with pytest.raises(ValueError, match=r"t: expected shape \(4,\)"):
        net(x, torch.zeros(4, 1))
    with pytest.raises(ValueError, match="x"):
        net(torch.zeros(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="y"):
        net(x, torch.zeros(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="num_layers"):
        TimeConditionedMLP(2, num_layers=0)
    labelled = TimeConditionedMLP(2, hidden=8, num_layers=1, embed_dim=4, num_classes=3)
    with pytest.raises(ValueError, match="y"):
        labelled(x, torch.zeros(4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="y"):
        labelled(x, torch.zeros(4), torch.zeros(4))
