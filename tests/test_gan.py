"""course_lib.gan against definitions, quadrature and constructed sample sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, stats

from course_lib import gan
from course_lib.toy import grid_mixture, ring_mixture

# ----------------------------------------------------------------------------------------------
# losses against their definitions (float64, sigmoid then log; |l| <= 15 keeps that reference accurate)
# ----------------------------------------------------------------------------------------------


def _sigmoid64(logit):
    return 1.0 / (1.0 + np.exp(-logit))


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
        leaf = logits.clone().requires_grad_(True)
        gan.generator_loss(leaf, saturating=saturating).backward()
        grads[saturating] = leaf.grad * len(logits)  # undo the mean
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


def test_generator_loss_reduction_none():
    f = torch.randn(7, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 5
    for saturating in (False, True):
        per = gan.generator_loss(f, saturating=saturating, reduction="none")
        assert per.shape == (7,)
        torch.testing.assert_close(per.mean(), gan.generator_loss(f, saturating=saturating))
    with pytest.raises(ValueError, match="reduction"):
        gan.generator_loss(f, reduction="sum")


# ----------------------------------------------------------------------------------------------
# the 1-D game against the exact optimal discriminator
# ----------------------------------------------------------------------------------------------


def _jsd_quad(mu, sd, b, a):
    """JSD(N(mu, sd^2) || N(b, a^2)) by adaptive quadrature (scipy), nats."""
    p, q = stats.norm(mu, sd), stats.norm(b, a)
    lo, hi = min(mu - 14 * sd, b - 14 * a), max(mu + 14 * sd, b + 14 * a)

    def half(r):
        def f(x):
            lr, lp, lq = r.logpdf(x), p.logpdf(x), q.logpdf(x)
            return math.exp(lr) * (lr - (np.logaddexp(lp, lq) - math.log(2)))
        return integrate.quad(f, lo, hi, points=sorted({mu, b}), limit=400, epsabs=1e-13, epsrel=1e-12)[0]

    return 0.5 * half(p) + 0.5 * half(q)


def _kl_gauss(b, a, mu, sd):
    """KL(N(b, a^2) || N(mu, sd^2)), closed form."""
    return math.log(sd / a) + (a ** 2 + (b - mu) ** 2) / (2 * sd ** 2) - 0.5


@pytest.mark.parametrize("mu,sd,b,a", [(1.0, 0.8, 0.0, 1.0), (1.0, 0.8, 0.7, 0.6), (1.0, 0.8, 2.0, 1.3),
                                        (4.0, 0.5, 0.0, 1.0)])
def test_dstar_game_gradients_are_the_divergence_gradients(mu, sd, b, a):
    """Against D* the saturating generator's gradient is grad 2 JSD(p_data || p_g) (Goodfellow et al.
    2014, Theorem 1 and the envelope theorem), the non-saturating one grad [KL(p_g || p_data) -
    2 JSD] (Arjovsky and Bottou 2017, Theorem 2.5): checked by central differences of the
    divergences, JSD by scipy quadrature and KL in closed form."""
    lr, h = 1e-3, 1e-4

    def jsd(bb, aa):
        return _jsd_quad(mu, sd, bb, aa)

    fd_jsd = np.array([(jsd(b + h, a) - jsd(b - h, a)) / (2 * h), (jsd(b, a + h) - jsd(b, a - h)) / (2 * h)])
    fd_kl = np.array([(_kl_gauss(b + h, a, mu, sd) - _kl_gauss(b - h, a, mu, sd)) / (2 * h),
                      (_kl_gauss(b, a + h, mu, sd) - _kl_gauss(b, a - h, mu, sd)) / (2 * h)])
    for saturating, want in ((True, 2 * fd_jsd), (False, fd_kl - 2 * fd_jsd)):
        path = gan.affine_generator_vs_optimal_discriminator(mu, sd, b, a, num_steps=1, lr=lr,
                                                            saturating=saturating)
        assert path.shape == (2, 2) and path.dtype == torch.float64
        grad = -(path[1] - path[0]).numpy() / lr
        np.testing.assert_allclose(grad, want, atol=2e-6, rtol=1e-5)


def test_dstar_game_saturating_generator_stalls_far_from_the_data():
    """Data N(4, 0.5^2), generator N(0, 1): against D* the log-D trick reaches the data exactly,
    the minimax loss barely moves (JSD ~ log 2 is flat there). Deterministic (quadrature)."""
    runs = {sat: gan.affine_generator_vs_optimal_discriminator(4.0, 0.5, 0.0, 1.0, num_steps=300, lr=0.05,
                                                              saturating=sat) for sat in (True, False)}
    w2 = {sat: math.hypot(p[-1, 0] - 4.0, p[-1, 1] - 0.5) for sat, p in runs.items()}
    first = {sat: (p[1] - p[0]).norm().item() / 0.05 for sat, p in runs.items()}
    assert w2[False] < 1e-6 and w2[True] > 1.0
    assert first[True] < 0.02 * first[False]
    assert torch.equal(runs[True][0], torch.tensor([0.0, 1.0], dtype=torch.float64))
    # at p_g = p_data both gradients vanish: a fixed point
    for sat in (True, False):
        p = gan.affine_generator_vs_optimal_discriminator(4.0, 0.5, 4.0, 0.5, num_steps=3, lr=0.05, saturating=sat)
        assert (p - p[0]).abs().max() < 1e-12


def test_dstar_game_bad_input():
    with pytest.raises(ValueError, match="data_std"):
        gan.affine_generator_vs_optimal_discriminator(0.0, 0.0, 1.0, 1.0, 1, 0.1)
    with pytest.raises(ValueError, match="std"):
        gan.affine_generator_vs_optimal_discriminator(0.0, 1.0, 1.0, -1.0, 1, 0.1)
    with pytest.raises(ValueError, match="num_steps"):
        gan.affine_generator_vs_optimal_discriminator(0.0, 1.0, 1.0, 1.0, 0, 0.1)
    with pytest.raises(ValueError, match="num_nodes"):
        gan.affine_generator_vs_optimal_discriminator(0.0, 1.0, 1.0, 1.0, 1, 0.1, num_nodes=400)


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


def test_wgan_losses_estimate_w1_with_the_optimal_critic():
    """p_data = delta_0, p_g = delta_c: the 1-Lipschitz critic f(x) = -sign(c) x attains the sup in the
    Kantorovich-Rubinstein duality, so -critic loss = W1 = |c| (Arjovsky et al. 2017), the penalty
    vanishes, and the generator loss is -E f(G(z)) = |c|."""
    for c in (2.5, -0.75):
        f = lambda x: -math.copysign(1.0, c) * x[:, 0]
        real, fake = torch.zeros(8, 1, dtype=torch.float64), torch.full((8, 1), c, dtype=torch.float64)
        assert gan.wgan_critic_loss(f(real), f(fake)).item() == pytest.approx(-abs(c), abs=1e-12)
        assert gan.wgan_generator_loss(f(fake)).item() == pytest.approx(abs(c), abs=1e-12)
        assert gan.gradient_penalty(f, real, fake).item() == pytest.approx(0.0, abs=1e-20)
    # a worse (non-optimal) critic gives a smaller estimate: 0.5 x instead of x
    real, fake = torch.zeros(4), torch.ones(4)
    assert -gan.wgan_critic_loss(-0.5 * real, -0.5 * fake).item() == pytest.approx(0.5)


def test_mlp_ensemble_members_are_independent_mlps():
    torch.manual_seed(0)
    E = gan.MLPEnsemble(3, 2, 1, hidden=(8, 5), activation="leaky_relu")
    x = torch.randn(12, 2, generator=torch.Generator().manual_seed(1))
    out = E(x)
    assert out.shape == (12, 1) and E.split(out).shape == (3, 4, 1)
    want = torch.cat([E.member(i)(x[4 * i:4 * i + 4]) for i in range(3)])
    torch.testing.assert_close(out, want)
    # hidden=() is an affine map per member
    A = gan.MLPEnsemble(2, 1, 1, hidden=())
    z = torch.randn(6, 1)
    torch.testing.assert_close(A(z), torch.cat([A.member(0)(z[:3]), A.member(1)(z[3:])]))
    # members are initialized independently, as nets.MLP initializes one
    assert not torch.equal(E.weights[0][0], E.weights[0][1])
    with pytest.raises(ValueError, match="num_models"):
        E(torch.randn(10, 2))
    with pytest.raises(ValueError, match="x"):
        E(torch.randn(12, 3))
    with pytest.raises(ValueError, match="i"):
        E.member(3)


def test_mlp_ensemble_trains_like_separate_runs():
    """Adam on the mean loss over members = Adam on each member alone (up to Adam's eps): the
    ensemble gives member i the gradient of its own loss divided by the number of members."""
    torch.manual_seed(0)
    S, n = 3, 16
    E = gan.MLPEnsemble(S, 2, 1, hidden=(8,), activation="relu")
    alone = [E.member(i) for i in range(S)]
    opt_e = torch.optim.Adam(E.parameters(), lr=1e-2)
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in alone]
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        x, y = torch.randn(S * n, 2, generator=g), torch.randn(S * n, 1, generator=g)
        loss = (E(x) - y).pow(2).mean()
        opt_e.zero_grad()
        loss.backward()
        opt_e.step()
        for i, (m, o) in enumerate(zip(alone, opts)):
            li = (m(x[i * n:(i + 1) * n]) - y[i * n:(i + 1) * n]).pow(2).mean()
            o.zero_grad()
            li.backward()
            o.step()
    xt = torch.randn(S * 4, 2, generator=g)
    torch.testing.assert_close(E(xt), torch.cat([m(xt[4 * i:4 * i + 4]) for i, m in enumerate(alone)]),
                               rtol=1e-5, atol=1e-6)


def test_dcgan_shapes(device):
    G, D = gan.DCGANGenerator(latent_dim=8, channels=8).to(device), gan.DCGANDiscriminator(channels=8).to(device)
    x = G(torch.randn(4, 8, device=device))
    assert x.shape == (4, 1, 8, 8) and x.abs().max() <= 1
    assert D(x).shape == (4, 1)
    with pytest.raises(ValueError, match="x"):
        D(torch.zeros(4, 1, 7, 7, device=device))


def _fixed_affine_generator(b=1.5, a=0.7):
    G = torch.nn.Linear(1, 1)
    with torch.no_grad():
        G.weight.fill_(a)
        G.bias.fill_(b)
    return G


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_train_gan_discriminator_step_approaches_the_optimal_discriminator(seed):
    """train_gan's discriminator update, G frozen (lr_g = 0): D approaches D* = p_data / (p_data + p_g)
    (Goodfellow et al. 2014, Proposition 1) for every seed, p_g = N(1.5, 0.7^2) known exactly."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    G, D = _fixed_affine_generator(), gan.mlp_discriminator(1, hidden=(32, 32))
    g_before = [p.detach().clone() for p in G.parameters()]
    data = torch.randn(20_000, 1, generator=g)
    hist = gan.train_gan(G, D, data, num_steps=300, latent_dim=1, batch_size=256, lr_g=0.0, lr_d=3e-3,
                         betas=(0.9, 0.999), generator=g, device="cpu", progress=False)
    assert all(torch.equal(p, q) for p, q in zip(G.parameters(), g_before))  # lr_g = 0: G did not move
    x = np.linspace(-1.5, 2.5, 81)
    p, q = stats.norm.pdf(x, 0, 1), stats.norm.pdf(x, 1.5, 0.7)
    with torch.no_grad():
        d = torch.sigmoid(D(torch.tensor(x, dtype=torch.float32)[:, None]))[:, 0].numpy()
    assert np.abs(d - p / (p + q)).max() < 0.08
    assert abs(hist.d_losses[0] - math.log(4)) < 0.1 and np.mean(hist.d_losses[-50:]) < math.log(4) - 0.3


@pytest.mark.parametrize("saturating", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_train_gan_generator_step_descends_its_loss_on_a_fixed_discriminator(seed, saturating):
    """train_gan's generator update, D frozen (lr_d = 0) at logit l(x) = x: either generator loss
    falls for every seed (it is monotone in G's mean b, which gradient descent raises), and the
    generator moves towards where D says 'real' (larger x)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    G = _fixed_affine_generator(b=-2.0, a=0.3)
    D = torch.nn.Linear(1, 1)
    with torch.no_grad():
        D.weight.fill_(1.0)
        D.bias.fill_(0.0)
    d_before = [p.detach().clone() for p in D.parameters()]
    data = torch.randn(1000, 1, generator=g)
    loss = "saturating" if saturating else "non_saturating"
    hist = gan.train_gan(G, D, data, num_steps=100, latent_dim=1, batch_size=256, loss=loss, lr_g=1e-2,
                         lr_d=0.0, generator=g, device="cpu", progress=False)
    assert all(torch.equal(p, q) for p, q in zip(D.parameters(), d_before))  # lr_d = 0: D did not move
    assert np.mean(hist.g_losses[-10:]) < np.mean(hist.g_losses[:10]) - 0.1
    assert G.bias.item() > -2.0 + 0.5


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


# ----------------------------------------------------------------------------------------------
# the generator's objective at D*: the log-D trick as 2 KL(M || p_data); LSGAN's Pearson chi^2
# ----------------------------------------------------------------------------------------------
def _bimodal_and_gaussian(d, mean, std):
    """Data: the equal-weight bimodal mixture at -+d/2 (unit stds); model N(mean, std^2); a grid."""
    from course_lib import divergences, toy

    f64 = torch.float64
    p = toy.bimodal_1d(d, 1.0, dtype=f64)
    q = toy.GaussianMixture(torch.tensor([[mean]], dtype=f64), torch.tensor([std], dtype=f64))
    x = divergences.quadrature_grid(p, q)
    return p, q, p.log_prob(x[:, None]), q.log_prob(x[:, None]), x


def _scipy_log_bimodal(d):
    """log of 0.5 N(-d/2, 1) + 0.5 N(d/2, 1), in log space (finite in the far tails)."""
    return lambda t: np.logaddexp(stats.norm.logpdf(t, -d / 2, 1), stats.norm.logpdf(t, d / 2, 1)) - math.log(2)


def _quad(f, lo, hi):
    return integrate.quad(f, lo, hi, limit=500, epsabs=1e-13, epsrel=1e-12)[0]


def _range(d, mean, std):
    """Where all the mass of both densities is (12 standard deviations beyond each)."""
    return min(-d / 2 - 12, mean - 12 * std), max(d / 2 + 12, mean + 12 * std)


@pytest.mark.parametrize("d,mean,std", [(6.0, 3.0, 1.0), (6.0, 0.0, 3.2), (2.0, -0.5, 0.6), (0.0, 0.0, 1.0)])
def test_generator_losses_at_optimum_match_adaptive_quadrature(d, mean, std):
    """E_pg[-log D*] and E_pg[log(1 - D*)] (trapezoid) against scipy's quad of their definitions, and
    the value identity E_pg[-log D*] = KL(p_g || p_data) - KL(p_g || M) + log 2."""
    _, _, lp, lq, x = _bimodal_and_gaussian(d, mean, std)
    log_pd, pg = _scipy_log_bimodal(d), stats.norm(mean, std)
    lo, hi = _range(d, mean, std)
    # -log D* = log(1 + p_g / p_data), -log(1 - D*) = log(1 + p_data / p_g)
    ns_ref = _quad(lambda t: pg.pdf(t) * np.logaddexp(0.0, pg.logpdf(t) - log_pd(t)), lo, hi)
    sat_ref = _quad(lambda t: -pg.pdf(t) * np.logaddexp(0.0, log_pd(t) - pg.logpdf(t)), lo, hi)
    ns = gan.generator_loss_at_optimum(lp, lq, x)
    sat = gan.generator_loss_at_optimum(lp, lq, x, saturating=True)
    assert abs(ns - ns_ref) < 1e-8 and abs(sat - sat_ref) < 1e-8
    kl_g_d = _quad(lambda t: pg.pdf(t) * (pg.logpdf(t) - log_pd(t)), lo, hi)
    kl_g_m = _quad(lambda t: pg.pdf(t) * (pg.logpdf(t) - np.logaddexp(log_pd(t), pg.logpdf(t)) + math.log(2)),
                   lo, hi)
    assert abs(ns - (kl_g_d - kl_g_m + math.log(2))) < 1e-8
    if d == 0.0:   # p_g = p_data: D* = 1/2, the losses are log 2 and -log 2
        assert abs(ns - math.log(2)) < 1e-10 and abs(sat + math.log(2)) < 1e-10


@pytest.mark.parametrize("d,mean,std", [(6.0, 3.0, 1.0), (6.0, 0.0, 3.2), (2.0, -0.5, 0.6), (4.0, 1.0, 1.5)])
def test_non_saturating_objective_is_kl_minus_2jsd(d, mean, std):
    """2 KL(M || p_data) (trapezoid) = KL(p_g || p_data) - 2 JSD, each term by scipy's quad."""
    _, _, lp, lq, x = _bimodal_and_gaussian(d, mean, std)
    log_pd, pg = _scipy_log_bimodal(d), stats.norm(mean, std)
    lo, hi = _range(d, mean, std)
    log_m = lambda t: np.logaddexp(log_pd(t), pg.logpdf(t)) - math.log(2)  # noqa: E731
    kl = _quad(lambda t: pg.pdf(t) * (pg.logpdf(t) - log_pd(t)), lo, hi)
    jsd = 0.5 * _quad(lambda t: np.exp(log_pd(t)) * (log_pd(t) - log_m(t)), lo, hi) \
        + 0.5 * _quad(lambda t: pg.pdf(t) * (pg.logpdf(t) - log_m(t)), lo, hi)
    assert abs(gan.non_saturating_objective(lp, lq, x) - (kl - 2 * jsd)) < 1e-8
    assert gan.non_saturating_objective(lp, lp, x) == pytest.approx(0.0, abs=1e-12)


def test_non_saturating_objective_gradient_is_the_frozen_dstar_gradient():
    """Arjovsky & Bottou (2017), Theorem 2.5 on a bimodal target: d/dtheta E_{p_theta}[-log D*_0] with D*
    frozen at theta_0 (scipy quad of the score-function form) = central differences of 2 KL(M || p_data)."""
    d, b, a, h = 6.0, 1.0, 1.5, 1e-4
    log_pd, pg0 = _scipy_log_bimodal(d), stats.norm(b, a)
    lo, hi = _range(d, b, a)
    neg_log_dstar0 = lambda t: np.logaddexp(0.0, pg0.logpdf(t) - log_pd(t))  # noqa: E731  -log D*_0
    frozen = np.array([
        _quad(lambda t: pg0.pdf(t) * (t - b) / a ** 2 * neg_log_dstar0(t), lo, hi),
        _quad(lambda t: pg0.pdf(t) * ((t - b) ** 2 / a ** 3 - 1 / a) * neg_log_dstar0(t), lo, hi)])

    def objective(bb, aa):
        _, _, lp, lq, x = _bimodal_and_gaussian(d, bb, aa)
        return gan.non_saturating_objective(lp, lq, x)

    central = np.array([(objective(b + h, a) - objective(b - h, a)) / (2 * h),
                        (objective(b, a + h) - objective(b, a - h)) / (2 * h)])
    np.testing.assert_allclose(central, frozen, rtol=1e-5, atol=1e-7)


def test_generator_objectives_bad_input():
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)
    for f in (gan.generator_loss_at_optimum, gan.non_saturating_objective, gan.lsgan_generator_value):
        with pytest.raises(ValueError, match="log_p_model"):
            f(torch.zeros(5), torch.zeros(4), x)
        with pytest.raises(ValueError, match="log_p_data"):
            f(torch.full((5,), math.nan), torch.zeros(5), x)
        with pytest.raises(ValueError, match="x"):
            f(torch.zeros(5), torch.zeros(5), x.flip(0))


def test_lsgan_losses_match_definition():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(7, generator=g, dtype=torch.float64), torch.randn(5, 1, generator=g, dtype=torch.float64)
    want_d = 0.5 * np.mean((real.numpy() - 0.7) ** 2) + 0.5 * np.mean((fake.numpy() + 0.2) ** 2)
    assert gan.lsgan_discriminator_loss(real, fake, a=-0.2, b=0.7).item() == pytest.approx(want_d, rel=1e-12)
    assert gan.lsgan_generator_loss(fake, c=0.3).item() == pytest.approx(0.5 * np.mean((fake.numpy() - 0.3) ** 2),
                                                                         rel=1e-12)
    # a discriminator that outputs b on data and a on samples has loss 0; large scores stay finite
    assert gan.lsgan_discriminator_loss(torch.ones(3), -torch.ones(4)).item() == 0.0
    assert torch.isfinite(gan.lsgan_discriminator_loss(torch.tensor([1e4]), torch.tensor([-1e4])))


def test_lsgan_bad_input():
    with pytest.raises(ValueError, match="a and b"):
        gan.lsgan_discriminator_loss(torch.zeros(3), torch.zeros(3), a=1.0, b=1.0)
    with pytest.raises(ValueError, match="a and b"):
        gan.lsgan_optimal_discriminator(torch.ones(3), torch.ones(3), a=0.5, b=0.5)
    with pytest.raises(ValueError, match="c"):
        gan.lsgan_generator_loss(torch.zeros(3), c=math.inf)
    with pytest.raises(ValueError, match="b"):
        gan.lsgan_discriminator_loss(torch.zeros(3), torch.zeros(3), b="1")
    with pytest.raises(ValueError, match="fake_scores"):
        gan.lsgan_generator_loss(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="p_data"):
        gan.lsgan_optimal_discriminator(torch.tensor([-1.0]), torch.tensor([1.0]))


@given(st.floats(0.0, 5.0), st.floats(0.0, 5.0), st.floats(-3, 3), st.floats(0.5, 4))
def test_lsgan_optimal_discriminator_minimizes_the_pointwise_loss(p, q, a, gap):
    """At each x the loss p (D - b)^2 + q (D - a)^2 is minimized at D* (scipy's scalar minimizer)."""
    from scipy.optimize import minimize_scalar

    b = a + gap
    d_star = gan.lsgan_optimal_discriminator(torch.tensor([p], dtype=torch.float64),
                                             torch.tensor([q], dtype=torch.float64), a=a, b=b).item()
    if p + q == 0:
        assert d_star == pytest.approx((a + b) / 2)
        return
    res = minimize_scalar(lambda y: p * (y - b) ** 2 + q * (y - a) ** 2, bounds=(a - 1, b + 1), method="bounded",
                          options={"xatol": 1e-12})
    assert d_star == pytest.approx(res.x, abs=1e-6) and a - 1e-12 <= d_star <= b + 1e-12


@pytest.mark.parametrize("abc", [(-1.0, 1.0, 0.0), (0.0, 2.0, 1.0), (-3.0, -1.0, -2.0)])
@pytest.mark.parametrize("d,mean,std", [(6.0, 3.0, 1.0), (2.0, -0.5, 0.6), (0.0, 0.0, 1.0)])
def test_lsgan_generator_value_is_half_pearson_chi2(abc, d, mean, std):
    """Mao et al. (2017): for b - c = 1, b - a = 2, C(G) at D* = 1/2 chi2_Pearson(p_d + p_g || 2 p_g)
    = 1/2 int (2 p_g - (p_d + p_g))^2 / (p_d + p_g), the latter by scipy's quad."""
    a, b, c = abc
    _, _, lp, lq, x = _bimodal_and_gaussian(d, mean, std)
    log_pd, pg = _scipy_log_bimodal(d), stats.norm(mean, std)

    def integrand(t):   # (2 p_g - (p_d + p_g))^2 / (p_d + p_g), written with s = p_d + p_g in log space
        log_s = np.logaddexp(log_pd(t), pg.logpdf(t))
        return math.exp(log_s) * (2 * math.exp(pg.logpdf(t) - log_s) - 1) ** 2

    chi2 = _quad(integrand, *_range(d, mean, std))
    value = gan.lsgan_generator_value(lp, lq, x, a=a, b=b, c=c)
    assert abs(value - 0.5 * chi2) < 1e-8 and 0.0 <= value <= 1.0
    if d == 0.0:
        assert abs(value) < 1e-12


def test_lsgan_generator_value_other_targets_is_not_chi2():
    """The chi2 identity needs b - c = 1, b - a = 2: with Mao et al.'s 0-1 coding (a = 0, b = c = 1) the
    value is 1/2 int p_g^2 / (p_d + p_g), another quantity (scipy's quad)."""
    _, _, lp, lq, x = _bimodal_and_gaussian(2.0, -0.5, 0.6)
    log_pd, pg = _scipy_log_bimodal(2.0), stats.norm(-0.5, 0.6)
    want = 0.5 * _quad(lambda t: math.exp(2 * pg.logpdf(t) - np.logaddexp(log_pd(t), pg.logpdf(t))),
                       *_range(2.0, -0.5, 0.6))
    assert abs(gan.lsgan_generator_value(lp, lq, x, a=0.0, b=1.0, c=1.0) - want) < 1e-8


# ----------------------------------------------------------------------------------------------
# interpolation and the kernel density estimate
# ----------------------------------------------------------------------------------------------
def test_interpolate_endpoints_are_exact_and_linear_is_affine():
    g = torch.Generator().manual_seed(1)
    z0, z1 = torch.randn(4, 16, generator=g), torch.randn(4, 16, generator=g)
    for method in ("linear", "slerp"):
        path = gan.interpolate(z0, z1, 7, method=method)
        assert path.shape == (4, 7, 16)
        assert torch.equal(path[:, 0], z0) and torch.equal(path[:, -1], z1)
    lin = gan.interpolate(z0.double(), z1.double(), 5)
    for j, t in enumerate(np.linspace(0, 1, 5)):
        torch.testing.assert_close(lin[:, j], (1 - t) * z0.double() + t * z1.double(), rtol=0, atol=1e-15)
    images = torch.randn(2, 1, 8, 8, generator=g)
    assert gan.interpolate(images[:1], images[1:], 3).shape == (1, 3, 1, 8, 8)
    assert gan.interpolate(z0[0], z1[0], 3).shape == (3, 16)


def test_slerp_is_a_great_circle_arc():
    """Equal norms: the slerp path is r (cos(t W) u + sin(t W) v), with u, v an orthonormal basis of the
    plane of z0, z1 built by Gram-Schmidt, W the angle between them (independent construction)."""
    g = torch.Generator().manual_seed(2)
    z0, z1 = torch.randn(16, generator=g, dtype=torch.float64), torch.randn(16, generator=g, dtype=torch.float64)
    z1 = z1 / z1.norm() * z0.norm()
    r = z0.norm()
    u = z0 / r
    v = z1 - (z1 @ u) * u
    v = v / v.norm()
    omega = math.atan2(float(z1 @ v), float(z1 @ u))
    path = gan.interpolate(z0, z1, 9, method="slerp")
    for j, t in enumerate(np.linspace(0, 1, 9)):
        torch.testing.assert_close(path[j], r * (math.cos(t * omega) * u + math.sin(t * omega) * v),
                                   rtol=0, atol=1e-12)
    torch.testing.assert_close(path.norm(dim=1), torch.full((9,), float(r), dtype=torch.float64), rtol=1e-13, atol=0)
    # parallel and antiparallel latents: no plane, the linear path, no NaN
    for other in (2 * z0, -z0):
        par = gan.interpolate(z0, other, 5, method="slerp")
        assert torch.isfinite(par).all()
        torch.testing.assert_close(par, gan.interpolate(z0, other, 5))


def test_interpolate_bad_input():
    z = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="start and end"):
        gan.interpolate(z, torch.zeros(3, 5), 4)
    with pytest.raises(ValueError, match="num_points"):
        gan.interpolate(z, z, 1)
    with pytest.raises(ValueError, match="method"):
        gan.interpolate(z, z, 3, method="cubic")
    with pytest.raises(ValueError, match="finite"):
        gan.interpolate(z, torch.full((3, 4), math.nan), 3)
    with pytest.raises(TypeError, match="start"):
        gan.interpolate(torch.zeros(3, 4, dtype=torch.long), z, 3)


def test_kde_log_prob_matches_a_gaussian_mixture():
    """An isotropic Gaussian KDE is the equal-weight mixture of N(x_i, h^2 I): compare with
    torch.distributions (MixtureSameFamily), chunked or not."""
    g = torch.Generator().manual_seed(3)
    samples, x = torch.randn(50, 2, generator=g, dtype=torch.float64), 3 * torch.randn(40, 2, generator=g,
                                                                                        dtype=torch.float64)
    h = 0.3
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.ones(50, dtype=torch.float64)),
        torch.distributions.Independent(torch.distributions.Normal(samples, h), 1))
    for chunk in (7, 2048):
        torch.testing.assert_close(gan.kde_log_prob(x, samples, h, chunk_size=chunk), mix.log_prob(x),
                                   rtol=1e-12, atol=1e-12)
    assert torch.isfinite(gan.kde_log_prob(torch.full((1, 2), 50.0, dtype=torch.float64), samples, 0.01)).all()
    with pytest.raises(ValueError, match="samples"):
        gan.kde_log_prob(x, samples[:, :1], h)
    with pytest.raises(ValueError, match="bandwidth"):
        gan.kde_log_prob(x, samples, 0.0)
