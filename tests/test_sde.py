"""course_lib.sde against independent references.

References used: simulating the forward SDE with many small Euler-Maruyama steps (kernel mean and
variance within standard errors); the published VP values of REFERENCES.md A9; the discrete DDPM
schedule of ``course_lib.diffusion`` (an independent implementation); autograd of the noised
mixture's log-density built by ``GaussianMixture.scale``/``convolve``; Kolmogorov-Smirnov tests
against the exact mixture CDF (``scipy.stats.norm``); binomial standard errors for mode weights;
the exact log-density of the noised mixture; DDIM (``course_lib.diffusion.ddim_sample``) as a
first-order solver of the same ODE; self-normalized importance sampling of E[x1 - x0 | x_t];
``scipy.integrate.quad`` for the flow-matching minimum of a Gaussian target; torch.distributions.

Monte Carlo comparisons allow Z standard errors (false alarm < 1e-5 per check); every random draw
uses a fixed seed, so a run is reproducible.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate
from scipy.stats import kstest, norm

from course_lib import sde as S
from course_lib.diffusion import NoiseSchedule, ddim_sample, optimal_eps_model
from course_lib.toy import GaussianMixture

F64 = torch.float64
Z = 4.5           # standard errors allowed in Monte Carlo comparisons
KS_CRIT = 1.95    # Kolmogorov-Smirnov: sqrt(n) D_n above this has probability < 0.001


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: extra intra-op threads only add overhead on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _gen(seed=0, device="cpu"):
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def _mix1d(dtype=F64, device="cpu"):
    """Three well-separated modes with unequal weights."""
    return GaussianMixture(torch.tensor([[-3.0], [0.0], [3.0]], dtype=dtype, device=device),
                           torch.tensor([0.3, 0.4, 0.3], dtype=dtype, device=device),
                           torch.tensor([0.2, 0.5, 0.3], dtype=dtype, device=device))


def _mix2d(dtype=F64, device="cpu"):
    return GaussianMixture(torch.tensor([[-2.0, 0.5], [1.5, 1.0], [0.5, -2.0]], dtype=dtype, device=device),
                           torch.tensor([[0.3, 0.4], [0.5, 0.3], [0.2, 0.25]], dtype=dtype, device=device),
                           torch.tensor([0.3, 0.5, 0.2], dtype=dtype, device=device))


def _mixture_cdf(mix: GaussianMixture):
    """CDF of a 1-D mixture, by scipy.stats.norm (independent of course_lib)."""
    mu = mix.means[:, 0].cpu().numpy()
    sd = mix.stds[:, 0].cpu().numpy()
    w = mix.weights.cpu().numpy()
    return lambda x: (w * norm.cdf((np.asarray(x)[:, None] - mu) / sd)).sum(1)


def _assert_ks(samples: torch.Tensor, mix: GaussianMixture, what: str):
    x = samples.detach().cpu().double().numpy().ravel()
    stat = kstest(x, _mixture_cdf(mix)).statistic
    assert math.sqrt(x.size) * stat < KS_CRIT, f"{what}: KS sqrt(n) D = {math.sqrt(x.size) * stat:.3f}"


def _assert_mode_weights(x: torch.Tensor, mix: GaussianMixture, what: str):
    """Nearest-mean counts against the weights, within Z binomial standard errors."""
    d2 = ((x.cpu()[:, None, :] - mix.means.cpu()[None]) ** 2).sum(-1)
    counts = torch.bincount(d2.argmin(1), minlength=mix.num_components).double()
    n = x.shape[0]
    w = mix.weights.cpu().double()
    se = (w * (1 - w) / n).sqrt()
    frac = counts / n
    assert bool(((frac - w).abs() <= Z * se).all()), f"{what}: mode fractions {frac.tolist()} vs {w.tolist()}"


SDES = [pytest.param(S.VPSDE(), id="VP"), pytest.param(S.VESDE(), id="VE")]


# ------------------------------------------------------------------------------------------------
# the SDEs and their kernels
# ------------------------------------------------------------------------------------------------
def test_vp_kernel_matches_published_values():
    sde = S.VPSDE(0.1, 20.0)
    # REFERENCES.md A9 (computed independently): VPSDE(0.1, 20) at t = 1
    assert float(sde.marginal_mean_coeff(1.0)) == pytest.approx(0.006571586494929619, rel=1e-12)
    assert float(sde.marginal_std(1.0)) == pytest.approx(0.9999784068923386, rel=1e-12)
    assert float(sde.marginal_mean_coeff(0.0)) == 1.0 and float(sde.marginal_std(0.0)) == 0.0
    assert float(sde.beta(0.5)) == pytest.approx(10.05) and float(sde.diffusion(1.0)) == pytest.approx(20 ** 0.5)
    ve = S.VESDE(0.01, 50.0)
    assert float(ve.sigma(1.0)) == pytest.approx(50.0) and float(ve.sigma(0.0)) == pytest.approx(0.01)
    assert float(ve.marginal_std(1.0)) == pytest.approx(math.sqrt(50.0 ** 2 - 0.01 ** 2), rel=1e-12)


@pytest.mark.parametrize("sde", SDES)
def test_kernel_matches_simulated_forward_sde(sde):
    """Mean and variance of x_t given x_0 against 10000 paths of Euler-Maruyama with 2000 steps."""
    n, steps = 10000, 2000
    check_at = {100: 0.05, 200: 0.1, 1000: 0.5, 2000: 1.0}
    x0 = torch.tensor([[1.5, -0.5]], dtype=F64).expand(n, 2)
    x = x0.clone()
    g = _gen(1)
    dt = 1.0 / steps
    grid = torch.arange(steps, dtype=F64) * dt
    a_all = sde.drift(torch.ones(steps, 1, dtype=F64), grid)[:, 0].tolist()   # f(x, t) = a(t) x
    g_all = sde.diffusion(grid).tolist()
    for i in range(steps):
        a, gt = a_all[i], g_all[i]
        x = x + a * x * dt + gt * math.sqrt(dt) * torch.randn(n, 2, generator=g, dtype=F64)
        if i + 1 in check_at:
            t_end = check_at[i + 1]
            mean, std = sde.marginal(x0[:1], t_end)
            var = float(std[0]) ** 2
            emp_mean, emp_var = x.mean(0), x.var(0)
            se_mean = math.sqrt(var / n)
            se_var = var * math.sqrt(2.0 / (n - 1))
            assert torch.allclose(emp_mean, mean[0], rtol=0, atol=Z * se_mean), (t_end, emp_mean, mean)
            assert torch.allclose(emp_var, torch.full_like(emp_var, var), rtol=0, atol=Z * se_var), \
                (t_end, emp_var, var)


@given(st.floats(0.0, 1.0), st.sampled_from(["VP", "VE"]))
def test_kernel_solves_the_moment_equations(t, kind):
    """d log m/dt = a(t) and dV/dt = 2 a(t) V + g(t)^2 (linear SDEs, Sarkka & Solin 2019), by central differences."""
    sde = S.VPSDE() if kind == "VP" else S.VESDE()
    h = 1e-5
    lo, hi = max(t - h, 0.0), min(t + h, 1.0)
    t = (lo + hi) / 2                                                    # central difference at t
    a = float(sde.drift(torch.ones(1, 1, dtype=F64), t))
    g2 = float(sde.diffusion(t)) ** 2
    log_m = lambda u: math.log(float(sde.marginal_mean_coeff(u)))      # noqa: E731
    dlogm = (log_m(hi) - log_m(lo)) / (hi - lo)
    V = lambda u: float(sde.marginal_std(u)) ** 2                        # noqa: E731
    dV = (V(hi) - V(lo)) / (hi - lo)
    assert dlogm == pytest.approx(a, rel=1e-6, abs=1e-8)
    assert dV == pytest.approx(2 * a * V(t) + g2, rel=1e-4)


def test_vp_marginal_is_the_limit_of_ddpm():
    """DDPM's linear schedule beta_i = beta(t)/T: its alphas_cumprod approaches m(t)^2, gap O(1/T)."""
    sde = S.VPSDE()
    # T = 1000 is Ho et al.'s schedule exactly (REFERENCES.md A4)
    assert torch.allclose(sde.ddpm_schedule(1000).betas, NoiseSchedule.linear(1000).betas, rtol=1e-14, atol=0)
    gaps = []
    for T in (100, 1000, 10000):
        sched = sde.ddpm_schedule(T)
        t = torch.arange(1, T + 1, dtype=F64) / T                        # 0-based index i <-> t = (i+1)/T
        gap_mean = (sched.sqrt_alphas_cumprod - sde.marginal_mean_coeff(t)).abs().max().item()
        gap_std = (sched.sqrt_one_minus_alphas_cumprod - sde.marginal_std(t)).abs().max().item()
        gaps.append(max(gap_mean, gap_std))
    assert gaps[0] > 8 * gaps[1] > 64 * gaps[2], gaps                    # first order in 1/T
    assert gaps[1] < 2e-3


