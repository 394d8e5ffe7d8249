"""Tests of course_lib.autoencoders against independent references.

Contractive penalty: torch.autograd.functional.jacobian, ||W||_F^2 for a linear encoder, central
finite differences for a tanh encoder, Rifai et al.'s closed form for a sigmoid encoder.
Principal angles: scipy.linalg.subspace_angles. PCA: sklearn.decomposition.PCA. Corruption:
binomial / Gaussian Monte Carlo tolerances.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given
from hypothesis import strategies as st
from sklearn.decomposition import PCA
from torch import nn

from course_lib import autoencoders as ae
from course_lib.train import fit


# ------------------------------------------------------------------------ contractive penalty
def _jacobian_reference(encoder, x):
    """||J||_F^2 per example from the full Jacobian of one example at a time."""
    out = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: encoder(v[None])[0], xi)
        out.append(jac.pow(2).sum())
    return torch.stack(out)


def test_contractive_penalty_matches_autograd_jacobian(device):
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(5, 7), nn.SiLU(), nn.Linear(7, 3), nn.Tanh()).double().to(device)
    x = torch.randn(6, 5, dtype=torch.float64, device=device)
    got = ae.contractive_penalty(enc, x)
    assert got.shape == (6,) and got.dtype == torch.float64 and got.device.type == device.type
    torch.testing.assert_close(got, _jacobian_reference(enc, x), rtol=1e-10, atol=1e-12)


def test_contractive_penalty_images_flattened_by_encoder():
    torch.manual_seed(0)
    model = ae.Autoencoder.mlp((1, 8, 8), 4, hidden=(16,)).double()
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64) * 2 - 1
    got = ae.contractive_penalty(model.encoder, x)
    torch.testing.assert_close(got, _jacobian_reference(model.encoder, x), rtol=1e-10, atol=1e-12)


def test_contractive_penalty_linear_encoder_is_frobenius_norm_of_W():
    torch.manual_seed(0)
    enc = nn.Linear(6, 3).double()
    x = torch.randn(5, 6, dtype=torch.float64) * 10
    got = ae.contractive_penalty(enc, x)
    expected = enc.weight.detach().pow(2).sum()   # ||W||_F^2, the same at every x
    torch.testing.assert_close(got, expected.expand(5))
    # create_graph: the penalty is trainable; d/dW ||W||_F^2 = 2 W.
    got.sum().backward()
    torch.testing.assert_close(enc.weight.grad, 2 * 5 * enc.weight.detach())


def test_contractive_penalty_tanh_encoder_finite_differences():
    g = torch.Generator().manual_seed(3)
    W = torch.randn(4, 5, generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    encoder = lambda x: torch.tanh(x @ W.T + b)  # noqa: E731
    x = torch.randn(3, 5, generator=g, dtype=torch.float64)
    h = 1e-6
    fd = torch.zeros(3, dtype=torch.float64)
    for i in range(5):  # central differences, column i of every example's Jacobian
        e = torch.zeros(5, dtype=torch.float64)
        e[i] = h
        col = (encoder(x + e) - encoder(x - e)) / (2 * h)
        fd += col.pow(2).sum(1)
    torch.testing.assert_close(ae.contractive_penalty(encoder, x), fd, rtol=1e-7, atol=1e-9)


def test_contractive_penalty_sigmoid_closed_form():
    """Rifai et al. 2011, eq. 3: sum_j (h_j (1 - h_j))^2 ||W_j||^2."""
    torch.manual_seed(1)
    enc = nn.Sequential(nn.Linear(5, 3), nn.Sigmoid()).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    hcode = enc(x).detach()
    W = enc[0].weight.detach()
    expected = ((hcode * (1 - hcode)) ** 2 * W.pow(2).sum(1)).sum(1)
    torch.testing.assert_close(ae.contractive_penalty(enc, x, create_graph=False), expected)


def test_contractive_penalty_bad_input():
    enc = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="x"):
        ae.contractive_penalty(enc, torch.zeros(3))
    with pytest.raises(TypeError, match="x"):
        ae.contractive_penalty(enc, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="encoder"):
        ae.contractive_penalty(lambda x: x.sum(), torch.zeros(2, 3))


# ------------------------------------------------------------------------ principal angles
def _sorted_scipy_angles(A, B):
    return np.sort(scipy.linalg.subspace_angles(A.numpy(), B.numpy()))


@given(st.integers(0, 10_000), st.integers(1, 4), st.integers(1, 4))
def test_principal_angles_match_scipy(seed, ka, kb):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(7, ka, generator=g, dtype=torch.float64)
    B = torch.randn(7, kb, generator=g, dtype=torch.float64)
    got = ae.principal_angles(A, B)
    assert got.shape == (min(ka, kb),)
    # atol 1e-7: scipy itself resolves angles near 0 only to ~sqrt(eps) when dim A + dim B > D
    np.testing.assert_allclose(got.numpy(), _sorted_scipy_angles(A, B), atol=1e-7)
    assert bool((got[1:] >= got[:-1]).all())  # ascending


def test_principal_angles_small_angles_are_accurate():
    """Nearly equal subspaces: arccos alone would lose these (the sine branch keeps them)."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 2, generator=g, dtype=torch.float64)
    B = A + 1e-9 * torch.randn(6, 2, generator=g, dtype=torch.float64)
    got = ae.principal_angles(A, B)
    ref = _sorted_scipy_angles(A, B)
    assert ref.max() < 1e-8 and ref.min() > 0
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-4)


