"""course_lib.score against independent references.

References used: closed forms in float64 (Gaussian Langevin stationary law, affine scores on
Gaussian data, SURE of a linear shrinker), numerical quadrature (scipy.integrate.quad for 1-D
posterior moments, REFERENCES.md A9 fixed points), self-normalized importance sampling for
posterior means, autograd Hessians of log_prob, and Monte Carlo means compared with a tolerance of
5 standard errors (false alarm < 1e-6 per check).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, linalg
from scipy.stats import norm

from course_lib import score
from course_lib.toy import GaussianMixture

F64 = torch.float64
Z = 5.0  # standard errors allowed in Monte Carlo comparisons


def _gen(seed=0, device="cpu"):
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def _ncsn_toy(dtype=F64, device="cpu"):
    """NCSN's toy (REFERENCES.md A5): 0.8 N((5,5), I) + 0.2 N((-5,-5), I)."""
    return GaussianMixture(torch.tensor([[5.0, 5.0], [-5.0, -5.0]], dtype=dtype, device=device),
                           torch.ones(2, dtype=dtype, device=device),
                           torch.tensor([0.8, 0.2], dtype=dtype, device=device))


def _mix2d(dtype=F64, device="cpu"):
    return GaussianMixture(torch.tensor([[-1.0, 0.5], [1.5, -0.5], [0.0, 2.0]], dtype=dtype, device=device),
                           torch.tensor([[0.5, 0.8], [0.4, 0.3], [0.7, 0.6]], dtype=dtype, device=device),
                           torch.tensor([0.3, 0.5, 0.2], dtype=dtype, device=device))


def _mlp(seed=0, d=2):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.Tanh(), torch.nn.Linear(16, d)).double()


def _assert_mc(values: torch.Tensor, expected: float, what: str):
    values = values.detach().double().cpu()
    se = values.std().item() / math.sqrt(values.numel())
    mean = values.mean().item()
    assert abs(mean - expected) <= Z * se + 1e-12, f"{what}: MC mean {mean} vs {expected}, se {se}"


# ------------------------------------------------------------------------------------------------
# Langevin dynamics
# ------------------------------------------------------------------------------------------------
def test_langevin_reproduces_gaussian_mean_and_covariance(device):
    mean = torch.tensor([1.0, -2.0], dtype=F64)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=F64)
    prec = torch.linalg.inv(cov)
    mean_d, prec_d = mean.to(device), prec.to(device)

    def score_fn(x):
        return -(x - mean_d) @ prec_d                           # grad log N(x; m, C)

    n, eta, steps = 2000, 0.05, 300
    x0 = torch.zeros(n, 2, dtype=F64, device=device)
    x = score.langevin_dynamics(score_fn, x0, eta, steps, generator=_gen(0, device)).cpu()
    assert x.device.type == "cpu" and x.dtype == F64
    # stationary law of the discrete chain x' = A x + c + sqrt(2 eta) z, A = I - eta C^{-1}:
    # covariance solves S = A S A^T + 2 eta I (scipy), which is C + O(eta).
    A = (torch.eye(2, dtype=F64) - eta * prec).numpy()
    S = torch.from_numpy(linalg.solve_discrete_lyapunov(A, 2 * eta * np.eye(2)))
    assert torch.allclose(S, cov, atol=0.05)                     # the O(eta) bias is small
    se_mean = (torch.diag(S) / n).sqrt()
    assert ((x.mean(0) - mean).abs() <= Z * se_mean).all(), x.mean(0)
    emp = torch.cov(x.T)
    se_cov = ((torch.diag(S)[:, None] * torch.diag(S)[None, :] + S ** 2) / n).sqrt()
    assert ((emp - S).abs() <= Z * se_cov).all(), (emp, S)


def test_langevin_trajectory_and_zero_steps():
    x0 = torch.randn(5, 2, generator=_gen(1), dtype=F64)
    x, path = score.langevin_dynamics(lambda x: -x, x0, 0.1, 3, generator=_gen(2), trajectory=True)
    assert path.shape == (4, 5, 2) and torch.equal(path[0], x0) and torch.equal(path[-1], x)
    assert torch.equal(score.langevin_dynamics(lambda x: -x, x0, 0.1, 0), x0)


def test_langevin_one_step_is_the_formula():
    x0 = torch.randn(7, 3, generator=_gen(3), dtype=F64)
    z = torch.randn(7, 3, generator=_gen(4), dtype=F64)
    got = score.langevin_dynamics(lambda x: -2 * x, x0, 0.3, 1, generator=_gen(4))
    assert torch.allclose(got, x0 + 0.3 * (-2 * x0) + math.sqrt(0.6) * z)


