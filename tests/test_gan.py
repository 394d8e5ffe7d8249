"""course_lib.gan against definitions, quadrature and constructed sample sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, stats

from course_lib import gan, seed_everything
from course_lib.toy import grid_mixture, ring_mixture

# ----------------------------------------------------------------------------------------------
# losses against their definitions (float64, sigmoid then log; |l| <= 15 keeps that reference accurate)
# ----------------------------------------------------------------------------------------------


def _sigmoid64(l):
    return 1.0 / (1.0 + np.exp(-l))


@given(st.lists(st.floats(-15, 15), min_size=1, max_size=8),
       st.lists(st.floats(-15, 15), min_size=1, max_size=8))
def test_discriminator_loss_matches_definition(real, fake):
    real, fake = np.array(real), np.array(fake)
    expected = -np.mean(np.log(_sigmoid64(real))) - np.mean(np.log(1 - _sigmoid64(fake)))
    got = gan.discriminator_loss(torch.tensor(real), torch.tensor(fake))
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.item(), expected, rtol=1e-8, atol=1e-12)


@given(st.lists(st.floats(-15, 15), min_size=1, max_size=8))
def test_generator_losses_match_definition(fake):
    fake = np.array(fake)
    d = _sigmoid64(fake)
    ns = gan.generator_loss(torch.tensor(fake)).item()
    sat = gan.generator_loss(torch.tensor(fake), saturating=True).item()
    np.testing.assert_allclose(ns, -np.mean(np.log(d)), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(sat, np.mean(np.log(1 - d)), rtol=1e-8, atol=1e-12)


def test_losses_finite_and_correct_at_extreme_logits(device):
    big = torch.tensor([1e4, -1e4], device=device)
    # D perfect: real +1e4, fake -1e4 -> loss 0; D fooled: the loss is the logit magnitude.
    assert gan.discriminator_loss(big[:1], big[1:]).item() == pytest.approx(0.0, abs=1e-12)
    assert gan.discriminator_loss(big[1:], big[:1]).item() == pytest.approx(2e4, rel=1e-6)
    for saturating in (False, True):
        v = gan.generator_loss(big, saturating=saturating)
        assert torch.isfinite(v)
    assert gan.generator_loss(torch.tensor([-1e4], device=device)).item() == pytest.approx(1e4, rel=1e-6)
    assert gan.generator_loss(torch.tensor([-1e4], device=device), saturating=True).item() == \
        pytest.approx(0.0, abs=1e-12)


def test_reduction_none_pairs_examples():
    r, f = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    per = gan.discriminator_loss(r, f, reduction="none")
    assert per.shape == (5,)
    torch.testing.assert_close(per.mean(), gan.discriminator_loss(r, f))
    # (N, 1) logits are accepted
    torch.testing.assert_close(gan.discriminator_loss(r[:, None], f[:, None]), gan.discriminator_loss(r, f))


def test_saturating_gradient_vanishes_when_d_rejects_samples():
    """d/dl of the minimax loss is -D = -sigmoid(l) -> 0 as D(G(z)) -> 0; the log-D trick's is -(1 - D)."""
    logits = torch.tensor([-12.0, -6.0, -2.0, 0.0, 2.0], dtype=torch.float64)
    grads = {}
    for saturating in (True, False):
        l = logits.clone().requires_grad_(True)
        gan.generator_loss(l, saturating=saturating).backward()
        grads[saturating] = l.grad * len(logits)  # undo the mean
    d = torch.sigmoid(logits)
    torch.testing.assert_close(grads[True], -d)
    torch.testing.assert_close(grads[False], -(1 - d))
    assert abs(grads[True][0]) < 1e-5 and abs(grads[False][0]) > 0.99


# ----------------------------------------------------------------------------------------------
# optimal discriminator
# ----------------------------------------------------------------------------------------------


def test_optimal_discriminator_on_known_densities():
    x = np.linspace(-4, 5, 101)
    p_data, p_g = stats.norm.pdf(x, 0, 1), stats.norm.pdf(x, 1, 1.5)
    d = gan.optimal_discriminator(torch.tensor(p_data), torch.tensor(p_g))
    np.testing.assert_allclose(d.numpy(), p_data / (p_data + p_g), rtol=1e-12)
    d_log = gan.optimal_discriminator(torch.tensor(stats.norm.logpdf(x, 0, 1)),
                                      torch.tensor(stats.norm.logpdf(x, 1, 1.5)), log_densities=True)
    np.testing.assert_allclose(d_log.numpy(), d.numpy(), rtol=1e-10)
    # equal densities -> 1/2; disjoint support -> 0 or 1; both zero -> 1/2 (documented)
    out = gan.optimal_discriminator(torch.tensor([0.3, 0.2, 0.0, 0.0]), torch.tensor([0.3, 0.0, 0.4, 0.0]))
    torch.testing.assert_close(out, torch.tensor([0.5, 1.0, 0.0, 0.5]))
    assert not torch.isnan(gan.optimal_discriminator(torch.tensor([-math.inf]), torch.tensor([-math.inf]),
                                                     log_densities=True)).any()