def test_vp_noise_schedule_samples_the_sde():
    sde = S.VPSDE()
    T = 50
    sched = sde.noise_schedule(T)
    t = torch.arange(1, T + 1, dtype=F64) / T
    # the product of the discrete alphas is the continuous alpha-bar at every grid time
    assert torch.allclose(torch.cumprod(1 - sched.betas, 0), torch.exp(2 * sde.log_mean_coeff(t)), rtol=1e-12)


@given(st.floats(0.0, 1.0), st.floats(0.0, 30.0), st.floats(0.0, 30.0))
def test_time_from_alphas_cumprod_inverts(t, b0, extra):
    sde = S.VPSDE(beta_min=b0 + 1e-3, beta_max=b0 + 1e-3 + extra)
    back = float(sde.time_from_alphas_cumprod(sde.alphas_cumprod(t)))
    assert back == pytest.approx(t, abs=1e-9)


@pytest.mark.parametrize("sde", SDES)
def test_perturbed_mixture_has_the_marginal_mixture_law(sde):
    """x_t drawn through the kernel from mixture samples vs the CDF of marginal_mixture (KS)."""
    mix = _mix1d()
    x0 = mix.sample(4000, generator=_gen(2))
    for t in (0.0, 0.05, 0.3, 0.8):
        xt = sde.perturb(x0, t, generator=_gen(3))
        _assert_ks(xt, S.marginal_mixture(mix, sde, t), f"t={t}")