def test_plain_langevin_misses_weights_annealed_recovers_them():
    """NCSN's toy (REFERENCES.md A5, B6): the fraction in the (5, 5) mode."""
    mix = _ncsn_toy()
    n = 600
    g = _gen(0)
    x0 = 16 * torch.rand(n, 2, generator=g, dtype=F64) - 8               # U[-8, 8]^2
    plain = score.langevin_dynamics(mix.score, x0, 0.05, 300, generator=g)    # lr = 0.1 in lr/2 form
    sigmas = score.geometric_sigmas(20.0, 1.0, 10)
    annealed = score.annealed_langevin_dynamics(lambda x, s: mix.convolve(s).score(x), x0, sigmas,
                                                0.05, 40, generator=g)
    se = math.sqrt(0.8 * 0.2 / n)
    frac_plain = (plain.sum(1) > 0).double().mean().item()
    frac_annealed = (annealed.sum(1) > 0).double().mean().item()
    assert abs(frac_annealed - 0.8) <= Z * se, frac_annealed
    assert abs(frac_plain - 0.8) > 10 * se, frac_plain                   # stuck where it started
    # plain Langevin keeps the initial split: the fraction of starts with x1 + x2 > 0 is ~1/2
    assert abs(frac_plain - (x0.sum(1) > 0).double().mean().item()) < 0.05


def test_annealed_step_schedule_and_final_denoise():
    """One step per level with a score of 0: the increments have variance 2 eta sigma_i^2/sigma_L^2."""
    n = 20000
    x0 = torch.zeros(n, 1, dtype=F64)
    sig = torch.tensor([4.0, 2.0, 1.0], dtype=F64)
    _, path = score.annealed_langevin_dynamics(lambda x, s: torch.zeros_like(x), x0, sig, 0.1, 1,
                                               generator=_gen(5), trajectory=True)
    incr = (path[1:] - path[:-1])[:, :, 0]
    want = 2 * 0.1 * sig ** 2 / sig[-1] ** 2
    var = incr.var(1)
    se = want * math.sqrt(2 / n)
    assert ((var - want).abs() <= Z * se).all(), (var, want)
    calls = []
    x = score.annealed_langevin_dynamics(lambda x, s: calls.append(s) or torch.ones_like(x), x0[:3],
                                         [3.0, 0.5], 0.1, 2, generator=_gen(6), final_denoise=True)
    assert calls == [3.0, 3.0, 0.5, 0.5, 0.5] and all(isinstance(c, float) for c in calls)
    assert x.shape == (3, 1)


def test_geometric_sigmas():
    s = score.geometric_sigmas(1.0, 0.01, 10)
    ref = np.exp(np.linspace(np.log(1.0), np.log(0.01), 10))
    np.testing.assert_allclose(s.numpy(), ref, rtol=1e-12)
    assert (s[1:] < s[:-1]).all()


# ------------------------------------------------------------------------------------------------
# divergence
# ------------------------------------------------------------------------------------------------
def test_divergence_exact_is_the_hessian_trace(device):
    mix = _mix2d(device=device)
    y = 2 * torch.randn(50, 2, generator=_gen(7), dtype=F64).to(device)
    got = score.divergence(mix.score, y)
    want = torch.diagonal(mix.hessian_log_prob(y), dim1=1, dim2=2).sum(1)
    assert got.shape == (50,) and got.device.type == device.type
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_divergence_of_linear_map_is_trace():
    A = torch.randn(5, 5, generator=_gen(8), dtype=F64)
    y = torch.randn(4, 5, generator=_gen(9), dtype=F64)
    got = score.divergence(lambda v: v @ A.T, y)
    torch.testing.assert_close(got, torch.full((4,), torch.trace(A).item(), dtype=F64))


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_and_converges(probe):
    net = _mlp(1, d=4)
    y = torch.randn(6, 4, generator=_gen(10), dtype=F64)
    exact = score.divergence(net, y).detach()
    # unbiased: 4000 single-probe estimates per point average to the exact value
    single = torch.stack([score.divergence(net, y, num_probes=1, generator=g, probe=probe).detach()
                          for g in [_gen(100 + i) for i in range(1)]])
    assert single.shape == (1, 6)
    yy = y.repeat(3000, 1)
    many = score.divergence(net, yy, num_probes=1, generator=_gen(11), probe=probe).detach()
    many = many.reshape(3000, 6)
    for j in range(6):
        _assert_mc(many[:, j], exact[j].item(), f"Hutchinson ({probe}) at point {j}")
    # converging: RMS error over points falls roughly like 1/sqrt(M)
    err = {}
    for m in (4, 100):
        est = score.divergence(net, y.repeat(100, 1), num_probes=m, generator=_gen(12), probe=probe)
        err[m] = ((est.detach().reshape(100, 6) - exact) ** 2).mean().sqrt().item()
    assert err[100] < err[4] / 3, err                            # sqrt(100 / 4) = 5 expected


def test_hutchinson_rademacher_is_exact_for_diagonal_jacobian():
    y = torch.randn(8, 3, generator=_gen(13), dtype=F64)
    f = lambda v: torch.sin(v)  # noqa: E731  diagonal Jacobian: v^T J v = tr J for v in {-1, 1}^D
    torch.testing.assert_close(score.divergence(f, y, num_probes=1, generator=_gen(14)),
                               torch.cos(y).sum(1))


def test_divergence_is_differentiable_when_grad_enabled_and_detached_otherwise():
    net = _mlp(2)
    y = torch.randn(3, 2, generator=_gen(15), dtype=F64)
    d = score.divergence(net, y)
    assert d.requires_grad
    d.sum().backward()
    assert net[0].weight.grad is not None
    with torch.no_grad():
        assert not score.divergence(net, y).requires_grad