def test_principal_angles_invariances_and_known_values():
    g = torch.Generator().manual_seed(1)
    A = torch.randn(5, 3, generator=g, dtype=torch.float64)
    mix = torch.randn(3, 3, generator=g, dtype=torch.float64)  # same column space
    assert ae.principal_angles(A, A @ mix).max() < 1e-7
    e = torch.eye(3, dtype=torch.float64)
    theta = 0.3
    v = torch.tensor([[math.cos(theta)], [math.sin(theta)], [0.0]], dtype=torch.float64)
    torch.testing.assert_close(ae.principal_angles(e[:, :1], v), torch.tensor([theta], dtype=torch.float64))
    torch.testing.assert_close(ae.principal_angles(e[:, :1], e[:, 1:2]),
                               torch.tensor([math.pi / 2], dtype=torch.float64))


def test_principal_angles_bad_input():
    with pytest.raises(ValueError, match="A and B"):
        ae.principal_angles(torch.randn(4, 2), torch.randn(5, 2))
    with pytest.raises(ValueError, match="B: expected full column rank"):
        ae.principal_angles(torch.randn(4, 2), torch.ones(4, 2))
    with pytest.raises(ValueError, match="A"):
        ae.principal_angles(torch.randn(4), torch.randn(4, 1))


# ------------------------------------------------------------------------------------ PCA
def test_pca_matches_sklearn(device):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(200, 6, generator=g, dtype=torch.float64)
         * torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, 0.1], dtype=torch.float64)
         @ torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))[0] + 2.0).to(device)
    comps, mean = ae.pca(x, 3)
    assert comps.shape == (6, 3) and mean.shape == (6,) and comps.device.type == device.type
    ref = PCA(n_components=3).fit(x.cpu().numpy())
    np.testing.assert_allclose(mean.cpu().numpy(), ref.mean_, atol=1e-12)
    angles = ae.principal_angles(comps.cpu(), torch.from_numpy(ref.components_.T))
    assert angles.max() < 1e-8
    # Same order (by explained variance): each component equals sklearn's up to sign.
    dots = (comps.cpu().T @ torch.from_numpy(ref.components_.T)).diagonal().abs()
    torch.testing.assert_close(dots, torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(comps.T @ comps, torch.eye(3, dtype=torch.float64, device=device))


def test_pca_bad_input():
    with pytest.raises(ValueError, match="k"):
        ae.pca(torch.randn(5, 3), 4)
    with pytest.raises(ValueError, match="x"):
        ae.pca(torch.randn(5, 1, 3), 1)


def test_linear_autoencoder_recovers_the_pca_subspace():
    """Baldi & Hornik 1989: the decoder's columns of a trained linear AE span the top-K PCA space."""
    D, K, N = 10, 3, 400
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(D, K, generator=g, dtype=torch.float64))[0]
    z = torch.randn(N, K, generator=g, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
    x = (z @ basis.T + 0.05 * torch.randn(N, D, generator=g, dtype=torch.float64) + 1.0).float()
    comps, _ = ae.pca(x, K)
    torch.manual_seed(0)
    model = ae.Autoencoder.mlp(D, K, linear=True)
    assert sum(p.numel() for p in model.parameters()) == 2 * D * K + D + K
    hist = fit(model, ae.ae_loss, x, num_steps=600, batch_size=N, lr=1e-2, device="cpu",
               generator=torch.Generator().manual_seed(1), progress=False)
    assert hist.final_loss < 0.05 * hist.losses[0]
    decoder_weight = model.decoder.net[0].weight.detach()  # (D, K)
    angles = ae.principal_angles(decoder_weight, comps)
    assert angles.max() < 0.1, angles


# ------------------------------------------------------------------------------ corruption
def test_corrupt_masking_fraction_binomial(device, generator):
    x = torch.ones(200, 50, device=device)
    p = 0.3
    xt = ae.corrupt(x, mask_prob=p, generator=generator)
    assert xt.shape == x.shape and xt.dtype == x.dtype and xt.device.type == device.type
    masked = (xt == 0).sum().item()
    n = x.numel()
    assert abs(masked - n * p) < 5 * math.sqrt(n * p * (1 - p))  # 5 binomial standard errors
    assert set(torch.unique(xt).tolist()) <= {0.0, 1.0}
    assert (ae.corrupt(x, mask_prob=0.0) == x).all()
    assert (ae.corrupt(x, mask_prob=1.0, mask_value=-1.0) == -1).all()


def test_corrupt_gaussian_noise_moments(generator):
    x = torch.linspace(-1, 1, 20_000, dtype=torch.float64)[:, None]
    s = 0.5
    noise = ae.corrupt(x, noise_std=s, generator=generator) - x
    n = noise.numel()
    assert abs(noise.mean().item()) < 5 * s / math.sqrt(n)
    assert abs(noise.var().item() - s**2) < 5 * s**2 * math.sqrt(2 / n)
    assert noise.dtype == torch.float64


def test_corrupt_is_reproducible_and_combines():
    x = torch.ones(4, 8)
    a = ae.corrupt(x, noise_std=0.1, mask_prob=0.5, generator=torch.Generator().manual_seed(0))
    b = ae.corrupt(x, noise_std=0.1, mask_prob=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    # Masked entries only carry noise (near 0), kept entries are near 1.
    assert ((a - 0).abs() < 0.6).any() and ((a - 1).abs() < 0.6).any()


def test_corrupt_bad_input():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="noise_std, mask_prob"):
        ae.corrupt(x)
    with pytest.raises(ValueError, match="noise_std"):
        ae.corrupt(x, noise_std=-0.1)
    with pytest.raises(ValueError, match="mask_prob"):
        ae.corrupt(x, mask_prob=1.5)
    with pytest.raises(TypeError, match="x"):
        ae.corrupt(torch.zeros(2, 3, dtype=torch.long), noise_std=0.1)


# ---------------------------------------------------------------------------------- losses
class _Identity(nn.Module):
    def forward(self, x):
        return x


def test_reconstruction_loss_by_hand():
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    x_hat = torch.tensor([[1.0, 0.0], [3.0, -1.0]])
    torch.testing.assert_close(ae.reconstruction_error(x_hat, x), torch.tensor([4.0, 9.0]))
    torch.testing.assert_close(ae.reconstruction_loss(x_hat, x), torch.tensor(6.5))
    with pytest.raises(ValueError, match="x_hat and x"):
        ae.reconstruction_error(x_hat, x[:, :1])


def test_denoising_loss_targets_the_clean_input(generator):
    """With the identity as 'autoencoder', E||x~ - x||^2 = D sigma^2 (Gaussian) and
    p sum_i x_i^2 (masking to 0): a loss that compared with x~ would give 0."""
    N, D, s = 4000, 16, 0.3
    x = torch.rand(N, D, generator=generator, dtype=torch.float64) * 2 - 1
    gauss = ae.denoising_ae_loss(noise_std=s)(_Identity(), x, generator=generator)
    assert abs(gauss.item() - D * s**2) < 5 * s**2 * math.sqrt(2 * D / N)
    p = 0.25
    per_example = (p * x.pow(2).sum(1))
    masked = ae.denoising_ae_loss(mask_prob=p)(_Identity(), (x, torch.zeros(N)), generator=generator)
    se = math.sqrt(p * (1 - p) * x.pow(4).sum(1).mean().item() / N)
    assert abs(masked.item() - per_example.mean().item()) < 5 * se
    with pytest.raises(ValueError, match="noise_std, mask_prob"):
        ae.denoising_ae_loss()


def test_ae_and_contractive_losses_on_a_linear_autoencoder():
    torch.manual_seed(0)
    model = ae.Autoencoder.mlp(5, 2, linear=True).double()
    x = torch.randn(7, 5, dtype=torch.float64)
    rec = (model(x) - x).pow(2).sum(1).mean()
    torch.testing.assert_close(ae.ae_loss(model, (x, torch.zeros(7))), rec)
    W = model.encoder.net[0].weight
    lam = 0.7
    torch.testing.assert_close(ae.contractive_ae_loss(lam)(model, x), rec + lam * W.pow(2).sum())
    with pytest.raises(ValueError, match="weight"):
        ae.contractive_ae_loss(-1.0)


def test_contractive_training_shrinks_the_jacobian():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=g)
    penalties = []
    for lam in (0.0, 1.0):
        torch.manual_seed(0)
        model = ae.Autoencoder.mlp(4, 2, hidden=(16,), activation="tanh")
        fit(model, ae.contractive_ae_loss(lam), x, 60, batch_size=64, lr=1e-2, device="cpu",
            generator=torch.Generator().manual_seed(0), progress=False)
        penalties.append(ae.contractive_penalty(model.encoder, x, create_graph=False).mean().item())
    assert penalties[1] < 0.5 * penalties[0]