@pytest.mark.parametrize("sde", SDES)
def test_prior_log_prob_and_sample(sde):
    z = sde.prior_sample((4000, 3), generator=_gen(4), dtype=F64)
    std = sde.prior_std
    assert z.std().item() == pytest.approx(std, rel=Z * math.sqrt(1 / (2 * z.numel())))
    prior = torch.distributions.Normal(torch.tensor(0.0, dtype=F64), torch.tensor(std, dtype=F64))
    ref = prior.log_prob(z[:10]).sum(1)
    assert torch.allclose(sde.prior_log_prob(z[:10]), ref, rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# exact scores of the noised mixture
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sde", SDES)
def test_mixture_score_is_the_gradient_of_the_noised_log_density(sde):
    """One time per row (0 and 1 included) against autograd of scale(m).convolve(s).log_prob."""
    mix = _mix2d()
    n = 12
    t = torch.linspace(0, 1, n, dtype=F64)[torch.randperm(n, generator=_gen(5))]
    x = 2.5 * torch.randn(n, 2, generator=_gen(6), dtype=F64)
    got = S.mixture_score(mix, sde)(x, t)
    for i in range(n):
        xi = x[i:i + 1].clone().requires_grad_(True)
        S.marginal_mixture(mix, sde, float(t[i])).log_prob(xi).sum().backward()
        assert torch.allclose(got[i], xi.grad[0], rtol=1e-10, atol=1e-12), (float(t[i]), got[i], xi.grad)
    # a shared time (number) equals the same time repeated per row
    assert torch.allclose(S.mixture_score(mix, sde)(x, 0.37), S.mixture_score(mix, sde)(x, torch.full((n,), 0.37)))


# ------------------------------------------------------------------------------------------------
# samplers
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sde", SDES)
def test_reverse_sde_with_exact_score_recovers_the_mixture(sde):
    mix = _mix1d()
    x = S.reverse_sde_sample(sde, S.mixture_score(mix, sde), (3000, 1), 500, generator=_gen(7), dtype=F64)
    assert torch.isfinite(x).all()
    _assert_mode_weights(x, mix, "reverse SDE")
    _assert_ks(x, S.marginal_mixture(mix, sde, 1e-3), "reverse SDE law at eps")


@pytest.mark.parametrize("sde", SDES)
def test_pc_sampler_recovers_the_mixture(sde):
    mix = _mix1d()
    x = S.pc_sample(sde, S.mixture_score(mix, sde), (3000, 1), 200, snr=0.16, generator=_gen(8), dtype=F64)
    _assert_mode_weights(x, mix, "PC sampler")
    _assert_ks(x, S.marginal_mixture(mix, sde, 1e-3), "PC sampler law at eps")


def test_pc_without_corrector_is_euler_maruyama():
    sde, mix = S.VPSDE(), _mix2d()
    score = S.mixture_score(mix, sde)
    a = S.pc_sample(sde, score, (50, 2), 30, corrector_steps=0, generator=_gen(9), dtype=F64)
    b = S.reverse_sde_sample(sde, score, (50, 2), 30, generator=_gen(9), dtype=F64)
    assert torch.equal(a, b)


@pytest.mark.parametrize("sde", SDES)
def test_probability_flow_has_the_marginals_at_several_times(sde):
    """Start from exact draws of p_1; the ODE's states at each t follow p_t (KS)."""
    mix = _mix1d()
    x1 = S.marginal_mixture(mix, sde, 1.0).sample(1500, generator=_gen(10))
    times = [1.0, 0.6, 0.3, 0.1, 1e-3]
    path = S.probability_flow_trajectory(sde, S.mixture_score(mix, sde), x1, times)
    assert path.shape == (5, 1500, 1) and torch.equal(path[0], x1)
    for k, t in enumerate(times[1:], start=1):
        _assert_ks(path[k], S.marginal_mixture(mix, sde, t), f"PF ODE at t={t}")
    # deterministic: the same start gives the same sample
    again = S.probability_flow_sample(sde, S.mixture_score(mix, sde), x1[:20])
    assert torch.allclose(again, path[-1, :20], atol=1e-4)


def test_probability_flow_is_invertible():
    sde, mix = S.VPSDE(), _mix2d()
    score = S.mixture_score(mix, sde)
    x = mix.sample(30, generator=_gen(11))
    z = S.probability_flow_trajectory(sde, score, x, [1e-3, 1.0], rtol=1e-8, atol=1e-8)[-1]
    back = S.probability_flow_trajectory(sde, score, z, [1.0, 1e-3], rtol=1e-8, atol=1e-8)[-1]
    assert (back - x).abs().max().item() < 1e-5


def test_ddim_is_a_first_order_solver_of_the_probability_flow():
    """DDIM (eta = 0) on the schedule sampled from the VP SDE converges to the accurate ODE solution at order 1."""
    sde, mix = S.VPSDE(), _mix2d()
    x1 = sde.prior_sample((100, 2), generator=_gen(12), dtype=F64)
    ref = S.probability_flow_trajectory(sde, S.mixture_score(mix, sde), x1, [1.0, 0.0], rtol=1e-8, atol=1e-8)[-1]
    sched = sde.noise_schedule(1000)
    model = optimal_eps_model(mix, sched)
    ns = [10, 20, 40, 80]
    errs = [(ddim_sample(sched, model, (100, 2), n, noise=x1, dtype=F64) - ref).norm(dim=1).mean().item()
            for n in ns]
    slope = np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert -1.2 < slope < -0.85, (slope, errs)
    assert errs[-1] < 0.05


# ------------------------------------------------------------------------------------------------
# likelihood
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sde", SDES)
def test_ode_log_likelihood_equals_the_exact_log_density(sde):
    mix = _mix2d()
    score = S.mixture_score(mix, sde)
    x = torch.cat([mix.sample(12, generator=_gen(13)), torch.tensor([[0.0, 0.0], [3.0, -3.0]], dtype=F64)])
    eps = 1e-3
    exact = S.marginal_mixture(mix, sde, eps).log_prob(x)            # the slightly noised mixture
    p1 = S.marginal_mixture(mix, sde, 1.0).log_prob
    for tol in (1e-5, 1e-7):
        got = S.ode_log_likelihood(sde, score, x, eps, rtol=tol, atol=tol, prior_log_prob=p1)
        # within ten times the solver's tolerance (absolute + relative to |log p|)
        assert bool(((got - exact).abs() <= 10 * tol * (1 + exact.abs())).all()), (tol, got - exact)
    # with the default prior the only extra error is its mismatch with p_1 at the latent
    det = S.ode_log_likelihood(sde, score, x, eps, return_details=True)
    mismatch = sde.prior_log_prob(det.latent) - p1(det.latent)
    assert torch.allclose(det.log_prob, exact + mismatch, rtol=1e-4, atol=1e-4)
    assert torch.allclose(det.log_prob, det.prior_log_prob + det.delta_log_prob)
    assert det.nfev > 10


def test_ode_log_likelihood_hutchinson_is_unbiased():
    sde, mix = S.VPSDE(), _mix2d()
    score = S.mixture_score(mix, sde)
    pts = mix.sample(4, generator=_gen(14))
    reps = 24
    x = pts.repeat(reps, 1)                                             # independent probes per row
    est = S.ode_log_likelihood(sde, score, x, num_probes=1, generator=_gen(15), rtol=1e-4, atol=1e-4)
    exact = S.ode_log_likelihood(sde, score, pts, rtol=1e-4, atol=1e-4)
    est = est.reshape(reps, 4)
    se = est.std(0) / math.sqrt(reps)
    assert bool((se > 1e-3).all())                                      # it is an estimate, not the trace
    assert bool(((est.mean(0) - exact).abs() <= Z * se).all()), (est.mean(0), exact, se)


# ------------------------------------------------------------------------------------------------
# flow matching
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [0.2, 0.5, 0.8])
def test_optimal_velocity_matches_importance_sampling(t):
    """E[x1 - x0 | x_t = x] by self-normalized importance sampling over x1 ~ p (x0 = (x - t x1)/(1 - t))."""
    mix = _mix2d()
    x = S.flow_marginal(mix, t).sample(4, generator=_gen(16))
    x1 = mix.sample(200_000, generator=_gen(17))
    got = S.optimal_velocity(mix)(x, t)
    for i in range(x.shape[0]):
        logw = -((x[i] - t * x1) ** 2).sum(1) / (2 * (1 - t) ** 2)     # p(x_t = x | x1)
        w = torch.softmax(logw, 0)
        f = x1 - (x[i] - t * x1) / (1 - t)                               # x1 - x0
        est = (w[:, None] * f).sum(0)
        se = ((w[:, None] ** 2) * (f - est) ** 2).sum(0).sqrt()
        assert bool(((got[i] - est).abs() <= Z * se + 1e-9).all()), (t, got[i], est, se)