# ------------------------------------------------------------------------------------------------
# score matching losses
# ------------------------------------------------------------------------------------------------
def test_score_matching_loss_closed_form_affine_score():
    """s(x) = A x + b: per example 1/2 ||A x + b||^2 + tr A (no autograd in the reference)."""
    A = torch.randn(3, 3, generator=_gen(16), dtype=F64)
    b = torch.randn(3, generator=_gen(17), dtype=F64)
    x = torch.randn(20, 3, generator=_gen(18), dtype=F64)
    got = score.score_matching_loss(lambda v: v @ A.T + b, x, reduction="none")
    want = 0.5 * ((x @ A.T + b) ** 2).sum(1) + torch.trace(A)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(score.score_matching_loss(lambda v: v @ A.T + b, x), want.mean())


def test_implicit_equals_explicit_minus_constant_in_expectation():
    """Integration by parts: J(s) = 1/2 E||s - grad log p||^2 - 1/2 E||grad log p||^2."""
    mix = _mix2d()
    x = mix.sample(40000, generator=_gen(19))
    for seed in (0, 1):
        net = _mlp(seed)
        implicit = score.score_matching_loss(net, x, reduction="none").detach()
        explicit = score.explicit_score_matching_loss(net, mix.score, x, reduction="none").detach()
        const = 0.5 * (mix.score(x) ** 2).sum(1)
        _assert_mc(implicit - explicit + const, 0.0, f"integration by parts, net {seed}")


@pytest.mark.parametrize("probe,vr", [("gaussian", False), ("rademacher", False), ("gaussian", True)])
def test_sliced_equals_exact_in_expectation(probe, vr):
    net = _mlp(3)
    x = torch.randn(5, 2, generator=_gen(20), dtype=F64)
    exact = score.score_matching_loss(net, x, reduction="none").detach()
    m = 20000
    per = score.sliced_score_matching_loss(net, x.repeat(m, 1), num_projections=1, generator=_gen(21),
                                           probe=probe, variance_reduction=vr,
                                           reduction="none").detach().reshape(m, 5)
    for j in range(5):
        _assert_mc(per[:, j], exact[j].item(), f"sliced ({probe}, vr={vr}) at point {j}")
    # num_projections averages: the same mean, smaller spread
    avg = score.sliced_score_matching_loss(net, x, num_projections=500, generator=_gen(22),
                                           probe=probe, variance_reduction=vr, reduction="none")
    assert ((avg.detach() - exact).abs() < Z * per.std(0) / math.sqrt(500)).all()


@pytest.mark.parametrize("d", [2, 8, 32])
def test_cost_in_flops_exact_trace_grows_with_d_sliced_does_not(d):
    """Counted by torch's FLOP counter (matrix products): the sliced loss costs a forward pass and
    one vector-Jacobian product (2 forward passes) per projection at every D; the exact trace a
    forward pass and D vector-Jacobian products (1 + D)."""
    from torch.nn import functional as F
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(d)
    w1, b1, w2, b2 = torch.randn(16, d), torch.randn(16), torch.randn(d, 16), torch.randn(d)

    def f(v):       # a plain function: the counter's module tracker cannot follow autograd.grad
        return F.linear(torch.tanh(F.linear(v, w1, b1)), w2, b2)

    def flops(fn):
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops()

    x = torch.randn(64, d, generator=_gen(60))
    forward = flops(lambda: f(x))
    assert forward > 0
    assert flops(lambda: score.sliced_score_matching_loss(f, x, generator=_gen(61))) == 2 * forward
    assert flops(lambda: score.sliced_score_matching_loss(f, x, num_projections=3, generator=_gen(61))) == 6 * forward
    assert flops(lambda: score.score_matching_loss(f, x)) == (1 + d) * forward


def test_sliced_with_unit_sphere_probes_would_fail():
    """Guard for REFERENCES.md C14: our probes are unnormalized, so the loss is not exact / D."""
    A = torch.tensor([[-2.0, 0.3], [0.1, -1.0]], dtype=F64)
    x = 0.2 * torch.randn(30000, 2, generator=_gen(23), dtype=F64)     # J ~ tr A = -3
    sl = score.sliced_score_matching_loss(lambda v: v @ A.T, x, generator=_gen(24), reduction="none")
    exact = score.score_matching_loss(lambda v: v @ A.T, x, reduction="none")
    _assert_mc(sl.detach() - exact, 0.0, "sliced - exact")
    se = sl.detach().std().item() / math.sqrt(sl.numel())
    assert abs(sl.mean().item() - exact.mean().item() / 2) > 10 * se


def test_dsm_gradient_vanishes_at_the_convolved_score_only():
    """d/dtheta J_DSM(s* + theta h) at theta = 0 is E[(s* - target) . h]: 0 iff s* = grad log p_sigma."""
    mix = _mix2d()
    sigma = 0.7
    noisy = mix.convolve(sigma)
    x = mix.sample(60000, generator=_gen(25))

    def h(v):
        return torch.stack([torch.sin(v[:, 0]) + v[:, 1], v[:, 0] * v[:, 1]], dim=1)

    def per_example_grad(base):
        theta = torch.zeros(x.shape[0], 1, dtype=F64, requires_grad=True)
        loss = score.denoising_score_matching_loss(lambda v: base(v) + theta * h(v), x, sigma,
                                                   generator=_gen(26), reduction="none")
        (g,) = torch.autograd.grad(loss.sum(), theta)
        return g[:, 0]

    _assert_mc(per_example_grad(noisy.score), 0.0, "DSM gradient at grad log p_sigma")
    wrong = per_example_grad(mix.score)                       # the clean score is not the minimizer
    se = wrong.std().item() / math.sqrt(wrong.numel())
    assert abs(wrong.mean().item()) > 10 * se