# ------------------------------------------------------------------------- model and probes
def test_autoencoder_mlp_shapes(device):
    torch.manual_seed(0)
    model = ae.Autoencoder.mlp((1, 8, 8), 6, hidden=(32, 16), final_activation="tanh").to(device)
    x = torch.rand(5, 1, 8, 8, device=device) * 2 - 1
    assert model.encode(x).shape == (5, 6)
    out = model(x)
    assert out.shape == x.shape and out.abs().max() <= 1
    assert model.decode(torch.randn(3, 6, device=device)).shape == (3, 1, 8, 8)
    codes = ae.encode_dataset(model, x, batch_size=2)
    torch.testing.assert_close(codes, model.encode(x).detach())
    with pytest.raises(TypeError, match="encoder"):
        ae.Autoencoder("not a module", nn.Identity())
    with pytest.raises(ValueError, match="latent_dim"):
        ae.Autoencoder.mlp(4, 0)


def test_linear_probe_accuracy():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 4, generator=g) * 5
    y = torch.randint(0, 3, (300,), generator=g)
    f = centers[y] + 0.5 * torch.randn(300, 4, generator=g)
    acc = ae.linear_probe_accuracy(f[:200], y[:200], f[200:], y[200:])
    assert 0.95 <= acc <= 1.0
    noise = torch.randn(300, 4, generator=g)  # features without information: near chance
    assert ae.linear_probe_accuracy(noise[:200], y[:200], noise[200:], y[200:]) < 0.6
    with pytest.raises(ValueError, match="labels_test"):
        ae.linear_probe_accuracy(f[:200], y[:200], f[200:], y[:50])
    with pytest.raises(ValueError, match="features_train and features_test"):
        ae.linear_probe_accuracy(f[:200], y[:200], f[200:, :2], y[200:])