def test_optimal_velocity_at_the_ends():
    mix = _mix2d()
    x = torch.randn(5, 2, generator=_gen(18), dtype=F64)
    mean = (mix.weights[:, None] * mix.means).sum(0)
    assert torch.allclose(S.optimal_velocity(mix)(x, 0.0), mean - x, atol=1e-12)   # E[x1] - x0
    assert torch.allclose(S.optimal_velocity(mix)(x, 1.0), x, atol=1e-12)          # x1 - E[x0]


@given(st.floats(0.01, 1.0))
def test_optimal_velocity_is_tweedie_on_the_path(t):
    """For x_t = (1-t) x0 + t x1: E[x0 | x_t] = -(1-t) grad log p_t, so v = (x + (1-t) grad log p_t(x)) / t,
    with the score of flow_marginal from GaussianMixture.score (an independent closed form)."""
    mix = _mix2d()
    x = 3 * torch.randn(6, 2, generator=_gen(30), dtype=F64)
    score = S.flow_marginal(mix, t).score(x)
    assert torch.allclose(S.optimal_velocity(mix)(x, t), (x + (1 - t) * score) / t, rtol=1e-9, atol=1e-9)


def test_flow_matching_loss_minimum_for_a_gaussian():
    """At the optimal velocity the loss is E_t tr Cov[x1 - x0 | x_t]: quadrature for one Gaussian."""
    s = np.array([0.5, 1.5])
    mix = GaussianMixture(torch.tensor([[1.0, -2.0]], dtype=F64), torch.tensor([[0.5, 1.5]], dtype=F64))

    def cond_var(t, sd):          # Var[u | x_t] = Var u - Cov(u, x_t)^2 / Var x_t, per dimension
        return sd ** 2 + 1 - (t * sd ** 2 - (1 - t)) ** 2 / ((1 - t) ** 2 + t ** 2 * sd ** 2)

    expected = sum(integrate.quad(cond_var, 0, 1, args=(sd,))[0] for sd in s)
    x1 = mix.sample(100_000, generator=_gen(19))
    per = S.flow_matching_loss(S.optimal_velocity(mix), x1, generator=_gen(20), reduction="none")
    se = per.std().item() / math.sqrt(per.numel())
    assert abs(per.mean().item() - expected) <= Z * se, (per.mean().item(), expected, se)
    assert S.flow_matching_loss(S.optimal_velocity(mix), x1[:10], generator=_gen(20)).dim() == 0


