"""Tests of course_lib.nets: the sinusoidal embedding against its closed form, shapes, bad input;
and the notebook-04 networks (UNet, RandomFourierFeatures, FourierTimeMLP): shapes on every device,
dependence on t and y (and the null class), per-example independence (no batch statistics), a
receptive field covering the whole 8x8 image (the skip and the 2x2 bottleneck both reach every
pixel), clear errors on bad input, and a tiny overfit run."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from course_lib.nets import MLP, FourierTimeMLP, RandomFourierFeatures, SinusoidalEmbedding, TimeConditionedMLP, UNet


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


# ================================================================================================
# the notebook-04 networks: UNet, RandomFourierFeatures, FourierTimeMLP
# ================================================================================================
def _unet(**kw) -> UNet:
    torch.manual_seed(0)
    return UNet(base_channels=kw.pop("base_channels", 8), **kw)


# --- shapes and dtypes -----------------------------------------------------------------------------

def test_unet_output_shape_on_device(device, generator):
    model = _unet(num_classes=10).to(device)
    x = torch.randn(5, 1, 8, 8, generator=generator).to(device)
    t = torch.tensor([0, 1, 50, 98, 99], device=device)
    y = torch.tensor([0, 3, 9, 10, 2], device=device)
    for out in (model(x, t), model(x, t, y), model(x, 7)):
        assert out.shape == (5, 1, 8, 8) and out.device.type == device.type
        assert out.dtype == x.dtype and torch.isfinite(out).all()


def test_unet_float64_multichannel_and_other_sizes(generator):
    model = _unet(in_channels=3, channel_mult=(1, 2)).double()
    x = torch.randn(2, 3, 12, 6, generator=generator, dtype=torch.float64)
    out = model(x, torch.tensor([3, 4]))
    assert out.shape == x.shape and out.dtype == torch.float64
    deep = _unet(channel_mult=(1, 1, 2, 2))          # 8 -> 4 -> 2 -> 1
    assert deep(torch.randn(3, 1, 8, 8, generator=generator), torch.zeros(3, dtype=torch.long)).shape == (3, 1, 8, 8)


# --- what the output depends on --------------------------------------------------------------------

def test_unet_depends_on_t_and_y(generator):
    model = _unet(num_classes=10).eval()
    x = torch.randn(4, 1, 8, 8, generator=generator)
    x4 = x[:1].expand(4, 1, 8, 8)
    with torch.no_grad():
        by_t = model(x4, torch.tensor([0, 1, 10, 99]))
        by_y = model(x4, torch.full((4,), 5), torch.tensor([0, 1, 7, 10]))
        uncond = model(x, 5)
        null = model(x, 5, torch.full((4,), 10))
    for outs in (by_t, by_y):
        for i in range(4):
            for j in range(i + 1, 4):
                assert (outs[i] - outs[j]).abs().max() > 1e-4, (i, j)
    torch.testing.assert_close(uncond, null)            # y=None is the null class


def test_unet_without_classes_ignores_nothing_but_needs_no_y(generator):
    model = _unet().eval()
    x = torch.randn(3, 1, 8, 8, generator=generator)
    with torch.no_grad():
        a, b = model(x, torch.tensor([1, 1, 1])), model(x, torch.tensor([2, 2, 2]))
    assert (a - b).abs().max() > 1e-4


def test_unet_examples_are_independent(generator):
    """GroupNorm normalizes per example, in training mode too (unlike BatchNorm): an image's output
    does not depend on the rest of the batch (dropout is 0, so training mode is deterministic)."""
    model = _unet(num_classes=10).train()
    x = torch.randn(6, 1, 8, 8, generator=generator)
    t, y = torch.arange(6), torch.tensor([0, 1, 2, 3, 10, 5])
    with torch.no_grad():
        full = model(x, t, y)
        single = torch.cat([model(x[i:i + 1], t[i:i + 1], y[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(full, single, rtol=1e-5, atol=1e-6)


def test_unet_receptive_field_covers_the_image(generator):
    """The corner output pixel depends on every input pixel (down to 2x2 and back up)."""
    model = _unet().double()
    x = torch.randn(1, 1, 8, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    model(x, torch.tensor([3]))[0, 0, 0, 0].backward()
    assert (x.grad.abs() > 0).all()


# --- bad input ---------------------------------------------------------------------------------------

def test_unet_bad_input_raises_with_the_argument_name():
    model = _unet(num_classes=10)
    x = torch.randn(2, 1, 8, 8)
    t = torch.tensor([1, 2])
    with pytest.raises(ValueError, match=r"x: UNet expected images of shape \(N, 1, H, W\), got \(2, 64\)"):
        model(x.flatten(1), t)
    with pytest.raises(ValueError, match=r"x: .*\(N, 1, H, W\), got \(2, 3, 8, 8\)"):
        model(torch.randn(2, 3, 8, 8), t)
    with pytest.raises(ValueError, match="x: UNet expected H and W divisible by 4"):
        model(torch.randn(2, 1, 6, 8), t)
    with pytest.raises(TypeError, match="x"):
        model(torch.zeros(2, 1, 8, 8, dtype=torch.long), t)
    with pytest.raises(ValueError, match=r"t: expected shape \(2,\)"):
        model(x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"y: expected labels in \[0, 10\]"):
        model(x, t, torch.tensor([0, 11]))
    with pytest.raises(ValueError, match=r"y: expected labels in \[0, 10\]"):
        model(x, t, torch.tensor([-1, 0]))
    with pytest.raises(TypeError, match="y: expected an integer tensor"):
        model(x, t, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="y"):
        model(x, t, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="y: this UNet was built without num_classes"):
        _unet()(x, t, torch.tensor([0, 1]))


def test_unet_bad_constructor_arguments():
    with pytest.raises(ValueError, match="channel_mult"):
        UNet(channel_mult=())
    with pytest.raises(ValueError, match="base_channels"):
        UNet(base_channels=0)
    with pytest.raises(ValueError, match="dropout"):
        UNet(dropout=1.0)
    with pytest.raises(ValueError, match="num_classes"):
        UNet(num_classes=0)
    with pytest.raises(ValueError, match="dim"):
        UNet(embed_dim=7)


# --- it can learn ------------------------------------------------------------------------------------

def test_unet_tiny_overfit():
    """Fit eight fixed (x, t, y) -> target pairs: the squared error falls by a factor of 20."""
    g = torch.Generator().manual_seed(0)
    model = _unet(num_classes=3)
    x = torch.randn(8, 1, 8, 8, generator=g)
    t = torch.randint(0, 100, (8,), generator=g)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    target = torch.randn(8, 1, 8, 8, generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        start = ((model(x, t, y) - target) ** 2).mean().item()
    for _ in range(200):
        loss = ((model(x, t, y) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < start / 20, (start, loss.item())


# --- random Fourier features -------------------------------------------------------------------------

def test_fourier_features_closed_form_float64():
    g = torch.Generator().manual_seed(3)
    feats = RandomFourierFeatures(2, num_features=5, scale=1.5, generator=g).double()
    b = 1.5 * torch.randn(2, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = torch.tensor([[0.0, 0.0], [0.3, -1.2], [2.0, 0.5]], dtype=torch.float64)
    out = feats(x)
    assert out.shape == (3, 12) and feats.out_dim == 12 and out.dtype == torch.float64
    expected = [[*row, *(math.sin(2 * math.pi * (row[0] * b[0, j] + row[1] * b[1, j])) for j in range(5)),
                 *(math.cos(2 * math.pi * (row[0] * b[0, j] + row[1] * b[1, j])) for j in range(5))]
                for row in x.tolist()]
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-6)
    assert not any(p.requires_grad for p in feats.parameters())      # B is a fixed buffer
    same = RandomFourierFeatures(2, num_features=5, scale=1.5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(same.B.double(), feats.B)


def test_fourier_time_mlp_shape_dependence_and_errors(device, generator):
    model = FourierTimeMLP(2, num_features=16, hidden=32).to(device)
    x = torch.randn(4, 2, generator=generator).to(device)
    out = model(x, torch.tensor([0, 1, 2, 3], device=device))
    assert out.shape == (4, 2) and out.device.type == device.type
    with torch.no_grad():
        a, b = model(x, 0), model(x, 50)
    assert (a - b).abs().max() > 1e-4
    with pytest.raises(ValueError, match=r"x: FourierTimeMLP expected shape \(N, 2\)"):
        model(torch.randn(4, 3, device=device), 0)
    with pytest.raises(ValueError, match="scale"):
        RandomFourierFeatures(2, scale=0.0)


# ================================================================================================
# notebook 01: the convolutional encoder and decoder
# ================================================================================================
from course_lib.nets import ConvDecoder, ConvEncoder  # noqa: E402


def test_conv_encoder_decoder_shapes_and_parameter_count(device):
    torch.manual_seed(0)
    enc, dec = ConvEncoder((1, 8, 8), 8).to(device), ConvDecoder((1, 8, 8), 8, final_activation="tanh").to(device)
    x = torch.rand(5, 1, 8, 8, device=device) * 2 - 1
    z = enc(x)
    assert z.shape == (5, 8) and dec(z).shape == (5, 1, 8, 8) and dec(z).abs().max() <= 1
    # By hand: conv 1->16 4x4 (16*16+16), conv 16->16 3x3 (16*16*9+16), linear 256->8 (2056).
    assert sum(p.numel() for p in enc.parameters()) == (16 * 16 + 16) + (16 * 16 * 9 + 16) + (256 * 8 + 8)
    # Decoder: linear 8->256 (2304), conv 16->16 3x3 (2320), transposed conv 16->1 4x4 (256 + 1).
    assert sum(p.numel() for p in dec.parameters()) == (8 * 256 + 256) + (16 * 16 * 9 + 16) + (16 * 16 + 1)
    big_e = ConvEncoder((3, 16, 12), 4, channels=(8, 16)).double()
    big_d = ConvDecoder((3, 16, 12), 4, channels=(8, 16)).double()
    assert big_e.feature_shape == (16, 4, 3)
    out = big_d(big_e(torch.randn(2, 3, 16, 12, dtype=torch.float64)))
    assert out.shape == (2, 3, 16, 12) and out.dtype == torch.float64


def test_conv_encoder_examples_are_independent_and_every_pixel_counts():
    torch.manual_seed(0)
    enc = ConvEncoder().double()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(enc(x)[1:2], enc(x[1:2]))
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(enc(x)[0].sum(), x)
    assert (g[0].abs() > 0).all() and (g[1:] == 0).all()   # code 0 sees all of image 0, nothing else


def test_conv_nets_bad_input_raise_with_the_argument_name():
    enc, dec = ConvEncoder(), ConvDecoder()
    with pytest.raises(ValueError, match=r"x: ConvEncoder expected images of shape \(N, 1, 8, 8\), got \(3, 64\)"):
        enc(torch.zeros(3, 64))
    with pytest.raises(ValueError, match=r"x: .*got \(3, 1, 6, 6\)"):
        enc(torch.zeros(3, 1, 6, 6))
    with pytest.raises(ValueError, match=r"x: .*got \(3, 3, 8, 8\)"):
        enc(torch.zeros(3, 3, 8, 8))
    with pytest.raises(TypeError, match="x"):
        enc(torch.zeros(3, 1, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"z: ConvDecoder expected shape \(N, 8\), got \(3, 7\)"):
        dec(torch.zeros(3, 7))
    with pytest.raises(ValueError, match="image_shape.*divisible by 4"):
        ConvEncoder((1, 6, 6), channels=(8, 16))
    with pytest.raises(ValueError, match="image_shape"):
        ConvDecoder((8, 8))
    with pytest.raises(ValueError, match="channels"):
        ConvEncoder(channels=())
    with pytest.raises(ValueError, match="latent_dim"):
        ConvDecoder(latent_dim=0)


def test_conv_autoencoder_tiny_overfit():
    """A few hundred steps on 8 digits-like images drive the reconstruction error far down."""
    from course_lib.autoencoders import Autoencoder, ae_loss
    from course_lib.train import fit

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(8, 1, 8, 8, generator=g) > 0.5).float() * 2 - 1
    model = Autoencoder.conv(final_activation="tanh")
    start = ae_loss(model, x).item()
    fit(model, ae_loss, x, num_steps=300, lr=1e-2, device="cpu", generator=g, progress=False)
    assert ae_loss(model, x).item() < 0.2 * start