# --------------------------------------------------------------------------------------------
# random codes fitted to the training codes (notebook 01, section 7)
# --------------------------------------------------------------------------------------------
def test_random_codes_have_the_codes_mean_and_scaled_std():
    """Sample mean and std of many random codes within 5 standard errors of the fitted ones."""
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(500, 3, generator=g, dtype=torch.float64) * torch.tensor([0.5, 2.0, 1.0],
                                                                                 dtype=torch.float64) + 3.0
    n, scale = 20_000, 1.5
    z = ae.random_codes(codes, n, scale=scale, generator=torch.Generator().manual_seed(1))
    assert z.shape == (n, 3) and z.dtype == codes.dtype
    m, s = codes.mean(0), codes.std(0) * scale
    assert ((z.mean(0) - m).abs() < 5 * s / math.sqrt(n)).all()
    assert ((z.std(0) - s).abs() < 5 * s / math.sqrt(2 * n)).all()
    again = ae.random_codes(codes, n, scale=scale, generator=torch.Generator().manual_seed(1))
    assert torch.equal(z, again)
    with pytest.raises(ValueError, match="codes"):
        ae.random_codes(codes[:1], 5)
    with pytest.raises(ValueError, match="scale"):
        ae.random_codes(codes, 5, scale=0.0)