def test_optimal_discriminator_value_is_minus_log4_plus_2jsd():
    """V(G, D*) = -log 4 + 2 JSD(p_data || p_g) (Goodfellow et al. 2014, Theorem 1), by quadrature."""
    pd, pg = stats.norm(0, 1), stats.norm(1.5, 0.7)
    lo, hi = -9.0, 9.0  # both densities have mass < 1e-18 outside

    def dstar(x, a=pd, b=pg):
        return gan.optimal_discriminator(torch.tensor(a.logpdf(x)), torch.tensor(b.logpdf(x)),
                                         log_densities=True).item()

    def value(dfun, one_minus_dfun=None):
        one_minus = one_minus_dfun or (lambda x: 1 - dfun(x))
        f = lambda x: pd.pdf(x) * np.log(dfun(x)) + pg.pdf(x) * np.log(one_minus(x))
        return integrate.quad(f, lo, hi, limit=200)[0]

    m = lambda x: 0.5 * (pd.pdf(x) + pg.pdf(x))
    kl = lambda p: integrate.quad(lambda x: p.pdf(x) * np.log(p.pdf(x) / m(x)), lo, hi, limit=200)[0]
    jsd = 0.5 * kl(pd) + 0.5 * kl(pg)
    # 1 - D*(x) = p_g / (p_data + p_g): evaluated as D* with the roles swapped, so no 1 - 1 = 0
    v_star = value(dstar, lambda x: dstar(x, pg, pd))
    assert 0 < jsd < math.log(2)
    assert v_star == pytest.approx(-math.log(4) + 2 * jsd, abs=1e-7)
    # D* is the maximizer: perturbations lower V
    for eps in (0.05, -0.05):
        assert value(lambda x: np.clip(dstar(x) + eps * np.sin(x), 1e-9, 1 - 1e-9)) < v_star


def test_optimal_discriminator_bad_input():
    with pytest.raises(ValueError, match="p_data and p_model"):
        gan.optimal_discriminator(torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match="p_model: expected non-negative"):
        gan.optimal_discriminator(torch.ones(2), torch.tensor([0.1, -0.2]))


# ----------------------------------------------------------------------------------------------
# mode coverage on constructed sample sets
# ----------------------------------------------------------------------------------------------


def _at_modes(means, per_mode):
    return means.repeat_interleave(torch.as_tensor(per_mode), dim=0)


def test_mode_coverage_all_modes_uniform():
    mix = ring_mixture()
    s = _at_modes(mix.means, [10] * 8) + 0.005 * torch.randn(80, 2, generator=torch.Generator().manual_seed(0))
    r = gan.mode_coverage(s, mix.means, 0.01)
    assert r.modes == 8 and r.high_quality_fraction == 1.0
    assert r.reverse_kl == pytest.approx(0.0, abs=1e-12)
    assert r.counts.tolist() == [10] * 8


def test_mode_coverage_single_mode_and_histogram_kl():
    mix = grid_mixture()
    r = gan.mode_coverage(_at_modes(mix.means[3:4], [50]), mix.means, 0.05)
    assert r.modes == 1 and r.high_quality_fraction == 1.0
    assert r.reverse_kl == pytest.approx(math.log(25), rel=1e-12)
    counts = [5, 0, 3, 2] + [0] * 21
    r = gan.mode_coverage(_at_modes(mix.means, counts), mix.means, 0.05)
    p = np.array(counts) / sum(counts)
    assert r.modes == 3
    assert r.reverse_kl == pytest.approx(stats.entropy(p, np.full(25, 1 / 25)), rel=1e-10)


def test_mode_coverage_off_mode_samples_are_low_quality():
    mix = ring_mixture()
    on = _at_modes(mix.means[:2], [3, 3])
    off = torch.zeros(4, 2)  # the ring's centre: 100 std from every mode
    r = gan.mode_coverage(torch.cat([on, off]), mix.means, 0.01)
    assert r.modes == 2 and r.high_quality_fraction == pytest.approx(0.6)
    assert r.counts.sum() == 6