def test_dsm_minimizer_for_gaussian_data_is_affine_closed_form():
    """Data N(m, s^2 I): least-squares fit of an affine score to DSM targets -> -(x - m)/(s^2 + sigma^2)."""
    m, s, sigma, n = torch.tensor([1.0, -0.5], dtype=F64), 0.8, 0.6, 200000
    x = m + s * torch.randn(n, 2, generator=_gen(27), dtype=F64)
    W = torch.zeros(2, 2, dtype=F64, requires_grad=True)
    b = torch.zeros(2, dtype=F64, requires_grad=True)
    # the DSM loss is quadratic in (W, b): one Newton step from 0 reaches its minimizer
    params = torch.cat([W.flatten(), b])

    def loss_of(p):
        return score.denoising_score_matching_loss(lambda v: v @ p[:4].reshape(2, 2).T + p[4:], x,
                                                   sigma, generator=_gen(28))

    g = torch.autograd.functional.jacobian(loss_of, params)
    H = torch.autograd.functional.hessian(loss_of, params)
    p_star = params.detach() - torch.linalg.solve(H, g)
    a = -1 / (s ** 2 + sigma ** 2)
    torch.testing.assert_close(p_star[:4].reshape(2, 2), a * torch.eye(2, dtype=F64), atol=0.02, rtol=0)
    torch.testing.assert_close(p_star[4:], -a * m, atol=0.02, rtol=0)


def test_dsm_minus_explicit_on_noised_density_is_model_independent():
    mix = _mix2d()
    sigma = 0.5
    noisy = mix.convolve(sigma)
    x = mix.sample(40000, generator=_gen(29))
    # the constant: 1/2 E||eps/sigma||^2 - 1/2 E||grad log p_sigma||^2 = D/(2 sigma^2) - 1/2 E||s*||^2
    y = noisy.sample(200000, generator=_gen(30))
    const = 2 / (2 * sigma ** 2) - 0.5 * (noisy.score(y) ** 2).sum(1).mean().item()
    for seed in (0, 1, 2):
        net = _mlp(seed)
        dsm = score.denoising_score_matching_loss(net, x, sigma, generator=_gen(31), reduction="none")
        # explicit loss on the same noisy points x~ = x + sigma eps (same generator seed)
        eps = torch.randn(x.shape, generator=_gen(31), dtype=F64)
        xt = x + sigma * eps
        esm = score.explicit_score_matching_loss(net, noisy.score, xt, reduction="none")
        _assert_mc((dsm - esm).detach() - (1 / (2 * sigma ** 2)) * (eps ** 2).sum(1)
                   + 0.5 * (noisy.score(xt) ** 2).sum(1), 0.0, f"DSM - ESM, net {seed}")
    assert const > 0


def test_dsm_per_example_sigma_and_formula():
    x = torch.randn(6, 2, generator=_gen(32), dtype=F64)
    sig = torch.linspace(0.2, 1.2, 6, dtype=F64)
    eps = torch.randn(6, 2, generator=_gen(33), dtype=F64)
    f = lambda v: -v  # noqa: E731
    got = score.denoising_score_matching_loss(f, x, sig, generator=_gen(33), reduction="none")
    xt = x + sig[:, None] * eps
    torch.testing.assert_close(got, 0.5 * ((-xt + eps / sig[:, None]) ** 2).sum(1))


def test_annealed_dsm_loss_weighting():
    x = torch.randn(500, 2, generator=_gen(34), dtype=F64)
    seen = []

    def f(v, s):
        seen.append(s)
        return torch.zeros_like(v)

    loss = score.annealed_denoising_score_matching_loss(f, x, [2.0, 1.0, 0.5], generator=_gen(35),
                                                        reduction="none")
    # with s = 0 the loss is 1/2 ||eps||^2 at every level (sigma^2 weighting), mean D/2 = 1
    _assert_mc(loss, 1.0, "annealed DSM with zero score")
    assert set(seen[0].tolist()) == {2.0, 1.0, 0.5} and seen[0].shape == (500,)


# ------------------------------------------------------------------------------------------------
# Tweedie
# ------------------------------------------------------------------------------------------------
def test_tweedie_fixed_points_from_references():
    """REFERENCES.md A9: 0.3 N(-2, 0.5^2) + 0.7 N(1.5, 0.3^2), sigma = 0.8, y = 0.4 (quadrature)."""
    mix = GaussianMixture(torch.tensor([[-2.0], [1.5]], dtype=F64), torch.tensor([0.5, 0.3], dtype=F64),
                          torch.tensor([0.3, 0.7], dtype=F64))
    sigma, y = 0.8, torch.tensor([[0.4]], dtype=F64)
    noisy = mix.convolve(sigma)
    mean = score.tweedie_denoise(y, noisy.score(y), sigma)
    var = score.tweedie_covariance(noisy.hessian_log_prob(y), sigma)
    assert abs(mean.item() - 1.2735122509) < 1e-8
    assert abs(var.item() - 0.3185181591) < 1e-8
    # and our own quadrature with scipy (independent of course_lib)
    prior = lambda x: 0.3 * norm.pdf(x, -2, 0.5) + 0.7 * norm.pdf(x, 1.5, 0.3)  # noqa: E731
    post = lambda x: prior(x) * norm.pdf(0.4, x, sigma)  # noqa: E731
    z = integrate.quad(post, -10, 10, epsabs=1e-13)[0]
    m1 = integrate.quad(lambda x: x * post(x), -10, 10, epsabs=1e-13)[0] / z
    m2 = integrate.quad(lambda x: x * x * post(x), -10, 10, epsabs=1e-13)[0] / z
    assert abs(mean.item() - m1) < 1e-9 and abs(var.item() - (m2 - m1 ** 2)) < 1e-9