# --------------------------------------------------------------------------------------------
# the encoder as the initialization of a classifier (notebook 01, section 6)
# --------------------------------------------------------------------------------------------
def test_autoencoder_conv_shapes():
    torch.manual_seed(0)
    model = ae.Autoencoder.conv((1, 8, 8), 6, final_activation="tanh")
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    assert model.encode(x).shape == (5, 6) and model(x).shape == x.shape
    with pytest.raises(ValueError, match="x: ConvEncoder"):
        model(x.flatten(1))


def test_classification_loss_is_cross_entropy_by_hand():
    torch.manual_seed(0)
    model = ae.EncoderClassifier(nn.Sequential(nn.Flatten(1), nn.Linear(4, 3)), 3, num_classes=5).double()
    x = torch.randn(7, 2, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 0, 4])
    logits = model(x)
    assert logits.shape == (7, 5)
    by_hand = -(logits[torch.arange(7), y] - torch.log(torch.exp(logits).sum(dim=1))).mean()
    torch.testing.assert_close(ae.classification_loss(model, (x, y)), by_hand, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="labels"):
        ae.classification_loss(model, (x, torch.tensor([0, 1, 2, 3, 4, 0, 5])))
    with pytest.raises(TypeError, match="labels"):
        ae.classification_loss(model, (x, y.double()))
    with pytest.raises(TypeError, match="batch"):
        ae.classification_loss(model, x)
    with pytest.raises(ValueError, match="labels"):
        ae.classification_loss(model, (x, y[:3]))


def test_classifier_accuracy_counts_argmax_hits():
    model = ae.EncoderClassifier(nn.Identity(), 3, num_classes=3)
    with torch.no_grad():
        model.head.weight.copy_(torch.eye(3))
        model.head.bias.zero_()
    x = torch.tensor([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0], [5.0, 0, 0]])
    assert ae.classifier_accuracy(model, x, torch.tensor([0, 1, 2, 0])) == 1.0
    assert ae.classifier_accuracy(model, x, torch.tensor([0, 1, 0, 1]), batch_size=3) == 0.5
    with pytest.raises(ValueError, match="encoder: expected codes of shape"):
        ae.EncoderClassifier(nn.Identity(), 4)(x)


def test_from_autoencoder_copies_the_encoder_and_fine_tuning_leaves_the_autoencoder_alone():
    torch.manual_seed(0)
    auto = ae.Autoencoder.mlp((1, 8, 8), 4, hidden=(16,))
    clf = ae.EncoderClassifier.from_autoencoder(auto, 4, num_classes=10)
    x = torch.randn(6, 1, 8, 8)
    torch.testing.assert_close(clf.encoder(x), auto.encode(x))      # the same function ...
    assert all(p is not q for p, q in zip(clf.encoder.parameters(), auto.encoder.parameters()))
    before = [p.detach().clone() for p in auto.parameters()]
    y = torch.arange(6) % 10
    fit(clf, ae.classification_loss, (x, y), num_steps=20, lr=1e-2, device="cpu", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, auto.parameters()))   # ... but a copy
    assert ae.classifier_accuracy(clf, x, y) == 1.0                             # it fits 6 points
    with pytest.raises(TypeError, match="autoencoder"):
        ae.EncoderClassifier.from_autoencoder(nn.Linear(2, 2), 2)


def test_labelled_subset_is_balanced_distinct_and_random():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (500,), generator=g)
    idx = ae.labelled_subset(labels, 5, generator=torch.Generator().manual_seed(1))
    assert idx.shape == (50,) and idx.unique().numel() == 50
    assert torch.equal(torch.bincount(labels[idx], minlength=10), torch.full((10,), 5))
    other = ae.labelled_subset(labels, 5, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(idx, other)
    with pytest.raises(ValueError, match="per_class"):
        ae.labelled_subset(labels, 1000)
    with pytest.raises(TypeError, match="labels"):
        ae.labelled_subset(labels.float(), 5)