def test_flow_matching_loss_is_stationary_at_the_optimal_velocity():
    """L(v* + d) - L(v*) = E|d|^2 + 2 E[(v* - u) . d]; the cross term vanishes for any d(x, t)."""
    mix = _mix2d()
    v_star = S.optimal_velocity(mix)

    bumps = [lambda x, t: 0.3 * (1 - t)[:, None] * x,                     # linear in x
             lambda x, t: 0.3 * torch.stack([torch.sin(2 * x[:, 1]) + t, torch.cos(x[:, 0]) * t], dim=1)]
    x1 = mix.sample(100_000, generator=_gen(21))
    base = S.flow_matching_loss(v_star, x1, generator=_gen(22), reduction="none")
    # the same t and x0 as inside the loss (same generator, same order of draws)
    g = _gen(22)
    t = torch.rand(x1.shape[0], generator=g, dtype=F64)
    x0 = torch.randn(x1.shape, generator=g, dtype=F64)
    xt = (1 - t)[:, None] * x0 + t[:, None] * x1
    for bump in bumps:
        moved = S.flow_matching_loss(lambda x, tt: v_star(x, tt) + bump(x, tt), x1, generator=_gen(22),
                                     reduction="none")
        cross = moved - base - (bump(xt, t) ** 2).sum(1)                # 2 (v* - u) . d
        se = cross.std().item() / math.sqrt(cross.numel())
        assert abs(cross.mean().item()) <= Z * se, (cross.mean().item(), se)


def test_flow_matching_sample_with_exact_velocity_follows_the_path():
    mix = _mix1d()
    x0 = torch.randn(1500, 1, generator=_gen(23), dtype=F64)
    times = [0.0, 0.5, 0.9, 1.0]
    path = S.flow_matching_sample(S.optimal_velocity(mix), x0, times=times)
    for k, t in enumerate(times[1:], start=1):
        _assert_ks(path[k], S.flow_marginal(mix, t), f"flow at t={t}")
    _assert_mode_weights(path[-1], mix, "flow matching ODE")
    assert torch.allclose(S.flow_matching_sample(S.optimal_velocity(mix), x0[:10]), path[-1, :10], atol=1e-4)
    euler = S.flow_matching_sample(S.optimal_velocity(mix), x0, num_steps=200)
    _assert_mode_weights(euler, mix, "flow matching Euler")


# ------------------------------------------------------------------------------------------------
# edges, bad input, devices
# ------------------------------------------------------------------------------------------------
_EDGE_T = st.one_of(st.sampled_from([0.0, 1.0, 1e-300, 1 - 1e-16]), st.floats(0.0, 1.0))

# ------------------------------------------------------------------------------------------------
# trained noise predictors in continuous time
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sde", SDES)
def test_noise_prediction_loss_for_gaussian_data(sde):
    """x0 ~ N(0, I): the zero model has loss D; the optimal eps*(x) = s x / (m^2 + s^2) has loss
    D E_t[m^2 / (m^2 + s^2)], t ~ U(eps, 1) (scipy quad)."""
    eps, d = 1e-2, 2
    x0 = torch.randn(100_000, d, generator=_gen(40), dtype=F64)

    def var_ratio(t):
        m2 = float(sde.marginal_mean_coeff(t)) ** 2
        return m2 / (m2 + float(sde.marginal_std(t)) ** 2)

    def optimal(x, t):      # E[eps | x_t] = Cov(eps, x_t) / Var(x_t) x_t = s / (m^2 + s^2) x_t
        m, s = sde.marginal_mean_coeff(t), sde.marginal_std(t)
        return (s / (m ** 2 + s ** 2))[:, None] * x

    expected = d * integrate.quad(var_ratio, eps, 1, limit=200)[0] / (1 - eps)
    per = S.noise_prediction_loss(sde, optimal, x0, generator=_gen(41), eps=eps, reduction="none")
    se = per.std().item() / math.sqrt(per.numel())
    assert abs(per.mean().item() - expected) <= Z * se, (per.mean().item(), expected, se)
    zero = S.noise_prediction_loss(sde, lambda x, t: torch.zeros_like(x), x0, generator=_gen(42), eps=eps,
                                   reduction="none")
    assert abs(zero.mean().item() - d) <= Z * zero.std().item() / math.sqrt(zero.numel())
    assert S.noise_prediction_loss(sde, optimal, x0[:10], generator=_gen(41), eps=eps).dim() == 0