def test_tweedie_against_monte_carlo_posterior_mean(device):
    mix = _mix2d()
    sigma = 0.6
    y = torch.tensor([[0.0, 0.0], [1.0, -1.0], [-1.5, 1.0], [0.5, 2.5]], dtype=F64)
    got = score.tweedie_denoise(y.to(device), mix.to(device).convolve(sigma).score(y.to(device)), sigma)
    assert got.device.type == device.type
    got = got.cpu()
    # self-normalized importance sampling with the prior as proposal: w = N(y; x, sigma^2)
    x = mix.sample(400000, generator=_gen(36))
    for i in range(y.shape[0]):
        logw = -((y[i] - x) ** 2).sum(1) / (2 * sigma ** 2)
        w = torch.softmax(logw, 0)
        est = (w[:, None] * x).sum(0)
        # delta-method standard error of a ratio estimator: sqrt(sum w^2 (x - est)^2)
        se = ((w[:, None] ** 2) * (x - est) ** 2).sum(0).sqrt()
        assert ((got[i] - est).abs() <= Z * se).all(), (i, got[i], est, se)


def test_tweedie_equals_mixture_posterior_mean_and_sigma_tensor():
    mix = _mix2d()
    y = 2 * torch.randn(30, 2, generator=_gen(37), dtype=F64)
    sig = torch.linspace(0.1, 2.0, 30, dtype=F64)
    got = torch.stack([score.tweedie_denoise(y[i:i + 1], mix.convolve(sig[i].item()).score(y[i:i + 1]),
                                             sig[i].item())[0] for i in range(30)])
    scores = torch.stack([mix.convolve(sig[i].item()).score(y[i:i + 1])[0] for i in range(30)])
    torch.testing.assert_close(score.tweedie_denoise(y, scores, sig), got)
    torch.testing.assert_close(got, mix.posterior_mean(y, sig), rtol=1e-10, atol=1e-10)


def test_second_order_tweedie_against_autograd_hessian_and_posterior_covariance():
    mix = _mix2d()
    sigma = 0.8
    noisy = mix.convolve(sigma)
    y = 2 * torch.randn(10, 2, generator=_gen(38), dtype=F64)
    # Hessian of log p_sigma by autograd (independent of the closed-form hessian_log_prob)
    H = torch.stack([torch.autograd.functional.hessian(lambda v: noisy.log_prob(v[None])[0], y[i])
                     for i in range(10)])
    cov = score.tweedie_covariance(H, sigma)
    torch.testing.assert_close(cov, mix.posterior_covariance(y, sigma), rtol=1e-9, atol=1e-10)
    assert torch.allclose(cov, cov.transpose(1, 2))
    assert (torch.linalg.eigvalsh(cov) > 0).all()


@given(st.floats(0.05, 3.0), st.integers(0, 10_000))
def test_second_order_tweedie_property(sigma, seed):
    g = _gen(seed)
    k, d = 3, 2
    mix = GaussianMixture(3 * torch.randn(k, d, generator=g, dtype=F64),
                          0.2 + torch.rand(k, d, generator=g, dtype=F64),
                          torch.softmax(torch.randn(k, generator=g, dtype=F64), 0))
    y = 3 * torch.randn(5, d, generator=g, dtype=F64)
    cov = score.tweedie_covariance(mix.convolve(sigma).hessian_log_prob(y), sigma)
    torch.testing.assert_close(cov, mix.posterior_covariance(y, sigma), rtol=1e-7, atol=1e-9)


def test_tweedie_cumulants_equal_the_mixture_posterior_moments():
    """Orders 1-3 from autograd of log p_sigma against the posterior mixture's Bayes-rule moments."""
    mix = _mix2d()
    y = 2.5 * torch.randn(30, 2, generator=_gen(60), dtype=F64)
    for sigma in (0.2, 0.8, 2.5):
        k = score.tweedie_cumulants(mix.convolve(sigma).log_prob, y, sigma, order=3)
        assert k.shape == (3, 30, 2) and not k.requires_grad
        torch.testing.assert_close(k[0], mix.posterior_mean(y, sigma), rtol=1e-10, atol=1e-11)
        torch.testing.assert_close(k[1], mix.posterior_covariance(y, sigma).diagonal(dim1=1, dim2=2),
                                   rtol=1e-10, atol=1e-11)
        torch.testing.assert_close(k[2], mix.posterior_third_central_moment(y, sigma), rtol=1e-9, atol=1e-11)
        assert k[2].abs().max() > 1e-3                         # the check is not 0 == 0
    # 1-D, per-example sigma, and an unnormalized log-density (the constant drops out)
    mix1 = GaussianMixture(torch.tensor([[-2.0], [1.5]], dtype=F64), torch.tensor([0.5, 0.3], dtype=F64),
                           torch.tensor([0.3, 0.7], dtype=F64))
    y1 = torch.linspace(-4, 4, 9, dtype=F64)[:, None]
    sig = torch.linspace(0.3, 1.5, 9, dtype=F64)
    lp = [lambda v, s_=s_: mix1.convolve(s_).log_prob(v) + 7.0 for s_ in sig.tolist()]
    k1 = torch.cat([score.tweedie_cumulants(lp[i], y1[i:i + 1], sig[i]) for i in range(9)], 1)
    torch.testing.assert_close(k1[2], mix1.posterior_third_central_moment(y1, sig), rtol=1e-9, atol=1e-12)