def test_mode_coverage_threshold_is_strict():
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    std = 0.5
    at = torch.tensor([[3 * std, 0.0]], dtype=torch.float64)  # exactly 3 std: not counted (PacGAN '<')
    inside = torch.tensor([[3 * std - 1e-9, 0.0]], dtype=torch.float64)
    assert gan.mode_coverage(at, means, std).high_quality_fraction == 0.0
    assert gan.mode_coverage(at, means, std).reverse_kl == math.inf
    assert gan.mode_coverage(inside, means, std).modes == 1
    # diagonal stds standardize per dimension: 0.9 away in x with std_x = 0.3 is exactly 3 std
    r = gan.mode_coverage(torch.tensor([[0.9, 0.0]], dtype=torch.float64), means,
                          torch.tensor([[0.3, 5.0], [0.3, 5.0]], dtype=torch.float64))
    assert r.high_quality_fraction == 0.0


def test_mode_coverage_bad_input():
    mix = ring_mixture()
    with pytest.raises(ValueError, match="samples and means"):
        gan.mode_coverage(torch.zeros(5, 3), mix.means, 0.01)
    with pytest.raises(ValueError, match="std"):
        gan.mode_coverage(torch.zeros(5, 2), mix.means, 0.0)
    with pytest.raises(ValueError, match="std"):
        gan.mode_coverage(torch.zeros(5, 2), mix.means, torch.ones(3))
    with pytest.raises(ValueError, match="threshold"):
        gan.mode_coverage(torch.zeros(5, 2), mix.means, 0.01, threshold=-1)


def test_loss_bad_input():
    with pytest.raises(ValueError, match="real_logits and fake_logits"):
        gan.discriminator_loss(torch.zeros(3), torch.zeros(4), reduction="none")
    with pytest.raises(ValueError, match="fake_logits"):
        gan.generator_loss(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="reduction"):
        gan.discriminator_loss(torch.zeros(3), torch.zeros(3), reduction="sum")


# ----------------------------------------------------------------------------------------------
# WGAN-GP and networks
# ----------------------------------------------------------------------------------------------