def test_noise_prediction_loss_draws_times_in_range():
    seen = []

    def spy(x, t):
        seen.append(t)
        return torch.zeros_like(x)

    S.noise_prediction_loss(S.VPSDE(), spy, torch.zeros(5000, 2), generator=_gen(43), eps=0.3)
    t = seen[0]
    assert t.dtype == torch.float32 and t.shape == (5000,)
    assert t.min() >= 0.3 and t.max() <= 1.0 and abs(t.mean().item() - 0.65) < 0.02


@pytest.mark.parametrize("sde", SDES)
def test_score_from_the_optimal_eps_is_the_exact_score(sde):
    """-E[eps | x_t] / s(t), with E[eps | x_t] from the posterior mean of the noised data
    (GaussianMixture.posterior_mean, independent of mixture_score), is the exact score."""
    mix = _mix2d()

    def eps_star(x, t):     # x = m x0 + s eps  =>  E[eps | x] = (x - m E[x0 | x]) / s
        tt = float(t[0])
        m, s = float(sde.marginal_mean_coeff(tt)), float(sde.marginal_std(tt))
        return (x - mix.scale(m).posterior_mean(x, s)) / s

    x = 2 * torch.randn(200, 2, generator=_gen(44), dtype=F64)
    for t in (0.01, 0.3, 0.9):
        got = S.score_from_eps(sde, eps_star)(x, t)
        assert torch.allclose(got, S.mixture_score(mix, sde)(x, t), rtol=1e-8, atol=1e-8), t