def test_tweedie_cumulants_of_a_gaussian_prior_in_closed_form():
    """x ~ N(mu, s^2): posterior N((s^2 y + sigma^2 mu)/(s^2 + sigma^2), s^2 sigma^2/(s^2 + sigma^2)), kappa_3 = 0."""
    mu, s_, sigma = 0.7, 1.3, 0.6
    y = torch.linspace(-3, 3, 7, dtype=F64)[:, None]

    def log_p(v):                                   # log N(y; mu, s^2 + sigma^2) up to a constant
        return -0.5 * ((v[:, 0] - mu) ** 2) / (s_ ** 2 + sigma ** 2)
    k = score.tweedie_cumulants(log_p, y, sigma, order=4)
    total = s_ ** 2 + sigma ** 2
    torch.testing.assert_close(k[0], (s_ ** 2 * y + sigma ** 2 * mu) / total, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(k[1], torch.full_like(y, s_ ** 2 * sigma ** 2 / total), rtol=1e-12, atol=1e-12)
    assert k[2].abs().max() < 1e-12 and k[3].abs().max() < 1e-12


def test_tweedie_cumulants_bad_input():
    lp = _mix2d().convolve(1.0).log_prob
    with pytest.raises(ValueError, match="order"):
        score.tweedie_cumulants(lp, _x(), 1.0, order=0)
    with pytest.raises(ValueError, match="sigma"):
        score.tweedie_cumulants(lp, _x(), 0.0)
    with pytest.raises(ValueError, match="log_prob_fn"):
        score.tweedie_cumulants(lambda v: v, _x(), 1.0)
    with pytest.raises(TypeError, match="log_prob_fn"):
        score.tweedie_cumulants(None, _x(), 1.0)


# ------------------------------------------------------------------------------------------------
# the variance of sliced score matching
# ------------------------------------------------------------------------------------------------
def _per_probe_terms(net, x, probes):
    """q(v) = v^T J v + 1/2 (v^T s)^2 for each probe (P, D) at one point x (D,): J by torch.func."""
    s = net(x[None])[0].detach()
    jac = torch.func.jacrev(lambda v: net(v[None])[0])(x).detach()          # (D, D)
    return torch.einsum("pi,ij,pj->p", probes, jac, probes) + 0.5 * (probes @ s) ** 2


@pytest.mark.parametrize("d", [2, 3])
def test_sliced_variance_exact_by_enumeration_and_gauss_hermite(d):
    """Rademacher: all 2^D sign vectors; Gaussian: 3-point Gauss-Hermite per axis (exact for degree 4)."""
    net = _mlp(7, d)
    x = torch.randn(4, d, generator=_gen(61), dtype=F64)
    var_r = score.sliced_score_matching_variance(net, x, probe="rademacher")
    var_g = score.sliced_score_matching_variance(net, x, probe="gaussian")
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=d)), dtype=F64)
    nodes, weights = np.polynomial.hermite_e.hermegauss(3)                      # weight e^{-z^2/2}
    grid = torch.tensor(list(itertools.product(nodes, repeat=d)), dtype=F64)
    w = torch.tensor([np.prod(c) for c in itertools.product(weights / math.sqrt(2 * math.pi), repeat=d)],
                     dtype=F64)
    for n in range(4):
        q = _per_probe_terms(net, x[n], signs)
        assert abs(float(var_r[n]) - float(q.var(unbiased=False))) < 1e-10
        q = _per_probe_terms(net, x[n], grid)
        mean = (w * q).sum()
        assert abs(float(var_g[n]) - float((w * (q - mean) ** 2).sum())) < 1e-10
        # the quadrature's mean is the implicit loss, as a check on the quadrature itself
        assert abs(float(mean) - float(score.score_matching_loss(net, x[n:n + 1]))) < 1e-10
        # variance reduction: 1/2 ||s||^2 in place of 1/2 (v^T s)^2, a constant in v
        q_vr = _per_probe_terms(net, x[n], signs) - 0.5 * (signs @ net(x[n:n + 1])[0].detach()) ** 2
        var_vr = score.sliced_score_matching_variance(net, x[n:n + 1], probe="rademacher", variance_reduction=True)
        assert abs(float(var_vr[0]) - float(q_vr.var(unbiased=False))) < 1e-10
    # M projections divide the variance by M
    torch.testing.assert_close(score.sliced_score_matching_variance(net, x, num_projections=8), var_g / 8,
                               rtol=1e-14, atol=0)