def test_gradient_penalty_of_linear_critic():
    """A linear critic w.x has gradient w everywhere: penalty (|w| - 1)^2 exactly."""
    w = torch.tensor([3.0, 4.0], dtype=torch.float64)
    D = lambda x: x @ w
    real, fake = torch.randn(16, 2, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    gp = gan.gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx((5.0 - 1.0) ** 2)


def test_dcgan_shapes(device):
    G, D = gan.DCGANGenerator(latent_dim=8, channels=8).to(device), gan.DCGANDiscriminator(channels=8).to(device)
    x = G(torch.randn(4, 8, device=device))
    assert x.shape == (4, 1, 8, 8) and x.abs().max() <= 1
    assert D(x).shape == (4, 1)
    with pytest.raises(ValueError, match="x"):
        D(torch.zeros(4, 1, 7, 7, device=device))


def test_short_training_run_covers_all_ring_modes():
    """Smoke test (not timed): the non-saturating GAN covers the 8 ring modes with a fixed seed."""
    g = seed_everything(0)
    mix = ring_mixture()
    data = mix.sample(20000, generator=g)
    G, D = gan.mlp_generator(2, 2, hidden=(128, 128)), gan.mlp_discriminator(2, hidden=(128, 128))
    hist = gan.train_gan(G, D, data, num_steps=1500, latent_dim=2, batch_size=256, lr_g=1e-3,
                         lr_d=1e-3, generator=g, progress=False, device="cpu")
    assert len(hist.d_losses) == len(hist.g_losses) == 1500
    with torch.no_grad():
        s = G(torch.randn(2500, 2, generator=g))
    r = gan.mode_coverage(s, mix.means, 0.01)
    assert r.modes == 8, r


def test_train_discriminator_approaches_the_optimal_discriminator():
    """Goodfellow et al. 2014, Proposition 1: D trained against a fixed p_g approaches D*; compared
    with the density ratio from scipy.stats on the bulk of both distributions."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    D = gan.mlp_discriminator(1, hidden=(32, 32))
    losses = gan.train_discriminator(D, lambda n: torch.randn(n, 1, generator=g),
                                     lambda n: 1.5 + 0.7 * torch.randn(n, 1, generator=g),
                                     num_steps=200, batch_size=256, lr=3e-3, device="cpu")
    assert len(losses) == 200
    # the loss starts near log 4 (D ~ 1/2) and ends near -V(G, D*) = log 4 - 2 JSD < log 4
    assert abs(losses[0] - math.log(4)) < 0.1 and np.mean(losses[-50:]) < math.log(4) - 0.3
    x = np.linspace(-1.5, 2.5, 81)
    p, q = stats.norm.pdf(x, 0, 1), stats.norm.pdf(x, 1.5, 0.7)
    with torch.no_grad():
        d = torch.sigmoid(D(torch.tensor(x, dtype=torch.float32)[:, None]))[:, 0].numpy()
    assert np.abs(d - p / (p + q)).max() < 0.06


def test_train_discriminator_bad_input():
    D = gan.mlp_discriminator(1, hidden=(4,))
    with pytest.raises(ValueError, match="num_steps"):
        gan.train_discriminator(D, torch.randn, torch.randn, num_steps=0, device="cpu")
    with pytest.raises(ValueError, match="lr"):
        gan.train_discriminator(D, torch.randn, torch.randn, num_steps=1, lr=-1.0, device="cpu")


# ----------------------------------------------------------------------------------------------
# the value of the game at the optimal discriminator (1-D quadrature), against scipy's quad
# ----------------------------------------------------------------------------------------------
def _grid_log_densities(shift, scale):
    from course_lib import divergences, toy

    f64 = torch.float64
    p = toy.GaussianMixture(torch.zeros(1, 1, dtype=f64), torch.ones(1, dtype=f64))
    q = toy.GaussianMixture(torch.tensor([[shift]], dtype=f64), torch.tensor([scale], dtype=f64))
    x = divergences.quadrature_grid(p, q)
    return p.log_prob(x[:, None]), q.log_prob(x[:, None]), x


def test_optimal_discriminator_of_two_gaussians_matches_density_ratio():
    x = np.linspace(-5, 7, 97)
    p, q = stats.norm.pdf(x, 0, 1), stats.norm.pdf(x, 2.0, 0.6)
    d = gan.optimal_discriminator(torch.from_numpy(stats.norm.logpdf(x, 0, 1)),
                                  torch.from_numpy(stats.norm.logpdf(x, 2.0, 0.6)), log_densities=True)
    np.testing.assert_allclose(d.numpy(), p / (p + q), rtol=1e-10)


@pytest.mark.parametrize("shift,scale", [(0.0, 1.0), (1.0, 0.5), (3.0, 2.0), (-5.0, 0.25)])
def test_optimal_discriminator_value_matches_adaptive_quadrature(shift, scale):
    """V(G, D*) by the trapezoid rule against scipy's quad of its definition, and Theorem 1."""
    from course_lib import divergences

    lp, lq, x = _grid_log_densities(shift, scale)
    value = gan.optimal_discriminator_value(lp, lq, x)
    pd, pg = stats.norm(0, 1), stats.norm(shift, scale)
    lo, hi = float(x[0]), float(x[-1])
    pts = sorted({0.0, shift})

    def d_star(t):
        return pd.pdf(t) / (pd.pdf(t) + pg.pdf(t))

    want = integrate.quad(lambda t: pd.pdf(t) * math.log(d_star(t)), lo, hi, points=pts, limit=400)[0] \
        + integrate.quad(lambda t: pg.pdf(t) * math.log1p(-d_star(t)) if d_star(t) < 1 else 0.0,
                         lo, hi, points=pts, limit=400)[0]
    assert abs(value - want) < 1e-7
    jsd = divergences.js_divergence_1d(lp, lq, x)
    assert abs(value - (-math.log(4) + 2 * jsd)) < 1e-7  # Goodfellow et al. 2014, Theorem 1
    if shift == 0.0 and scale == 1.0:
        assert abs(value + math.log(4)) < 1e-9 and abs(jsd) < 1e-12


def test_optimal_discriminator_value_approaches_zero_for_disjoint_distributions():
    from course_lib import divergences

    lp, lq, x = _grid_log_densities(40.0, 1.0)
    value = gan.optimal_discriminator_value(lp, lq, x)
    assert abs(divergences.js_divergence_1d(lp, lq, x) - math.log(2)) < 1e-9 and abs(value) < 1e-8
    assert math.isfinite(gan.optimal_discriminator_value(torch.where(x < 20, lp, -math.inf), lq, x))


def test_optimal_discriminator_value_rejects_bad_input():
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="log_p_model"):
        gan.optimal_discriminator_value(torch.zeros(5), torch.zeros(4), x)
    with pytest.raises(ValueError, match="x"):
        gan.optimal_discriminator_value(torch.zeros(5), torch.zeros(5), x.flip(0))