def test_discrete_eps_model_is_ddpm_optimal_eps():
    """The continuous optimal eps at the step's time equals diffusion.optimal_eps_model on the
    schedule, for the SDE's own chain and for a DDPM linear schedule inside the SDE's range."""
    mix, sde = _mix2d(), S.VPSDE()
    def eps_star(x, t):                                       # -s(t) * exact score, per row
        return -sde.marginal_std(t)[:, None] * S.mixture_score(mix, sde)(x, t)

    x = 2 * torch.randn(64, 2, generator=_gen(45), dtype=F64)
    for sched in (sde.noise_schedule(50), NoiseSchedule.linear(100, 1e-4, 0.02)):
        model = S.discrete_eps_model(sde, eps_star, sched)
        reference = optimal_eps_model(mix, sched)
        T = sched.num_steps
        for i in (0, T // 3, T - 1):
            t = torch.full((64,), i, dtype=torch.long)
            assert torch.allclose(model(x, t), reference(x, t), rtol=1e-7, atol=1e-9), (T, i)
    assert torch.allclose(S.discrete_eps_model(sde, eps_star, sde.noise_schedule(50)).times,
                          torch.arange(1, 51, dtype=F64) / 50, atol=1e-12)



@given(_EDGE_T, st.sampled_from(["VP", "VE"]), st.sampled_from([F64, torch.float32]),
       st.floats(-1e3, 1e3))
def test_no_nan_at_the_edges(t, kind, dtype, far):
    sde = S.VPSDE() if kind == "VP" else S.VESDE()
    mix = _mix2d(dtype)
    x = torch.tensor([[0.1, -0.2], [far, -far], [-2.0, 0.5]], dtype=dtype)
    tv = torch.full((3,), t, dtype=dtype)
    outs = [sde.drift(x, t), sde.diffusion(tv), *sde.marginal(x, tv), S.mixture_score(mix, sde)(x, tv),
            S.optimal_velocity(mix)(x, t), sde.reverse_drift(x, t, x), sde.probability_flow_drift(x, t, x)]
    for out in outs:
        assert torch.isfinite(out).all(), (t, kind, out)


def test_samplers_are_finite_down_to_t_zero():
    mix = _mix2d(torch.float32)
    for sde in (S.VPSDE(), S.VESDE()):
        score = S.mixture_score(mix, sde)
        x = S.reverse_sde_sample(sde, score, (64, 2), 50, generator=_gen(24), eps=0.0)
        assert x.dtype == torch.float32 and torch.isfinite(x).all()
        x1 = sde.prior_sample((8, 2), generator=_gen(25))
        assert torch.isfinite(S.probability_flow_sample(sde, score, x1, eps=0.0, rtol=1e-3, atol=1e-3)).all()
        assert torch.isfinite(S.ode_log_likelihood(sde, score, x1 / sde.prior_std, eps=0.0, rtol=1e-3,
                                                   atol=1e-3)).all()
    assert torch.isfinite(S.flow_matching_sample(S.optimal_velocity(mix), torch.randn(8, 2), num_steps=5)).all()


def _mix():
    return _mix2d()


def _zeros42():
    return torch.zeros(4, 2)


_BAD = [
    (lambda: S.VPSDE(beta_min=-0.1), ValueError, "beta_min"),
    (lambda: S.VPSDE(beta_min=1.0, beta_max=0.5), ValueError, "beta_max"),
    (lambda: S.VPSDE(beta_max=float("inf")), ValueError, "beta_min, beta_max"),
    (lambda: S.VESDE(sigma_min=0.0), ValueError, "sigma_min"),
    (lambda: S.VESDE(sigma_min=1.0, sigma_max=0.5), ValueError, "sigma_max"),
    (lambda: S.VESDE(sigma_min="a"), TypeError, "sigma_min"),
    (lambda: S.VPSDE().drift(torch.zeros(3, 2), 1.5), ValueError, r"t: expected times in \[0, 1\], got 1.5"),
    (lambda: S.VPSDE().drift(torch.zeros(3, 2), -0.1), ValueError, "t: expected times"),
    (lambda: S.VPSDE().drift(torch.zeros(3, 2), float("nan")), ValueError, "t: expected times"),
    (lambda: S.VPSDE().drift(torch.zeros(3, 2), torch.zeros(4)), ValueError, r"t: .*\(3,\)"),
    (lambda: S.VPSDE().drift(torch.zeros(3, 2), torch.zeros(3, 1)), ValueError, "t: "),
    (lambda: S.VPSDE().drift(torch.zeros(3, 2), "0.5x"), TypeError, "t: "),
    (lambda: S.VPSDE().drift(torch.zeros(3), 0.5), ValueError, "x: "),
    (lambda: S.VPSDE().drift(torch.zeros(3, 2, dtype=torch.long), 0.5), TypeError, "x: "),
    (lambda: S.VPSDE().diffusion(2.0), ValueError, "t: "),
    (lambda: S.VPSDE().marginal([1.0, 2.0], 0.5), TypeError, "x0"),
    (lambda: S.VPSDE().reverse_drift(torch.zeros(3, 2), 0.5, torch.zeros(3, 1)), ValueError, "score"),
    (lambda: S.VPSDE().time_from_alphas_cumprod(1e-9), ValueError, "alphas_cumprod"),
    (lambda: S.VPSDE().ddpm_schedule(10), ValueError, "num_steps"),
    (lambda: S.mixture_score("mix", S.VPSDE()), TypeError, "mixture"),
    (lambda: S.mixture_score(_mix(), "vp"), TypeError, "sde"),
    (lambda: S.mixture_score(_mix(), S.VPSDE())(torch.zeros(3, 3, dtype=F64), 0.5), ValueError, r"x: .*\(N, 2\)"),
    (lambda: S.marginal_mixture(_mix(), S.VPSDE(), torch.zeros(2)), ValueError, "t: "),
    (lambda: S.reverse_sde_sample(S.VPSDE(), lambda x, t: x[:, :1], (4, 2), 3), ValueError, "score_fn"),
    (lambda: S.reverse_sde_sample(S.VPSDE(), lambda x, t: 0.0, (4, 2), 3), TypeError, "score_fn"),
    (lambda: S.reverse_sde_sample(S.VPSDE(), "score", (4, 2), 3), TypeError, "score_fn"),
    (lambda: S.reverse_sde_sample(S.VPSDE(), lambda x, t: x, (4, 2), 0), ValueError, "num_steps"),
    (lambda: S.reverse_sde_sample(S.VPSDE(), lambda x, t: x, (4, 2), 3, eps=1.0), ValueError, "eps"),
    (lambda: S.reverse_sde_sample(S.VPSDE(), lambda x, t: x, (4,), 3), ValueError, "shape"),
    (lambda: S.reverse_sde_sample(S.VPSDE(), lambda x, t: x, (4, 2), 3, x1=torch.zeros(5, 2)), ValueError, "x1"),
    (lambda: S.pc_sample(S.VPSDE(), lambda x, t: x, (4, 2), 3, snr=0.0), ValueError, "snr"),
    (lambda: S.pc_sample(S.VPSDE(), lambda x, t: x, (4, 2), 3, corrector_steps=-1), ValueError, "corrector_steps"),
    (lambda: S.probability_flow_trajectory(S.VPSDE(), lambda x, t: x, _zeros42(), [1.0, 0.5, 0.7]),
     ValueError, "times: expected a strictly"),
    (lambda: S.probability_flow_trajectory(S.VPSDE(), lambda x, t: x, _zeros42(), [1.0, 1.0]),
     ValueError, "times: expected a strictly"),
    (lambda: S.probability_flow_trajectory(S.VPSDE(), lambda x, t: x, _zeros42(), [1.2, 0.5]),
     ValueError, r"times: expected times in \[0, 1\]"),
    (lambda: S.probability_flow_trajectory(S.VPSDE(), lambda x, t: x, _zeros42(), [1.0]),
     ValueError, "times"),
    (lambda: S.probability_flow_sample(S.VPSDE(), lambda x, t: x, _zeros42(), rtol=0.0), ValueError, "rtol"),
    (lambda: S.probability_flow_sample(S.VPSDE(), lambda x, t: x, _zeros42(), method="Euler"),
     ValueError, "method"),
    (lambda: S.probability_flow_sample(S.VPSDE(), lambda x, t: x[:, :1], _zeros42()), ValueError, "score_fn"),
    (lambda: S.ode_log_likelihood(S.VPSDE(), lambda x, t: x, _zeros42(), num_probes=0), ValueError, "num_probes"),
    (lambda: S.ode_log_likelihood(S.VPSDE(), lambda x, t: x, _zeros42(), eps=-0.1), ValueError, "eps"),
    (lambda: S.ode_log_likelihood(S.VPSDE(), lambda x, t: x, _zeros42(), probe="x", num_probes=1),
     ValueError, "probe"),
    (lambda: S.ode_log_likelihood(S.VPSDE(), lambda x, t: x, _zeros42(), prior_log_prob=lambda z: z),
     ValueError, "prior_log_prob"),
    (lambda: S.flow_matching_loss(lambda x, t: x[:, :1], _zeros42()), ValueError, "velocity_fn"),
    (lambda: S.flow_matching_loss(lambda x, t: x, _zeros42(), reduction="sum"), ValueError, "reduction"),
    (lambda: S.flow_matching_sample(lambda x, t: x, _zeros42(), num_steps=0), ValueError, "num_steps"),
    (lambda: S.flow_matching_sample(lambda x, t: x, _zeros42(), num_steps=3, times=[0, 1]), ValueError, "times"),
    (lambda: S.flow_matching_sample(lambda x, t: x, _zeros42(), times=[0.5, 0.2, 0.9]), ValueError, "times"),
    (lambda: S.optimal_velocity(_mix())(torch.zeros(3, 2, dtype=F64), torch.full((3,), 1.01)), ValueError, "t: "),
    (lambda: S.flow_marginal(_mix(), 2.0), ValueError, "t: "),
    (lambda: S.noise_prediction_loss(S.VPSDE(), lambda x, t: x[:, :1], _zeros42()), ValueError, "eps_fn"),
    (lambda: S.noise_prediction_loss(S.VPSDE(), lambda x, t: x, _zeros42(), eps=1.0), ValueError, "eps"),
    (lambda: S.noise_prediction_loss(S.VPSDE(), lambda x, t: x, _zeros42(), reduction="sum"), ValueError,
     "reduction"),
    (lambda: S.score_from_eps(S.VPSDE(), lambda x, t: x)(_zeros42(), 0.0), ValueError, "t: expected times > 0"),
    (lambda: S.score_from_eps(S.VPSDE(), "eps"), TypeError, "eps_fn"),
    (lambda: S.discrete_eps_model(S.VESDE(), lambda x, t: x, S.VPSDE().noise_schedule(10)), TypeError, "sde"),
    (lambda: S.discrete_eps_model(S.VPSDE(), lambda x, t: x, "linear"), TypeError, "schedule"),
    (lambda: S.discrete_eps_model(S.VPSDE(), lambda x, t: x, S.VPSDE().ddpm_schedule(1000)), ValueError,
     "schedule"),
    (lambda: S.discrete_eps_model(S.VPSDE(), lambda x, t: x, S.VPSDE().noise_schedule(10))(
        _zeros42(), torch.full((4,), 10)), ValueError, "t: expected indices"),
    (lambda: S.discrete_eps_model(S.VPSDE(), lambda x, t: x, S.VPSDE().noise_schedule(10))(
        _zeros42(), torch.zeros(4)), ValueError, "t: expected a long"),
]


@pytest.mark.parametrize("call,exc,match", _BAD)
def test_bad_input_names_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_runs_on_device_and_matches_cpu(device):
    dtype = torch.float32
    mix_cpu, mix_dev = _mix2d(dtype), _mix2d(dtype, device)
    sde = S.VPSDE()
    x = torch.randn(64, 2, generator=_gen(26), dtype=dtype)
    t = torch.rand(64, generator=_gen(27), dtype=dtype)
    for fn_cpu, fn_dev in ((S.mixture_score(mix_cpu, sde), S.mixture_score(mix_dev, sde)),
                           (S.optimal_velocity(mix_cpu), S.optimal_velocity(mix_dev))):
        out = fn_dev(x.to(device), t.to(device))
        assert out.device.type == torch.device(device).type
        assert torch.allclose(out.cpu(), fn_cpu(x, t), rtol=1e-4, atol=1e-5)
    a = S.reverse_sde_sample(sde, S.mixture_score(mix_dev, sde), (64, 2), 20, generator=_gen(28), device=device)
    b = S.reverse_sde_sample(sde, S.mixture_score(mix_cpu, sde), (64, 2), 20, generator=_gen(28))
    assert a.device.type == torch.device(device).type
    assert torch.allclose(a.cpu(), b, rtol=1e-3, atol=1e-3)
    ll = S.ode_log_likelihood(sde, S.mixture_score(mix_dev, sde), x[:8].to(device), rtol=1e-4, atol=1e-4)
    ll_cpu = S.ode_log_likelihood(sde, S.mixture_score(mix_cpu, sde), x[:8], rtol=1e-4, atol=1e-4)
    assert ll.device.type == torch.device(device).type
    assert torch.allclose(ll.cpu(), ll_cpu, atol=1e-3)
    loss = S.flow_matching_loss(S.optimal_velocity(mix_dev), x.to(device), generator=_gen(29))
    assert loss.device.type == torch.device(device).type and torch.isfinite(loss)
    def eps_star(z, tt):
        return -sde.marginal_std(tt)[:, None] * S.mixture_score(mix_dev, sde)(z, tt)

    eps_dev = S.discrete_eps_model(sde, eps_star, sde.noise_schedule(20))
    loss = S.noise_prediction_loss(sde, eps_dev.eps_fn, x.to(device), generator=_gen(30))
    assert loss.device.type == torch.device(device).type and torch.isfinite(loss)
    out = eps_dev(x.to(device), torch.full((64,), 7, device=device))
    assert out.device.type == torch.device(device).type and torch.isfinite(out).all()
    assert torch.isfinite(S.score_from_eps(sde, eps_dev.eps_fn)(x.to(device), t.to(device).clamp(min=1e-3))).all()