@pytest.mark.parametrize("probe", ["gaussian", "rademacher"])
def test_sliced_variance_matches_monte_carlo_for_each_m(probe):
    """The spread of sliced_score_matching_loss over draws is var_1 / M; its mean is the implicit loss."""
    net = _mlp(8)
    x = torch.randn(3, 2, generator=_gen(62), dtype=F64)
    exact = score.score_matching_loss(net, x, reduction="none").detach()
    reps = 4000
    for m in (1, 4, 16):
        est = score.sliced_score_matching_loss(net, x.repeat(reps, 1), num_projections=m, generator=_gen(63 + m),
                                               probe=probe, reduction="none").detach().reshape(reps, 3)
        want = score.sliced_score_matching_variance(net, x, num_projections=m, probe=probe)
        c = est - est.mean(0)
        s2 = (c ** 2).mean(0)
        se_s2 = ((c ** 4).mean(0) - s2 ** 2).clamp_min(0).sqrt() / math.sqrt(reps)   # delta method
        assert ((s2 - want).abs() <= Z * se_s2).all(), (m, s2, want, se_s2)
        assert ((est.mean(0) - exact).abs() <= Z * (want / reps).sqrt()).all()


def test_sliced_variance_bad_input():
    with pytest.raises(ValueError, match="num_projections"):
        score.sliced_score_matching_variance(lambda v: v, _x(), num_projections=0)
    with pytest.raises(ValueError, match="probe"):
        score.sliced_score_matching_variance(lambda v: v, _x(), probe="sphere")
    with pytest.raises(ValueError, match="score_fn"):
        score.sliced_score_matching_variance(lambda v: v[:, :1], _x())


# ------------------------------------------------------------------------------------------------
# SURE
# ------------------------------------------------------------------------------------------------
def test_sure_linear_shrinkage_against_closed_form(device):
    """REFERENCES.md A9: f(y) = 0.7 y, n = 1000, sigma = 0.5; E SURE = E||f(y) - x||^2
    = 0.09 ||x||^2 + 0.49 n sigma^2, checked over 2000 noise draws with a 5-SE interval."""
    n, sigma, draws = 1000, 0.5, 2000
    x = torch.randn(1, n, generator=_gen(39), dtype=F64)
    closed = 0.09 * (x ** 2).sum().item() + 0.49 * n * sigma ** 2
    y = (x + sigma * torch.randn(draws, n, generator=_gen(40), dtype=F64)).to(device)
    f = lambda v: 0.7 * v  # noqa: E731
    s = score.sure(f, y, sigma, num_probes=1, generator=_gen(49)).cpu()   # exact for f = 0.7 y
    true_se = ((0.7 * y.cpu() - x) ** 2).sum(1)
    assert s.shape == (draws,)
    _assert_mc(s, closed, "SURE vs closed-form MSE")
    _assert_mc(true_se, closed, "true squared error vs closed form")
    _assert_mc(s - true_se, 0.0, "SURE - true squared error")
    # the exact divergence is 0.7 n
    torch.testing.assert_close(score.divergence(f, y[:2]).cpu(), torch.full((2,), 700.0, dtype=F64))


@pytest.mark.parametrize("num_probes", [None, 1])
def test_sure_is_unbiased_for_nonlinear_denoisers(num_probes):
    mix = _mix2d()
    sigma = 0.5
    x = mix.sample(40000, generator=_gen(41))
    y = x + sigma * torch.randn(x.shape, generator=_gen(42), dtype=F64)
    denoisers = {"posterior mean": lambda v: mix.posterior_mean(v, sigma),
                 "soft threshold": lambda v: torch.sign(v) * torch.relu(v.abs() - 0.3),
                 "network": _mlp(4)}
    for name, f in denoisers.items():
        s = score.sure(f, y, sigma, num_probes=num_probes, generator=_gen(43)).detach()
        true_se = ((f(y) - x) ** 2).sum(1).detach()
        _assert_mc(s - true_se, 0.0, f"SURE - true squared error, {name}")


def test_sure_is_minimized_by_the_tweedie_denoiser():
    """Among f_t = y + t sigma^2 grad log p_sigma, the mean SURE is smallest at t = 1."""
    mix = _mix2d()
    sigma = 0.7
    noisy = mix.convolve(sigma)
    y = noisy.sample(20000, generator=_gen(44))
    ts = [0.0, 0.5, 0.9, 1.0, 1.1, 1.5]
    vals = [score.sure(lambda v, t=t: v + t * sigma ** 2 * noisy.score(v), y, sigma).mean().item()
            for t in ts]
    assert int(np.argmin(vals)) == ts.index(1.0), vals


def test_sure_sigma_tensor_matches_formula():
    y = torch.randn(4, 3, generator=_gen(45), dtype=F64)
    sig = torch.tensor([0.1, 0.5, 1.0, 2.0], dtype=F64)
    got = score.sure(torch.tanh, y, sig)
    want = ((torch.tanh(y) - y) ** 2).sum(1) - 3 * sig ** 2 + 2 * sig ** 2 * (1 - torch.tanh(y) ** 2).sum(1)
    torch.testing.assert_close(got, want)


# ------------------------------------------------------------------------------------------------
# the score network
# ------------------------------------------------------------------------------------------------
def test_noise_conditional_net_shapes_and_training_reduces_error():
    from course_lib.train import fit

    mix = GaussianMixture(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), torch.tensor([0.3, 0.3]))
    data = mix.sample(4000, generator=_gen(46))
    net = score.NoiseConditionalScoreNet(2, hidden=64, num_layers=2)
    assert net(data[:5], 0.5).shape == (5, 2)
    assert net(data[:5], torch.full((5,), 0.5)).shape == (5, 2)
    sigmas = score.geometric_sigmas(2.0, 0.1, 6, dtype=torch.float32)
    before = score.score_error(lambda v: net(v, 0.5), mix, 0.5, generator=_gen(47))
    torch.manual_seed(0)
    fit(net, lambda m, b, generator=None: score.annealed_denoising_score_matching_loss(m, b, sigmas, generator),
        data, num_steps=600, batch_size=256, lr=3e-3, device="cpu", generator=_gen(48), progress=False)
    after = score.score_error(lambda v: net(v, 0.5), mix, 0.5, generator=_gen(47))
    assert after < 0.1 < before, (before, after)
    assert score.score_error(mix.convolve(0.5).score, mix, 0.5, generator=_gen(47)) == 0.0


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------
def _x():
    return torch.randn(4, 2, dtype=F64)


@pytest.mark.parametrize("call,match", [
    (lambda: score.denoising_score_matching_loss(lambda v: v, _x(), 0.0), "sigma"),
    (lambda: score.denoising_score_matching_loss(lambda v: v, _x(), -1.0), "sigma"),
    (lambda: score.denoising_score_matching_loss(lambda v: v, _x(), torch.tensor([1.0, 0.0, 1.0, 1.0])), "sigma"),
    (lambda: score.tweedie_denoise(_x(), _x(), 0.0), "sigma"),
    (lambda: score.tweedie_covariance(torch.zeros(3, 2, 2), -0.5), "sigma"),
    (lambda: score.sure(lambda v: v, _x(), 0.0), "sigma"),
    (lambda: score.langevin_dynamics(lambda v: v, _x(), 0.0, 10), "step_size"),
    (lambda: score.langevin_dynamics(lambda v: v, _x(), -0.1, 10), "step_size"),
    (lambda: score.langevin_dynamics(lambda v: v, _x(), 0.1, -1), "num_steps"),
    (lambda: score.annealed_langevin_dynamics(lambda v, s: v, _x(), [1.0, 1.0], 0.1, 5), "sigmas"),
    (lambda: score.annealed_langevin_dynamics(lambda v, s: v, _x(), [0.5, 1.0], 0.1, 5), "sigmas"),
    (lambda: score.annealed_langevin_dynamics(lambda v, s: v, _x(), [1.0, 0.0], 0.1, 5), "sigmas"),
    (lambda: score.annealed_langevin_dynamics(lambda v, s: v, _x(), [], 0.1, 5), "sigmas"),
    (lambda: score.annealed_langevin_dynamics(lambda v, s: v, _x(), [1.0, 0.5], 0.0, 5), "step_size"),
    (lambda: score.annealed_langevin_dynamics(lambda v, s: v, _x(), [1.0, 0.5], 0.1, 0), "steps_per_level"),
    (lambda: score.annealed_denoising_score_matching_loss(lambda v, s: v, _x(), [0.5, 1.0]), "sigmas"),
    (lambda: score.langevin_dynamics(lambda v: v[:, :1], _x(), 0.1, 1), "score_fn"),
    (lambda: score.annealed_langevin_dynamics(lambda v, s: v[:2], _x(), [1.0], 0.1, 1), "score_fn"),
    (lambda: score.score_matching_loss(lambda v: v.sum(1), _x()), "score_fn"),
    (lambda: score.sliced_score_matching_loss(lambda v: v[:, :1], _x()), "score_fn"),
    (lambda: score.denoising_score_matching_loss(lambda v: v.T, _x(), 1.0), "score_fn"),
    (lambda: score.divergence(lambda v: v[:, :1], _x()), "f"),
    (lambda: score.sure(lambda v: v[:, :1], _x(), 1.0), "denoiser"),
    (lambda: score.divergence(lambda v: v, _x(), num_probes=0), "num_probes"),
    (lambda: score.sure(lambda v: v, _x(), 1.0, num_probes=0), "num_probes"),
    (lambda: score.sliced_score_matching_loss(lambda v: v, _x(), num_projections=0), "num_projections"),
    (lambda: score.divergence(lambda v: v, _x(), num_probes=2, probe="uniform"), "probe"),
    (lambda: score.score_matching_loss(lambda v: v, _x(), reduction="sum"), "reduction"),
    (lambda: score.tweedie_denoise(_x(), torch.zeros(4, 3), 1.0), "score"),
    (lambda: score.tweedie_covariance(torch.zeros(3, 2, 3), 1.0), "hessian"),
    (lambda: score.langevin_dynamics(lambda v: v, torch.zeros(4), 0.1, 1), "x"),
    (lambda: score.geometric_sigmas(0.1, 1.0, 5), "sigma_max"),
])
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_callable_and_non_tensor_output_raise_type_error():
    with pytest.raises(TypeError, match="score_fn"):
        score.langevin_dynamics(None, _x(), 0.1, 1)
    with pytest.raises(TypeError, match="score_fn"):
        score.langevin_dynamics(lambda v: v.numpy(), _x(), 0.1, 1)
