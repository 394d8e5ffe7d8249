"""Tests of course_lib.diffusion against references independent of its implementation.

References used here:
- REFERENCES.md A9: fixed float64 values of the linear and cosine schedules (and the prior term),
- closed forms recomputed in NumPy float64 in this file (cumulative products via exp(cumsum(log)),
  the cosine alpha-bar as f((t+1)/T)/f(0), the forward posterior by the Gaussian product rule),
- simulation of the Markov chain x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) z, step by step,
- torch.distributions (KL of Normals, Normal.log_prob), scipy (entropy by quadrature, logpdf),
- quadrature over x0 of E[eps | x_t] for a 1-D mixture, and course_lib.toy's convolved-mixture score,
- affine recursions in NumPy for Gaussian data, where DDPM and DDIM with the Bayes-optimal model
  are exactly Gaussian / exactly affine.
Monte Carlo tolerances are a stated multiple of the standard error.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, stats

from course_lib import diffusion as D
from course_lib.diffusion import (
    NoiseSchedule,
    ddim_sample,
    ddim_timesteps,
    eps_to_score,
    loss_simple,
    optimal_eps_model,
    p_mean_variance,
    p_sample,
    predict_eps_from_v,
    predict_x0_from_eps,
    predict_x0_from_v,
    q_mean_variance,
    q_posterior_mean_variance,
    q_sample,
    sample,
    score_to_eps,
    velocity,
    vlb_term,
    vlb_terms,
)
from course_lib.toy import GaussianMixture

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tensors here are tiny: one intra-op thread avoids oversubscribing a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _gen(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _skip_without_float64(device: torch.device) -> None:
    """These references are float64; Apple MPS has no float64 (the library itself runs there in
    float32)."""
    if device.type == "mps":
        pytest.skip("float64 reference test; MPS has no float64")


def _full_t(n: int, t: int, device="cpu") -> torch.Tensor:
    return torch.full((n,), t, dtype=torch.long, device=device)


# ------------------------------------------------------------------------------------------------
# Independent NumPy float64 references
# ------------------------------------------------------------------------------------------------
def np_schedule(betas: np.ndarray) -> dict:
    """Closed forms, written independently: abar via exp(cumsum(log alpha)), the posterior by
    the Gaussian product rule (precisions add)."""
    alphas = 1.0 - betas
    ab = np.exp(np.cumsum(np.log(alphas)))
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    with np.errstate(divide="ignore"):
        # q(x_{t-1} | x0) has precision 1/(1 - abar_prev) (infinite at t = 0),
        # q(x_t | x_{t-1}) as a function of x_{t-1} has precision alpha / beta
        prec = 1.0 / (1.0 - ab_prev) + alphas / betas
    pv = 1.0 / prec
    with np.errstate(invalid="ignore", divide="ignore"):
        c1 = pv * np.sqrt(ab_prev) / (1.0 - ab_prev)
        c2 = pv * np.sqrt(alphas) / betas
    c1[0], c2[0] = 1.0, 0.0          # a point mass at x0
    return dict(betas=betas, alphas=alphas, ab=ab, ab_prev=ab_prev, pv=pv, c1=c1, c2=c2)


def np_linear(T, b0=1e-4, b1=0.02):
    return np.linspace(b0, b1, T)


def np_cosine_ab(T, s=0.008):
    f = lambda u: np.cos((u + s) / (1 + s) * np.pi / 2) ** 2  # noqa: E731
    return f(np.arange(1, T + 1) / T) / f(0.0)


# ================================================================================================
# Schedules
# ================================================================================================
def test_linear_schedule_fixed_points_A9():
    s = NoiseSchedule.linear(1000)
    for name in NoiseSchedule._ARRAYS:
        arr = getattr(s, name)
        assert arr.dtype == F64 and arr.shape == (1000,), name
        assert torch.isfinite(arr).all(), name
    ab, pv = s.alphas_cumprod, s.posterior_variance
    assert ab[0].item() == pytest.approx(0.9999, rel=1e-14)
    assert ab[499].item() == pytest.approx(0.07858724288177824, rel=1e-12)
    assert ab[-1].item() == pytest.approx(4.035829765375676e-05, rel=1e-12)
    assert s.sqrt_alphas_cumprod[-1].item() == pytest.approx(0.006352818087570016, rel=1e-12)
    assert pv[0].item() == 0.0
    assert pv[1].item() == pytest.approx(5.4531876613021935e-05, rel=1e-12)
    assert pv[2].item() == pytest.approx(8.548911523090944e-05, rel=1e-12)
    assert pv[999].item() == pytest.approx(0.01999998352656061, rel=1e-12)
    assert s.posterior_mean_coef1[0].item() == pytest.approx(1.0, rel=1e-12)
    assert s.posterior_mean_coef2[0].item() == 0.0
    assert s.posterior_log_variance_clipped[0].item() == pytest.approx(-9.81672513529567, rel=1e-12)
    assert s.snr[0].item() == pytest.approx(9999.0, rel=1e-10)
    assert s.snr[-1].item() == pytest.approx(4.0359926511684205e-05, rel=1e-10)
    assert s.num_steps == 1000 and len(s) == 1000


def test_cosine_schedule_fixed_points_A9():
    s = NoiseSchedule.cosine(1000)
    assert s.betas.dtype == F64
    assert s.betas[0].item() == pytest.approx(4.128422482196914e-05, rel=1e-10)
    assert s.betas[-1].item() == 0.999
    assert (s.betas[:-1] < 0.999).all()                  # only the last beta is clipped
    assert s.alphas_cumprod[0].item() == pytest.approx(0.999958715775178, rel=1e-12)
    assert s.alphas_cumprod[-1].item() == pytest.approx(2.4287669070348567e-09, rel=1e-8)
    assert s.posterior_log_variance_clipped[0] == s.posterior_log_variance_clipped[1]


@pytest.mark.parametrize("T, b0, b1, rescale", [(1000, 1e-4, 0.02, False), (50, 1e-4, 0.02, True),
                                                (7, 0.05, 0.3, False), (2, 0.1, 0.2, False)])
def test_linear_schedule_matches_numpy_closed_forms(T, b0, b1, rescale):
    s = NoiseSchedule.linear(T, b0, b1, rescale=rescale)
    scale = 1000.0 / T if rescale else 1.0
    ref = np_schedule(np_linear(T, b0 * scale, b1 * scale))
    np.testing.assert_allclose(s.betas.numpy(), ref["betas"], rtol=1e-13)
    np.testing.assert_allclose(s.alphas.numpy(), ref["alphas"], rtol=1e-13)
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), ref["ab"], rtol=1e-11)
    np.testing.assert_allclose(s.alphas_cumprod_prev.numpy(), ref["ab_prev"], rtol=1e-11)
    np.testing.assert_allclose(s.posterior_variance.numpy(), ref["pv"], rtol=1e-9, atol=0)
    np.testing.assert_allclose(s.posterior_mean_coef1.numpy(), ref["c1"], rtol=1e-9)
    np.testing.assert_allclose(s.posterior_mean_coef2.numpy(), ref["c2"], rtol=1e-9, atol=1e-15)
    clipped = np.log(np.concatenate([[ref["pv"][1]], ref["pv"][1:]]))
    np.testing.assert_allclose(s.posterior_log_variance_clipped.numpy(), clipped, rtol=1e-10)
    large = np.log(np.concatenate([[ref["pv"][1]], ref["betas"][1:]]))
    np.testing.assert_allclose(s.large_log_variance.numpy(), large, rtol=1e-10)
    np.testing.assert_allclose(s.sqrt_one_minus_alphas_cumprod.numpy(), np.sqrt(1 - ref["ab"]),
                               rtol=1e-10)
    np.testing.assert_allclose(s.sqrt_recipm1_alphas_cumprod.numpy(),
                               np.sqrt((1 - ref["ab"]) / ref["ab"]), rtol=1e-10)
    np.testing.assert_allclose(s.snr.numpy(), ref["ab"] / (1 - ref["ab"]), rtol=1e-10)
    assert (np.diff(s.snr.numpy()) < 0).all()        # noise only grows


@pytest.mark.parametrize("T", [1000, 100, 10])
def test_cosine_schedule_matches_closed_form(T):
    s = NoiseSchedule.cosine(T)
    ab = np_cosine_ab(T)
    clipped = 1 - ab[1:] / ab[:-1] >= 0.999
    first_clip = int(np.argmax(clipped)) + 1 if clipped.any() else T
    np.testing.assert_allclose(s.alphas_cumprod.numpy()[:first_clip], ab[:first_clip], rtol=1e-10)
    assert s.betas.max().item() <= 0.999


def test_schedule_with_one_step_has_finite_logs():
    s = NoiseSchedule.linear(1, beta_start=0.3, beta_end=0.5)
    assert s.num_steps == 1
    assert s.posterior_variance[0].item() == 0.0
    assert s.posterior_log_variance_clipped[0].item() == pytest.approx(math.log(0.3))
    assert torch.isfinite(s.large_log_variance).all()


def test_schedule_to_device_and_dtype(device):
    s = NoiseSchedule.linear(40, rescale=True).to(device)
    assert s.betas.device.type == device.type
    x0 = torch.randn(5, 3, device=device)
    t = torch.arange(5, device=device)
    mean, var = q_mean_variance(s, x0, t)
    assert mean.dtype == torch.float32 and mean.device.type == device.type
    s32 = s.to(dtype=torch.float32)
    assert s32.alphas_cumprod.dtype == torch.float32
    assert "linear" in repr(s)


def test_extract_shapes_and_casts():
    s = NoiseSchedule.linear(10, 0.01, 0.2)
    x = torch.zeros(3, 2, 4, 4, dtype=torch.float32)
    out = D._extract(s.betas, torch.tensor([0, 4, 9]), x)
    assert out.shape == (3, 1, 1, 1) and out.dtype == torch.float32
    np.testing.assert_allclose(out.flatten().numpy(), np_linear(10, 0.01, 0.2)[[0, 4, 9]], rtol=1e-6)


# ================================================================================================
# Forward process
# ================================================================================================
def test_q_sample_matches_markov_chain_simulation(device):
    """x_t drawn in one shot vs the chain simulated step by step, 5 standard errors."""
    _skip_without_float64(device)
    T, n = 40, 20000
    s = NoiseSchedule.linear(T, rescale=True)
    betas = torch.tensor(np_linear(T, 1e-4 * 1000 / T, 0.02 * 1000 / T), dtype=F64)
    g = _gen(0)
    x0_values = torch.tensor([-2.0, 0.5, 3.0], dtype=F64)
    x0 = x0_values.repeat_interleave(n)[:, None].to(device)
    x = x0.cpu().clone()
    checked = {0, 9, T - 1}
    for step in range(T):
        z = torch.randn(x.shape, generator=g, dtype=F64)
        x = torch.sqrt(1 - betas[step]) * x + torch.sqrt(betas[step]) * z   # one forward step
        if step not in checked:
            continue
        t = _full_t(x0.shape[0], step, device)
        xt = q_sample(s, x0, t, generator=g)
        assert xt.device.type == device.type and xt.dtype == F64
        mean, var = q_mean_variance(s, x0, t)
        for k in range(3):
            rows = slice(k * n, (k + 1) * n)
            chain = x[rows, 0]
            one_shot = xt[rows, 0].cpu()
            m_ref, v_ref = mean[rows][0, 0].item(), var[rows][0, 0].item()
            se_m, se_v = math.sqrt(v_ref / n), v_ref * math.sqrt(2.0 / (n - 1))
            for sample_ in (chain, one_shot):
                assert abs(sample_.mean().item() - m_ref) < 5 * se_m
                assert abs(sample_.var().item() - v_ref) < 5 * se_v


def test_q_sample_with_given_noise_is_the_closed_form():
    s = NoiseSchedule.linear(1000)
    x0 = torch.tensor([[1.0, -0.5], [0.25, 2.0]], dtype=F64)
    eps = torch.tensor([[0.1, -0.2], [0.3, 0.4]], dtype=F64)
    xt = q_sample(s, x0, torch.tensor([0, 999]), noise=eps)
    ab = np_schedule(np_linear(1000))["ab"][[0, 999]][:, None]
    ref = np.sqrt(ab) * x0.numpy() + np.sqrt(1 - ab) * eps.numpy()
    np.testing.assert_allclose(xt.numpy(), ref, rtol=1e-12)
    # the diffusers float32 values of REFERENCES.md A3 agree to float32 precision
    np.testing.assert_allclose(xt.numpy(), [[1.0009500980377197, -0.5019751787185669],
                                            [0.3015821576118469, 0.41269755363464355]], rtol=1e-5)


def test_q_sample_keeps_dtype_and_uses_generator():
    s = NoiseSchedule.linear(10, 0.01, 0.2)
    x0 = torch.randn(4, 1, 8, 8)
    t = torch.tensor([0, 3, 5, 9])
    a, b = q_sample(s, x0, t, generator=_gen(3)), q_sample(s, x0, t, generator=_gen(3))
    assert a.dtype == torch.float32 and a.shape == x0.shape
    assert torch.equal(a, b)
    assert not torch.equal(a, q_sample(s, x0, t, generator=_gen(4)))


@given(T=st.integers(2, 300), frac=st.floats(0, 1), x0=st.floats(-5, 5), xt=st.floats(-5, 5))
def test_q_posterior_is_bayes_product_rule(T, frac, x0, xt):
    """q(x_{t-1} | x_t, x0) proportional to q(x_{t-1} | x0) q(x_t | x_{t-1}), in float64."""
    t = min(int(frac * T), T - 1)
    s = NoiseSchedule.linear(T, 1e-4, min(0.02 * 1000 / T, 0.5))
    betas = np_linear(T, 1e-4, min(0.02 * 1000 / T, 0.5))
    ab = np.cumprod(1 - betas)
    ab_prev = 1.0 if t == 0 else ab[t - 1]
    a, b = 1 - betas[t], betas[t]
    if t == 0:
        m_ref, v_ref = x0, 0.0                       # q(x_{-1}) given x0 is a point mass
    else:
        # prior N(sqrt(ab_prev) x0, 1 - ab_prev); likelihood in x_{t-1}: N(x_t / sqrt(a), b / a)
        p1, p2 = 1 / (1 - ab_prev), a / b
        v_ref = 1 / (p1 + p2)
        m_ref = v_ref * (p1 * math.sqrt(ab_prev) * x0 + p2 * xt / math.sqrt(a))
    mean, var, logvar = q_posterior_mean_variance(
        s, torch.tensor([[x0]], dtype=F64), torch.tensor([[xt]], dtype=F64), torch.tensor([t]))
    assert mean.item() == pytest.approx(m_ref, rel=1e-9, abs=1e-9)
    assert var.item() == pytest.approx(v_ref, rel=1e-9, abs=1e-300)
    assert math.isfinite(logvar.item())
    if t > 0:
        assert logvar.item() == pytest.approx(math.log(v_ref), rel=1e-9)


def test_q_posterior_against_monte_carlo_bayes(device):
    """Draw (x_{t-1}, x_t) jointly given x0, keep x_t in a thin bin: moments of x_{t-1}."""
    _skip_without_float64(device)
    T, t, n = 20, 7, 400000
    s = NoiseSchedule.linear(T, 0.01, 0.3)
    g = _gen(1)
    x0 = 1.3
    ab = s.alphas_cumprod.numpy()
    prev = math.sqrt(ab[t - 1]) * x0 + math.sqrt(1 - ab[t - 1]) * torch.randn(n, generator=g, dtype=F64)
    beta = s.betas[t].item()
    xt = math.sqrt(1 - beta) * prev + math.sqrt(beta) * torch.randn(n, generator=g, dtype=F64)
    target = 0.9
    keep = (xt - target).abs() < 0.01
    sel = prev[keep]
    mean, var, _ = q_posterior_mean_variance(
        s.to(device), torch.full((1, 1), x0, dtype=F64, device=device),
        torch.full((1, 1), target, dtype=F64, device=device), _full_t(1, t, device))
    k = sel.numel()
    assert k > 2000
    assert abs(sel.mean().item() - mean.item()) < 5 * math.sqrt(var.item() / k) + 0.01
    assert abs(sel.var().item() - var.item()) < 5 * var.item() * math.sqrt(2 / k) + 0.002


# ================================================================================================
# Conversions
# ================================================================================================
@given(t=st.integers(0, 999), x0=st.floats(-3, 3), eps=st.floats(-3, 3))
def test_conversions_round_trip(t, x0, eps):
    s = NoiseSchedule.linear(1000)
    tt = torch.tensor([t])
    x0_, eps_ = torch.tensor([[x0, -x0]], dtype=F64), torch.tensor([[eps, 0.5]], dtype=F64)
    xt = q_sample(s, x0_, tt, noise=eps_)
    ab = float(np.prod(1 - np_linear(1000)[: t + 1]))
    tol = dict(rtol=1e-7, atol=1e-7 / math.sqrt(ab))
    torch.testing.assert_close(predict_x0_from_eps(s, xt, tt, eps_), x0_, **tol)
    torch.testing.assert_close(D.predict_eps_from_x0(s, xt, tt, x0_), eps_, rtol=1e-7,
                               atol=1e-7 / math.sqrt(1 - ab))
    v = velocity(s, x0_, tt, eps_)
    torch.testing.assert_close(v, math.sqrt(ab) * eps_ - math.sqrt(1 - ab) * x0_, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(predict_x0_from_v(s, xt, tt, v), x0_, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(predict_eps_from_v(s, xt, tt, v), eps_, rtol=1e-9, atol=1e-9)
    score = eps_to_score(s, tt, eps_)
    torch.testing.assert_close(score, -eps_ / math.sqrt(1 - ab), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(score_to_eps(s, tt, score), eps_, rtol=1e-9, atol=1e-9)


# ================================================================================================
# The Bayes-optimal noise predictor
# ================================================================================================
def _mix1d():
    return GaussianMixture(torch.tensor([[-1.0], [1.2]], dtype=F64),
                           torch.tensor([0.3, 0.5], dtype=F64), torch.tensor([0.4, 0.6], dtype=F64))


def test_optimal_eps_matches_quadrature_1d():
    """E[eps | x_t] = int eps(x0) p(x0) N(x_t; sqrt(ab) x0, 1-ab) dx0 / int p(x0) N(...) dx0."""
    s = NoiseSchedule.linear(1000)
    model = optimal_eps_model(_mix1d(), s)
    grid = np.linspace(-6, 6, 120001)
    p0 = 0.4 * stats.norm.pdf(grid, -1.0, 0.3) + 0.6 * stats.norm.pdf(grid, 1.2, 0.5)
    xs = np.array([-2.0, -0.7, 0.1, 0.9, 2.5])
    for t in (0, 10, 300, 999):
        ab = s.alphas_cumprod[t].item()
        out = model(torch.tensor(xs[:, None]), _full_t(len(xs), t))[:, 0].numpy()
        for x, o in zip(xs, out):
            lik = stats.norm.pdf(x, math.sqrt(ab) * grid, math.sqrt(1 - ab))
            eps = (x - math.sqrt(ab) * grid) / math.sqrt(1 - ab)
            ref = np.trapezoid(eps * p0 * lik, grid) / np.trapezoid(p0 * lik, grid)
            assert o == pytest.approx(ref, rel=1e-6, abs=1e-6), (t, x)


def test_optimal_eps_is_scaled_score_of_noised_mixture_2d(device):
    _skip_without_float64(device)
    s = NoiseSchedule.cosine(200)
    mix = GaussianMixture(torch.tensor([[-2.0, 0.0], [1.0, 1.5], [0.5, -1.0]], dtype=F64),
                          torch.tensor([[0.2, 0.4], [0.5, 0.1], [0.3, 0.3]], dtype=F64),
                          torch.tensor([0.2, 0.5, 0.3], dtype=F64))
    model = optimal_eps_model(mix, s)
    x = 2 * torch.randn(64, 2, generator=_gen(2), dtype=F64)
    for t in (0, 50, 199):
        ab = s.alphas_cumprod[t].item()
        noised = mix.scale(math.sqrt(ab)).convolve(math.sqrt(1 - ab))
        ref = -math.sqrt(1 - ab) * noised.score(x)
        out = model(x.to(device), _full_t(64, t, device))
        assert out.device.type == device.type
        torch.testing.assert_close(out.cpu(), ref, rtol=1e-8, atol=1e-10)


def test_optimal_eps_minimizes_loss_simple():
    """L_simple of the Bayes-optimal model is below that of perturbed versions of it."""
    mix = _mix1d()
    s = NoiseSchedule.linear(50, rescale=True)
    model = optimal_eps_model(mix, s)
    x0 = mix.sample(20000, generator=_gen(3))
    best = loss_simple(s, model, x0, generator=_gen(4)).item()
    for scale in (0.9, 1.1):
        worse = loss_simple(s, lambda x, t: scale * model(x, t), x0, generator=_gen(4)).item()
        assert worse > best


# ================================================================================================
# Reverse step
# ================================================================================================
def _linear_model(a=0.3, b=0.05):
    return lambda x, t: a * x + b * t.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


@pytest.mark.parametrize("variance", ["small", "large"])
def test_p_mean_variance_eq11_and_variances(variance):
    """Mean from Ho et al. Eq. 11, mu = (x_t - beta/sqrt(1-ab) eps)/sqrt(alpha), in NumPy."""
    T = 30
    s = NoiseSchedule.linear(T, rescale=True)
    ref = np_schedule(np_linear(T, 1e-4 * 1000 / T, 0.02 * 1000 / T))
    xt = torch.randn(T, 3, generator=_gen(5), dtype=F64)
    t = torch.arange(T)
    out = p_mean_variance(s, _linear_model(), xt, t, variance=variance)
    x = xt.numpy()
    eps = 0.3 * x + 0.05 * np.arange(T)[:, None]
    b, a, ab = ref["betas"][:, None], ref["alphas"][:, None], ref["ab"][:, None]
    np.testing.assert_allclose(out.mean.numpy(), (x - b / np.sqrt(1 - ab) * eps) / np.sqrt(a),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out.pred_x0.numpy(), (x - np.sqrt(1 - ab) * eps) / np.sqrt(ab),
                               rtol=1e-9)
    var = ref["pv"] if variance == "small" else ref["betas"]
    var_log = np.concatenate([[ref["pv"][1]], var[1:]])
    np.testing.assert_allclose(out.log_variance[:, 0].numpy(), np.log(var_log), rtol=1e-10)
    np.testing.assert_allclose(out.variance[1:, 0].numpy(), var[1:], rtol=1e-9)
    assert out.variance.shape == xt.shape


def test_p_mean_variance_predictions_agree():
    """An eps-, an x0- and a v-model that encode the same x0_hat give the same reverse step."""
    s = NoiseSchedule.cosine(100)
    eps_model = _linear_model(0.4, 0.01)
    xt = torch.randn(100, 2, generator=_gen(6), dtype=F64)
    t = torch.arange(100)
    ref = p_mean_variance(s, eps_model, xt, t, prediction="eps")
    ab = s.alphas_cumprod[t][:, None]

    def x0_model(x, tt):
        return (x - torch.sqrt(1 - ab) * eps_model(x, tt)) / torch.sqrt(ab)

    def v_model(x, tt):
        # v = sqrt(ab) eps - sqrt(1-ab) x0 with x0 = (x - sqrt(1-ab) eps)/sqrt(ab)
        return torch.sqrt(ab) * eps_model(x, tt) - torch.sqrt(1 - ab) * x0_model(x, tt)

    for pred, m in (("x0", x0_model), ("v", v_model)):
        out = p_mean_variance(s, m, xt, t, prediction=pred)
        torch.testing.assert_close(out.mean, ref.mean, rtol=1e-7, atol=1e-7)
        torch.testing.assert_close(out.pred_x0, ref.pred_x0, rtol=1e-7, atol=1e-6)


def test_p_mean_variance_clipping_only_when_asked():
    s = NoiseSchedule.linear(1000)
    xt = torch.tensor([[0.5, -1.0, 1.5, 0.0]])
    model = lambda x, t: torch.tensor([[0.2, -0.1, 0.3, 0.0]])  # noqa: E731
    t = torch.tensor([999])
    raw = p_mean_variance(s, model, xt, t)
    assert raw.pred_x0.abs().max() > 100            # REFERENCES.md A3: x0_hat = [47.2, -141.7, ...]
    np.testing.assert_allclose(raw.pred_x0.numpy()[0, :3], [47.22377, -141.66972, 188.89348], rtol=1e-5)
    clipped = p_mean_variance(s, model, xt, t, clip_x0=1.0)
    assert torch.equal(clipped.pred_x0, torch.tensor([[1.0, -1.0, 1.0, 0.0]]))


def test_p_sample_matches_diffusers_step_A3():
    """REFERENCES.md A3: diffusers 0.42.1 DDPMScheduler.step (epsilon, fixed_small, float32
    schedule) with a fresh torch.Generator().manual_seed(0) per call."""
    s = NoiseSchedule.linear(1000)
    xt = torch.tensor([[0.5, -1.0, 1.5, 0.0]])
    out = torch.tensor([[0.2, -0.1, 0.3, 0.0]])
    rows = {
        ("eps", 999): [0.7189651131629944, -1.0496293306350708, 1.2010407447814941, 0.08038824796676636],
        ("eps", 1): [0.5097652673721313, -1.0013636350631714, 1.4814924001693726, 0.004197733011096716],
        ("x0", 500): [0.6521579027175903, -1.0238282680511475, 1.273637294769287, 0.05698865279555321],
        ("v", 500): [0.6513854265213013, -1.0240817070007324, 1.273118257522583, 0.05698865279555321],
    }
    for (pred, t), want in rows.items():
        got = p_sample(s, lambda x, tt: out, xt, torch.tensor([t]), generator=_gen(0), prediction=pred)
        # diffusers keeps the schedule in float32: 1 - abar at t = 1 carries ~1e-4 relative error
        np.testing.assert_allclose(got.numpy()[0], want, rtol=2e-4, atol=2e-4)
    # t = 0: no noise, the previous sample is x0_hat itself
    got = p_sample(s, lambda x, tt: out, xt, torch.tensor([0]), generator=_gen(0))
    torch.testing.assert_close(got, p_mean_variance(s, lambda x, tt: out, xt, torch.tensor([0])).pred_x0)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_no_nan_at_edges(kind, dtype):
    s = NoiseSchedule.linear(1000) if kind == "linear" else NoiseSchedule.cosine(1000)
    models = {"optimal": optimal_eps_model(_mix1d(), s), "linear": _linear_model()}
    x0 = torch.tensor([[-1.0], [0.0], [3.0]], dtype=dtype)
    xt = torch.tensor([[-4.0], [0.0], [4.0]], dtype=dtype)
    for t_val in (0, 999):
        t = _full_t(3, t_val)
        for m in models.values():
            for pred in ("eps", "x0", "v"):
                for var in ("small", "large"):
                    out = p_mean_variance(s, m, xt, t, prediction=pred, variance=var)
                    for field in out:
                        assert torch.isfinite(field).all() and field.dtype == dtype
                    term = vlb_term(s, m, x0, xt, t, prediction=pred, variance=var)
                    assert torch.isfinite(term).all()
        for field in q_posterior_mean_variance(s, x0, xt, t):
            assert torch.isfinite(field).all()
        assert torch.isfinite(p_sample(s, models["optimal"], xt, t, generator=_gen(0))).all()


def test_p_sample_adds_no_noise_at_t0(device):
    _skip_without_float64(device)
    s = NoiseSchedule.linear(50, rescale=True)
    model = _linear_model()
    xt = torch.randn(6, 2, generator=_gen(7), dtype=F64).to(device)
    t = torch.tensor([0, 0, 0, 5, 20, 49], device=device)
    a = p_sample(s, model, xt, t, generator=_gen(8))
    b = p_sample(s, model, xt, t, generator=_gen(9))
    mean = p_mean_variance(s, model, xt, t).mean
    assert torch.equal(a[:3], mean[:3]) and torch.equal(b[:3], mean[:3])
    assert (a[3:] != b[3:]).all()
    # at t = 0 the mean is x0_hat itself (coef1 = 1, coef2 = 0)
    torch.testing.assert_close(a[:3], p_mean_variance(s, model, xt, t).pred_x0[:3])


@pytest.mark.parametrize("variance", ["small", "large"])
def test_p_sample_noise_has_the_stated_variance(variance):
    s = NoiseSchedule.linear(50, rescale=True)
    n, t_val = 40000, 12
    xt = torch.zeros(n, 1, dtype=F64)
    t = _full_t(n, t_val)
    x_prev = p_sample(s, _linear_model(), xt, t, generator=_gen(10), variance=variance)
    out = p_mean_variance(s, _linear_model(), xt, t, variance=variance)
    ref = np_schedule(np_linear(50, 2e-3, 0.4))
    v = ref["pv"][t_val] if variance == "small" else ref["betas"][t_val]
    resid = (x_prev - out.mean)[:, 0]
    assert abs(resid.mean().item()) < 5 * math.sqrt(v / n)
    assert abs(resid.var().item() - v) < 5 * v * math.sqrt(2 / n)


# ================================================================================================
# Variational bound
# ================================================================================================
@pytest.mark.parametrize("variance", ["small", "large"])
def test_vlb_term_against_torch_distributions(variance):
    T, n = 25, 8
    s = NoiseSchedule.linear(T, rescale=True)
    ref = np_schedule(np_linear(T, 1e-4 * 1000 / T, 0.02 * 1000 / T))
    x0 = torch.randn(n, 3, generator=_gen(11), dtype=F64)
    xt = torch.randn(n, 3, generator=_gen(12), dtype=F64)
    model = _linear_model()
    t = torch.tensor([0, 1, 2, 5, 10, 20, 24, 0])
    got = vlb_term(s, model, x0, xt, t, variance=variance)
    for i in range(n):
        k = int(t[i])
        b, a, ab = ref["betas"][k], ref["alphas"][k], ref["ab"][k]
        eps = 0.3 * xt[i] + 0.05 * k
        model_mean = (xt[i] - b / math.sqrt(1 - ab) * eps) / math.sqrt(a)              # Eq. 11
        if k == 0:
            sd = math.sqrt(ref["pv"][1])
            want = -torch.distributions.Normal(model_mean, sd).log_prob(x0[i]).sum()
        else:
            model_var = ref["pv"][k] if variance == "small" else b
            post_mean = ref["c1"][k] * x0[i] + ref["c2"][k] * xt[i]
            want = torch.distributions.kl_divergence(
                torch.distributions.Normal(post_mean, math.sqrt(ref["pv"][k])),
                torch.distributions.Normal(model_mean, math.sqrt(model_var))).sum()
        assert got[i].item() == pytest.approx(want.item(), rel=1e-8, abs=1e-10), k


def test_vlb_prior_term_fixed_points_A9():
    s = NoiseSchedule.linear(1000)
    x0 = torch.tensor([[0.0], [0.5], [-1.0]], dtype=F64)
    out = vlb_terms(s, _linear_model(), x0, generator=_gen(13))
    bits = np.array([5.874784e-10, 7.278677e-06, 2.911295e-05])
    np.testing.assert_allclose(out.prior.numpy(), bits * math.log(2), rtol=1e-5)
    assert out.terms.shape == (3, 1000)
    torch.testing.assert_close(out.total, out.prior + out.terms.sum(1))
    # the KL columns are >= 0; the decoder column is a density term and may be negative
    assert (out.terms[:, 1:] >= 0).all()


def test_prior_kl_against_torch_distributions_and_A9():
    from course_lib.diffusion import prior_kl
    s = NoiseSchedule.cosine(50)
    x0 = torch.randn(6, 3, 2, generator=_gen(14), dtype=F64)
    ab = s.alphas_cumprod[-1]
    q = torch.distributions.Normal(ab.sqrt() * x0, (1 - ab).sqrt())
    want = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).flatten(1).sum(1)
    torch.testing.assert_close(prior_kl(s, x0), want, rtol=1e-12, atol=1e-15)
    lin = NoiseSchedule.linear(1000)          # REFERENCES.md A9, bits at |x0| = 1
    assert prior_kl(lin, torch.tensor([[1.0]], dtype=F64)).item() / math.log(2) == pytest.approx(2.911295e-05, rel=1e-6)
    with pytest.raises((TypeError, ValueError), match="x0"):
        prior_kl(s, torch.zeros(3, dtype=torch.long))


def test_vlb_terms_uses_fresh_noise_and_generator():
    s = NoiseSchedule.linear(10, 0.01, 0.2)
    x0 = torch.randn(5, 2, generator=_gen(14), dtype=F64)
    a = vlb_terms(s, _linear_model(), x0, generator=_gen(15))
    b = vlb_terms(s, _linear_model(), x0, generator=_gen(15))
    c = vlb_terms(s, _linear_model(), x0, generator=_gen(16))
    assert torch.equal(a.terms, b.terms) and not torch.equal(a.terms, c.terms)
    net = torch.nn.Linear(2, 2).double()
    assert vlb_terms(s, lambda x, t: net(x), x0).total.requires_grad is False    # under no_grad


def _mixture_entropy_1d():
    pdf = lambda x: 0.4 * stats.norm.pdf(x, -1.0, 0.3) + 0.6 * stats.norm.pdf(x, 1.2, 0.5)  # noqa
    h, _ = integrate.quad(lambda x: -pdf(x) * np.log(pdf(x)) if pdf(x) > 0 else 0.0, -8, 8,
                          limit=200, points=[-1.0, 1.2])
    return h


def test_vlb_bounds_the_entropy_and_is_close_with_the_optimal_model():
    """E[-ELBO] >= E[-log p(x0)] = H(p) for the exact mixture; close with a good reverse variance.

    Paired per example with -log p(x0) from scipy; the tolerance is 4 standard errors. With
    "small" variances the gap shrinks as T grows (the reverse variance beta~ underestimates the
    true one near the data); with "large" the remaining gap is the decoder's variance mismatch
    (sigma_0^2 = beta~ at index 1 vs the true ~beta_0)."""
    mix = _mix1d()
    h = _mixture_entropy_1d()
    n = 3000
    x0 = mix.sample(n, generator=_gen(17))
    nll = torch.from_numpy(-np.log(0.4 * stats.norm.pdf(x0.numpy()[:, 0], -1.0, 0.3)
                                   + 0.6 * stats.norm.pdf(x0.numpy()[:, 0], 1.2, 0.5)))
    assert abs(nll.mean().item() - h) < 4 * nll.std().item() / math.sqrt(n)
    gaps = {}
    for variance, T in (("small", 25), ("small", 200), ("large", 100)):
        s = NoiseSchedule.linear(T, rescale=True)
        out = vlb_terms(s, optimal_eps_model(mix, s), x0, variance=variance, generator=_gen(18))
        d = out.total - nll
        se = d.std().item() / math.sqrt(n)
        gaps[variance, T] = d.mean().item()
        assert d.mean().item() > -4 * se, (variance, T)           # a bound
    assert gaps["small", 200] < gaps["small", 25] - 1.0            # tighter with more steps
    assert abs(gaps["large", 100]) < 0.1                           # close to the entropy


# ------------------------------------------------------------------------------------------------
# The ELBO-optimal reverse variance
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sd", [1.0, 0.4, 0.01])
def test_optimal_reverse_variance_gaussian_data_closed_form(sd):
    """x0 ~ N(0, sd^2): Var[x0 | x_t] = sd^2 (1-ab) / (ab sd^2 + 1 - ab) for every x_t, so
    sigma*^2 = beta~ + c1^2 Var[x0 | x_t] in NumPy; sd = 1 gives beta exactly (Ho et al. 2020,
    Section 3.2, x0 ~ N(0, I)) and sd -> 0 gives beta~ (x0 a point). Monte Carlo: 5 standard errors."""
    T, n = 25, 4000
    s = NoiseSchedule.linear(T, rescale=True)
    ref = np_schedule(np_linear(T, 1e-4 * 1000 / T, 0.02 * 1000 / T))
    mix = GaussianMixture(torch.tensor([[0.0, 0.0]], dtype=F64), torch.tensor([sd], dtype=F64))
    x0 = mix.sample(n, generator=_gen(40))
    out = D.optimal_reverse_variance(s, optimal_eps_model(mix, s), x0, generator=_gen(41))
    assert out.variance.shape == (T,) and out.standard_error.shape == (T,)
    ab = ref["ab"]
    post = sd ** 2 * (1 - ab) / (ab * sd ** 2 + 1 - ab)
    want = ref["pv"] + ref["c1"] ** 2 * post
    got, se = out.variance.numpy(), out.standard_error.numpy()
    assert (se > 0).all()
    assert (np.abs(got - want) < 5 * se).all(), np.abs(got - want) / se
    if sd == 1.0:
        np.testing.assert_allclose(want[1:], ref["betas"][1:], rtol=1e-10)      # the "large" extreme
    if sd == 0.01:
        assert (np.abs(got[1:] - ref["pv"][1:]) < 0.01 * (ref["betas"][1:] - ref["pv"][1:])).all()   # "small"


def test_optimal_reverse_variance_of_a_poor_model_and_of_a_mixture():
    """A model that predicts eps = 0 has x0_hat = x_t / sqrt(ab), so E||x0 - x0_hat||^2 / D =
    (1 - ab) / ab exactly. For a 2-D mixture and its exact eps*, sigma*^2 - beta~ = c1^2 E tr Cov[x0 | x_t] / D,
    checked against GaussianMixture.posterior_covariance (an independent implementation)."""
    T, n = 15, 4000
    s = NoiseSchedule.cosine(T)
    ref = np_schedule(s.betas.numpy().copy())
    mix = _mix2d()
    x0 = mix.sample(n, generator=_gen(42))
    zero = D.optimal_reverse_variance(s, lambda x, t: torch.zeros_like(x), x0, generator=_gen(43))
    want = ref["pv"] + ref["c1"] ** 2 * (1 - ref["ab"]) / ref["ab"]
    assert (np.abs(zero.variance.numpy() - want) < 5 * zero.standard_error.numpy()).all()
    opt = D.optimal_reverse_variance(s, optimal_eps_model(mix, s), x0, generator=_gen(44))
    for i in (0, 3, 7, 14):
        ab = s.alphas_cumprod[i]
        xt = q_sample(s, mix.sample(n, generator=_gen(45 + i)), _full_t(n, i), generator=_gen(60 + i))
        tr = mix.posterior_covariance(xt / ab.sqrt(), ((1 - ab) / ab).sqrt()).diagonal(dim1=1, dim2=2).sum(1) / 2
        rb = ref["pv"][i] + ref["c1"][i] ** 2 * tr
        se = math.sqrt(opt.standard_error[i].item() ** 2 + (rb.std().item() / math.sqrt(n)) ** 2)
        assert abs(opt.variance[i].item() - rb.mean().item()) < 5 * se, i
        assert ref["pv"][i] - 1e-15 <= opt.variance[i].item()              # never below beta~


def test_optimal_reverse_variance_bad_input():
    s = NoiseSchedule.linear(10, 0.01, 0.2)
    with pytest.raises(ValueError, match="x0: expected at least 2 examples"):
        D.optimal_reverse_variance(s, _linear_model(), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="prediction"):
        D.optimal_reverse_variance(s, _linear_model(), torch.zeros(4, 2), prediction="mu")


# ================================================================================================
# Training loss
# ================================================================================================
def test_loss_simple_reconstructs_algorithm_1():
    """Record the model's inputs: t uniform, x_t = sqrt(ab) x0 + sqrt(1-ab) eps with eps ~ N(0,1)."""
    T, n = 10, 4000
    s = NoiseSchedule.linear(T, 0.01, 0.3)
    ab = np_schedule(np_linear(T, 0.01, 0.3))["ab"]
    x0 = torch.randn(n, 2, generator=_gen(19), dtype=F64)
    seen = {}

    def model(xt, t):
        seen["xt"], seen["t"] = xt, t
        return 0.5 * xt

    loss = loss_simple(s, model, x0, generator=_gen(20))
    t = seen["t"].numpy()
    assert t.min() >= 0 and t.max() <= T - 1
    counts = np.bincount(t, minlength=T)
    chi2 = ((counts - n / T) ** 2 / (n / T)).sum()
    assert chi2 < stats.chi2.ppf(0.9999, T - 1)
    a = ab[t][:, None]
    eps = (seen["xt"].numpy() - np.sqrt(a) * x0.numpy()) / np.sqrt(1 - a)
    assert abs(eps.mean()) < 5 / math.sqrt(eps.size) and abs(eps.var() - 1) < 5 * math.sqrt(2 / eps.size)
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(((eps - 0.5 * seen["xt"].numpy()) ** 2).mean(), rel=1e-10)


def test_loss_simple_targets_and_gradient():
    s = NoiseSchedule.linear(40, rescale=True)
    net = torch.nn.Linear(3, 3)
    x0 = torch.randn(16, 3, generator=_gen(21))
    loss = loss_simple(s, lambda x, t: net(x), x0, generator=_gen(22))
    loss.backward()
    assert net.weight.grad is not None and torch.isfinite(net.weight.grad).all()
    # a model returning x0 exactly has zero x0-loss; returning the true v gives zero v-loss
    assert loss_simple(s, lambda x, t: x0, x0, prediction="x0").item() == 0.0


# ================================================================================================
# Samplers
# ================================================================================================
def _gaussian_reverse_moments(s: NoiseSchedule, m: float, sd: float, variance: str):
    """DDPM with the exact E[eps | x_t] for x0 ~ N(m, sd^2) is an affine Gaussian recursion:
    x_{t-1} = A x_t + B + sigma z, so mean and variance follow exactly (NumPy float64)."""
    ref = np_schedule(s.betas.numpy().copy())
    mu, var = 0.0, 1.0
    for k in reversed(range(s.num_steps)):
        b, a, ab = ref["betas"][k], ref["alphas"][k], ref["ab"][k]
        v = ab * sd ** 2 + 1 - ab
        # eps_hat = sqrt(1-ab) (x - sqrt(ab) m) / v
        e_a, e_b = math.sqrt(1 - ab) / v, -math.sqrt(1 - ab) * math.sqrt(ab) * m / v
        # mean = (x - b / sqrt(1-ab) eps_hat) / sqrt(a)
        A = (1 - b / math.sqrt(1 - ab) * e_a) / math.sqrt(a)
        B = -b / math.sqrt(1 - ab) * e_b / math.sqrt(a)
        sig2 = 0.0 if k == 0 else (ref["pv"][k] if variance == "small" else b)
        mu, var = A * mu + B, A * A * var + sig2
    return mu, var


@pytest.mark.parametrize("variance", ["small", "large"])
def test_sample_gaussian_data_exact_moments(variance, device):
    _skip_without_float64(device)
    s = NoiseSchedule.linear(40, rescale=True)
    mix = GaussianMixture(torch.tensor([[0.7]], dtype=F64), torch.tensor([0.4], dtype=F64))
    n = 20000
    x = sample(s, optimal_eps_model(mix, s), (n, 1), generator=_gen(23), device=device, dtype=F64,
               variance=variance)
    assert x.device.type == device.type and x.dtype == F64 and x.shape == (n, 1)
    mu, var = _gaussian_reverse_moments(s, 0.7, 0.4, variance)
    x = x[:, 0].cpu()
    assert abs(x.mean().item() - mu) < 5 * math.sqrt(var / n)
    assert abs(x.var().item() - var) < 5 * var * math.sqrt(2 / n)


def _mix2d():
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, -2.0]], dtype=F64)
    return GaussianMixture(means, torch.tensor([0.15, 0.3, 0.2, 0.25], dtype=F64),
                           torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64))


def _check_mixture_samples(x: torch.Tensor, mix, rel_std: float):
    n = x.shape[0]
    x = x.cpu()
    lab = ((x[:, None, :] - mix.means[None]) ** 2).sum(-1).argmin(1)
    for k in range(mix.num_components):
        w = mix.weights[k].item()
        frac = (lab == k).double().mean().item()
        assert abs(frac - w) < 4.5 * math.sqrt(w * (1 - w) / n), (k, frac, w)
        xk = x[lab == k] - mix.means[k]
        assert xk.mean(0).abs().max().item() < 0.05, k
        sd = xk.std().item()
        assert abs(sd / mix.stds[k, 0].item() - 1) < rel_std, (k, sd)


def test_sample_reproduces_a_mixture(device):
    _skip_without_float64(device)
    mix = _mix2d()
    s = NoiseSchedule.linear(150, rescale=True)
    x, path = sample(s, optimal_eps_model(mix, s), (2000, 2), generator=_gen(24), device=device,
                     dtype=F64, trajectory=True, progress=True)
    _check_mixture_samples(x, mix, rel_std=0.12)
    assert path.shape == (151, 2000, 2) and torch.equal(path[-1], x)
    assert abs(path[0].std().item() - 1) < 0.05                 # starts from N(0, I)
    x.requires_grad_(True)                                      # an ordinary tensor


def test_sample_is_reproducible_and_uses_given_noise(device):
    s = NoiseSchedule.linear(10, 0.01, 0.3)
    model = _linear_model()
    a = sample(s, model, (4, 3), generator=_gen(25), device=device)
    b = sample(s, model, (4, 3), generator=_gen(25), device=device)
    assert torch.equal(a, b) and a.dtype == torch.float32 and a.device.type == device.type
    c = ddim_sample(s, model, (4, 3), 5, eta=0.5, generator=_gen(25), device=device)
    assert c.dtype == torch.float32 and c.device.type == device.type and torch.isfinite(c).all()
    if device.type == "mps":
        return
    xT = torch.randn(4, 3, generator=_gen(26), dtype=F64)
    _, path = sample(s, model, (4, 3), generator=_gen(27), noise=xT, trajectory=True)
    assert path.dtype == F64 and torch.equal(path[0], xT)


def test_ddim_timesteps_trailing():
    assert ddim_timesteps(1000, 10).tolist() == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert ddim_timesteps(50, 50).tolist() == list(range(49, -1, -1))
    assert ddim_timesteps(1000, 1).tolist() == [999]
    steps = ddim_timesteps(1000, 37)
    assert steps[0] == 999 and (steps.diff() < 0).all() and steps[-1] >= 0


def test_ddim_eta0_is_the_affine_map_for_gaussian_data():
    """For x0 ~ N(m, sd^2) the exact eps is affine in x_t, so DDIM (eta = 0, Eq. 12) is an affine
    map of x_T, recomputed here in NumPy on the trailing timesteps; with many steps it maps
    N(0, 1) onto N(m, sd^2) (the probability-flow limit)."""
    s = NoiseSchedule.linear(1000)
    m, sd = 0.7, 0.4
    mix = GaussianMixture(torch.tensor([[m]], dtype=F64), torch.tensor([sd], dtype=F64))
    xT = torch.randn(200, 1, generator=_gen(28), dtype=F64)
    model = optimal_eps_model(mix, s)
    ab_all = np_schedule(np_linear(1000))["ab"]
    slope_error = {}
    for n_steps in (25, 250):
        out = ddim_sample(s, model, (200, 1), n_steps, eta=0.0, generator=_gen(29), noise=xT)
        out2 = ddim_sample(s, model, (200, 1), n_steps, eta=0.0, generator=_gen(30), noise=xT)
        assert torch.equal(out, out2)                                # deterministic
        stride = 1000 // n_steps
        taus = [999 - k * stride for k in range(n_steps)]
        x = np.concatenate([xT.numpy()[:, 0], [0.0, 1.0]])
        for i, tau in enumerate(taus):
            ab = ab_all[tau]
            ab_prev = ab_all[taus[i + 1]] if i + 1 < n_steps else 1.0
            eps = math.sqrt(1 - ab) * (x - math.sqrt(ab) * m) / (ab * sd ** 2 + 1 - ab)
            x0_hat = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
            x = math.sqrt(ab_prev) * x0_hat + math.sqrt(1 - ab_prev) * eps
        np.testing.assert_allclose(out.numpy()[:, 0], x[:-2], rtol=1e-9, atol=1e-10)
        # x_T ~ N(0, 1) is mapped to N(x(0), slope^2): compare with N(m, sd^2)
        slope_error[n_steps] = abs((x[-1] - x[-2]) - sd)
        assert abs(x[-2] - m) < 0.02
    assert slope_error[250] < 0.01 < slope_error[25]


def test_ddim_eta1_all_steps_is_ancestral_sampling():
    s = NoiseSchedule.linear(30, rescale=True)
    model = optimal_eps_model(_mix1d(), s)
    a = ddim_sample(s, model, (50, 1), 30, eta=1.0, generator=_gen(31), dtype=F64)
    b = sample(s, model, (50, 1), generator=_gen(31), dtype=F64)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    c = ddim_sample(s, model, (50, 1), 30, eta=1.0, generator=_gen(32), dtype=F64)
    assert not torch.allclose(a, c)


def test_ddim_many_steps_reproduces_a_mixture(device):
    _skip_without_float64(device)
    mix = _mix2d()
    s = NoiseSchedule.linear(1000)
    x = ddim_sample(s, optimal_eps_model(mix, s), (2000, 2), 100, generator=_gen(33),
                    device=device, dtype=F64)
    assert x.device.type == device.type
    _check_mixture_samples(x, mix, rel_std=0.12)


# ------------------------------------------------------------------------------------------------
# The samplers' arithmetic, bit for bit. The samplers apply each step's coefficients as scalars
# (every example is at the same step); these references write each step from the equations, one
# generator draw at a time, with the rounding the course defines: every float64 schedule value
# (or, for DDIM's Eq. 16, every float64 value computed here with torch's float64 ops on 0-d
# tensors) is rounded once to the samples' dtype, and each product and sum is rounded in that
# dtype. Same generator, same draws -> the same samples, to the last bit, and the generator left in
# the same state. (Not Python's math.sqrt: torch's float64 sqrt on CPU is not always correctly
# rounded, e.g. 59 of 5000 random values differ in the last bit with torch 2.13 on AVX-512.)
# ------------------------------------------------------------------------------------------------
def _coef(s: NoiseSchedule, name: str, i: int, dtype) -> torch.Tensor:
    """``s.<name>[i]`` (float64) rounded once to ``dtype``, a 0-d tensor."""
    return getattr(s, name)[i].to(dtype)


def _x0_hat_reference(s, x, out, i, prediction, clip, dtype):
    if prediction == "eps":      # x0 = x_t / sqrt(abar) - sqrt(1/abar - 1) eps   (Eq. 4 solved)
        x0 = (_coef(s, "sqrt_recip_alphas_cumprod", i, dtype) * x
              - _coef(s, "sqrt_recipm1_alphas_cumprod", i, dtype) * out)
    elif prediction == "v":      # x0 = sqrt(abar) x_t - sqrt(1 - abar) v   (Salimans & Ho, App. D)
        x0 = (_coef(s, "sqrt_alphas_cumprod", i, dtype) * x
              - _coef(s, "sqrt_one_minus_alphas_cumprod", i, dtype) * out)
    else:
        x0 = out
    return x0 if clip is None else x0.clamp(-clip, clip)


def _ancestral_reference(s, model, shape, generator, dtype, prediction, variance, clip):
    """Algorithm 2 of Ho et al. (2020), one step at a time; z drawn at every step, unused at t = 0."""
    x = torch.randn(shape, generator=generator, dtype=dtype)
    for i in reversed(range(s.num_steps)):
        x0 = _x0_hat_reference(s, x, model(x, _full_t(shape[0], i)), i, prediction, clip, dtype)
        mean = (_coef(s, "posterior_mean_coef1", i, dtype) * x0                       # Eq. 7
                + _coef(s, "posterior_mean_coef2", i, dtype) * x)
        name = "posterior_log_variance_clipped" if variance == "small" else "large_log_variance"
        z = torch.randn(shape, generator=generator, dtype=dtype)
        x = mean + torch.exp(0.5 * _coef(s, name, i, dtype)) * z if i > 0 else mean
    return x


def _ddim_reference(s, model, shape, n, eta, generator, dtype, prediction, clip):
    """Song et al. (2021), Eqs. 12 and 16, on the trailing timesteps, one step at a time."""
    taus = ddim_timesteps(s.num_steps, n).tolist()
    x = torch.randn(shape, generator=generator, dtype=dtype)
    for k, tau in enumerate(taus):
        x0 = _x0_hat_reference(s, x, model(x, _full_t(shape[0], tau)), tau, prediction, clip, dtype)
        eps = ((_coef(s, "sqrt_recip_alphas_cumprod", tau, dtype) * x - x0)
               / _coef(s, "sqrt_recipm1_alphas_cumprod", tau, dtype))
        ab = s.alphas_cumprod[tau]                                                  # 0-d, float64
        ab_prev = s.alphas_cumprod[taus[k + 1]] if k + 1 < n else torch.ones((), dtype=F64)
        sigma = eta * torch.sqrt((1 - ab_prev) / (1 - ab)) * torch.sqrt(1 - ab / ab_prev)
        c_dir = torch.sqrt(torch.clamp(1 - ab_prev - sigma * sigma, min=0.0))
        x = torch.sqrt(ab_prev).to(dtype) * x0 + c_dir.to(dtype) * eps
        if eta > 0:
            x = x + sigma.to(dtype) * torch.randn(shape, generator=generator, dtype=dtype)
    return x


def _wiggly_model(x, t):
    """Depends nonlinearly on x and on t, so every coefficient shows in the result."""
    return torch.tanh(1.3 * x) + 0.01 * torch.cos(t.to(x.dtype)).reshape(-1, *([1] * (x.dim() - 1)))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("prediction, variance, clip", [
    ("eps", "small", None), ("eps", "large", None), ("v", "small", 1.5), ("x0", "large", 1.0)])
def test_sample_is_bit_for_bit_the_per_step_reference(dtype, prediction, variance, clip):
    s = NoiseSchedule.linear(40, rescale=True)
    g_lib, g_ref = _gen(40), _gen(40)
    x = sample(s, _wiggly_model, (16, 3), generator=g_lib, dtype=dtype, prediction=prediction,
               variance=variance, clip_x0=clip)
    ref = _ancestral_reference(s, _wiggly_model, (16, 3), g_ref, dtype, prediction, variance, clip)
    assert x.dtype == dtype and torch.equal(x, ref)
    assert torch.equal(g_lib.get_state(), g_ref.get_state())     # the same number of draws
    # and the same as chaining the per-example step p_sample (the general, gathering path)
    g = _gen(40)
    y = torch.randn(16, 3, generator=g, dtype=dtype)
    for i in reversed(range(s.num_steps)):
        y = p_sample(s, _wiggly_model, y, _full_t(16, i), generator=g, prediction=prediction,
                     variance=variance, clip_x0=clip)
    assert torch.equal(x, y)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("n, eta", [(7, 0.0), (7, 0.6), (40, 1.0)])
@pytest.mark.parametrize("prediction, clip", [("eps", None), ("v", 1.5), ("x0", None)])
def test_ddim_is_bit_for_bit_the_per_step_reference(dtype, n, eta, prediction, clip):
    s = NoiseSchedule.cosine(40)
    g_lib, g_ref = _gen(41), _gen(41)
    x = ddim_sample(s, _wiggly_model, (16, 3), n, eta=eta, generator=g_lib, dtype=dtype,
                    prediction=prediction, clip_x0=clip)
    ref = _ddim_reference(s, _wiggly_model, (16, 3), n, eta, g_ref, dtype, prediction, clip)
    assert x.dtype == dtype and torch.equal(x, ref)
    assert torch.equal(g_lib.get_state(), g_ref.get_state())


# ================================================================================================
# Bad input
# ================================================================================================
def test_bad_schedules():
    with pytest.raises(ValueError, match="num_steps"):
        NoiseSchedule.linear(0)
    with pytest.raises(TypeError, match="num_steps"):
        NoiseSchedule.linear(10.5)
    with pytest.raises(ValueError, match="beta_start"):
        NoiseSchedule.linear(10, beta_start=0.02, beta_end=0.01)
    with pytest.raises(ValueError, match="beta_start"):
        NoiseSchedule.linear(10, beta_start=0.0)
    with pytest.raises(ValueError, match="beta_end"):
        NoiseSchedule.linear(10, beta_end=1.0)
    with pytest.raises(ValueError, match="beta_end"):
        NoiseSchedule.linear(10, rescale=True)                 # 0.02 * 100 = 2 > 1
    with pytest.raises(ValueError, match="max_beta"):
        NoiseSchedule.cosine(10, max_beta=1.0)
    with pytest.raises(ValueError, match="s:"):
        NoiseSchedule.cosine(10, s=-0.1)
    with pytest.raises(ValueError, match="betas"):
        NoiseSchedule(torch.tensor([0.1, 1.2]))
    with pytest.raises(ValueError, match="betas"):
        NoiseSchedule(torch.tensor([0.1, float("nan")]))
    with pytest.raises(ValueError, match="betas"):
        NoiseSchedule(torch.zeros(2, 2) + 0.1)


def test_bad_t():
    s = NoiseSchedule.linear(10, 0.01, 0.2)
    x0 = torch.randn(3, 2)
    with pytest.raises(ValueError, match=r"t: .*\[0, 9\]"):
        q_sample(s, x0, torch.tensor([0, 1, 10]))
    with pytest.raises(ValueError, match="t: .*-1"):
        q_sample(s, x0, torch.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match="t: .*dtype"):
        q_sample(s, x0, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"t: .*shape \(3,\)"):
        q_sample(s, x0, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="t: .*shape"):
        q_sample(s, x0, torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="t: "):
        q_sample(s, x0, 3)
    with pytest.raises(ValueError, match="t: "):
        p_mean_variance(s, _linear_model(), x0, torch.tensor([0, 1, 10]))
    with pytest.raises(ValueError, match="t: "):
        eps_to_score(s, torch.tensor([1, 2]), x0)


def test_bad_model_and_options():
    s = NoiseSchedule.linear(10, 0.01, 0.2)
    x = torch.randn(3, 2)
    t = torch.tensor([0, 1, 2])
    wrong = lambda xt, tt: xt[:, :1]  # noqa: E731
    with pytest.raises(ValueError, match=r"model: .*\(3, 2\)"):
        p_mean_variance(s, wrong, x, t)
    with pytest.raises(ValueError, match="model"):
        sample(s, wrong, (3, 2))
    with pytest.raises(ValueError, match="model"):
        loss_simple(s, wrong, x)
    with pytest.raises(ValueError, match="model"):
        vlb_terms(s, wrong, x)
    with pytest.raises(ValueError, match="prediction"):
        p_mean_variance(s, _linear_model(), x, t, prediction="score")
    with pytest.raises(ValueError, match="variance"):
        p_sample(s, _linear_model(), x, t, variance="learned")
    with pytest.raises(ValueError, match="clip_x0"):
        p_mean_variance(s, _linear_model(), x, t, clip_x0=-1.0)
    with pytest.raises(ValueError, match="noise"):
        q_sample(s, x, t, noise=torch.randn(3, 3))
    with pytest.raises(ValueError, match="x0 and xt"):
        q_posterior_mean_variance(s, x, torch.randn(3, 3), t)
    with pytest.raises(ValueError, match="shape"):
        sample(s, _linear_model(), (0, 2))
    with pytest.raises(ValueError, match="num_steps"):
        ddim_sample(s, _linear_model(), (3, 2), 11)
    with pytest.raises(ValueError, match="eta"):
        ddim_sample(s, _linear_model(), (3, 2), 5, eta=-0.5)
    with pytest.raises(TypeError, match="schedule"):
        q_sample("linear", x, t)
    with pytest.raises(TypeError, match="mixture"):
        optimal_eps_model(object(), s)
    with pytest.raises(ValueError, match="xt"):
        optimal_eps_model(_mix1d(), s)(torch.randn(3, 2, dtype=F64), t)


# ================================================================================================
# Exercises of notebooks 04 and 05 (course_lib/exercises/diffusion.py)
# ================================================================================================
EXERCISES = ["q_sample", "q_posterior", "ddpm_sample"]   # ddpm_sample: tests/exercises/test_diffusion.py


def _exercise_cases(name, n=5):
    from course_lib import grading

    make = grading.exercises()[name].make_inputs
    for seed in range(n):
        yield make(_gen(seed))[0]


@pytest.mark.parametrize("name", EXERCISES)
def test_exercise_reference_passes_and_stub_fails(name):
    from course_lib import grading

    grading.check(name, grading.exercises()[name].reference, verbose=False)

    def stub(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="not attempted"):
        grading.check(name, stub, verbose=False)


def _np_ab(betas):
    ab = np.cumprod(1 - betas.numpy())
    return ab, np.concatenate([[1.0], ab[:-1]])


def test_exercise_references_match_numpy_and_edges_are_present():
    import course_lib.exercises.diffusion as ex

    saw_first = saw_last = False
    for x0, t, eps, betas in _exercise_cases("q_sample"):
        ab = _np_ab(betas)[0][t.numpy()][:, None]
        np.testing.assert_allclose(ex.q_sample_reference(x0, t, eps, betas).numpy(),
                                   np.sqrt(ab) * x0.numpy() + np.sqrt(1 - ab) * eps.numpy(), rtol=1e-10)
        saw_first |= bool((t == 0).any())
        saw_last |= bool((t == betas.shape[0] - 1).any())
    assert saw_first and saw_last
    for x0, xt, t, betas in _exercise_cases("q_posterior"):
        ab, ab_prev = (a[t.numpy()][:, None] for a in _np_ab(betas))
        b = betas.numpy()[t.numpy()][:, None]
        mean, var = ex.q_posterior_reference(x0, xt, t, betas)
        np.testing.assert_allclose(var.numpy(), np.broadcast_to(b * (1 - ab_prev) / (1 - ab), var.shape),
                                   rtol=1e-9, atol=1e-300)
        want = (np.sqrt(ab_prev) * b * x0.numpy() + np.sqrt(1 - b) * (1 - ab_prev) * xt.numpy()) / (1 - ab)
        np.testing.assert_allclose(mean.numpy(), want, rtol=1e-9, atol=1e-12)
        assert (var[t == 0] == 0).all()


def test_exercise_typical_mistakes_fail_readably():
    from course_lib import grading

    def one_based(x0, t, eps, betas):        # indexes abar with the paper's t instead of t - 1
        ab = torch.cumprod(1 - betas, 0)[(t + 1).clamp(max=betas.shape[0] - 1)][:, None]
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps

    def no_cumprod(x0, t, eps, betas):       # alpha_t where alpha-bar_t is needed
        a = (1 - betas)[t][:, None]
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    for name, fn in (("q_sample", one_based), ("q_sample", no_cumprod)):
        with pytest.raises(AssertionError, match="max abs difference|differ"):
            grading.check(name, fn, verbose=False)


# ================================================================================================
# Notebook 04's scaled chain and exact marginals of a mixture
# ================================================================================================
@pytest.mark.parametrize("a,b", [(0.99, 0.05), (0.9, 0.3), (0.5, math.sqrt(0.75))])
def test_variance_recursion_closed_form(a, b):
    """v_t = a^{2t} v_0 + b^2 (1 - a^{2t}) / (1 - a^2) (the unrolled sum); a = 1: v_0 + t b^2."""
    v = D.variance_recursion(a, b, 2.0, 50)
    t = np.arange(51)
    np.testing.assert_allclose(v, a ** (2 * t) * 2.0 + b * b * (1 - a ** (2 * t)) / (1 - a * a), rtol=1e-12)
    np.testing.assert_allclose(D.variance_recursion(1.0, b, 1.0, 50), 1 + t * b * b, rtol=1e-12)
    with pytest.raises(ValueError, match="v0"):
        D.variance_recursion(a, b, -1.0, 5)


def test_scaled_chain_variance_follows_the_recursion():
    """The simulated variance at every step within 5 standard errors (sd of a sample variance of
    Gaussian states ~ v sqrt(2/n)) of the recursion; the first state is x0 itself."""
    n, a, b = 4000, 0.95, 0.2
    x0 = torch.randn(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1.5
    path = D.scaled_chain(x0, a, b, 60, generator=torch.Generator().manual_seed(2))
    assert path.shape == (61, n) and torch.equal(path[0], x0)
    v = D.variance_recursion(a, b, float(x0.var()), 60)
    assert np.all(np.abs(path.var(dim=1).numpy() - v) < 5 * v * math.sqrt(2 / n))
    # the same generator state gives the same chain
    again = D.scaled_chain(x0, a, b, 60, generator=torch.Generator().manual_seed(2))
    assert torch.equal(path, again)


def test_noised_mixture_is_the_law_of_q_sample():
    """Exact q(x_t) of a 1-D mixture against scipy's quad of the density of sqrt(abar) x0 +
    sqrt(1 - abar) eps, at a few points: q(y) = int p0((y - s e) / a) / a phi(e) de with
    a = sqrt(abar), s = sqrt(1 - abar) (integrated over eps, smooth even when s is tiny)."""
    mix = GaussianMixture(torch.tensor([[-1.0], [2.0]], dtype=torch.float64),
                          torch.tensor([0.3, 0.5], dtype=torch.float64),
                          torch.tensor([0.4, 0.6], dtype=torch.float64))
    s = NoiseSchedule.linear(50)
    for t in (0, 17, 49):
        ab = float(s.alphas_cumprod[t])
        noised = D.noised_mixture(mix, s, t)
        for y in (-1.5, 0.0, 2.2):
            a, sd_noise = math.sqrt(ab), math.sqrt(1 - ab)

            def integrand(e):
                x0 = (y - sd_noise * e) / a
                return sum(w * stats.norm.pdf(x0, m, sd) for w, m, sd in ((0.4, -1.0, 0.3), (0.6, 2.0, 0.5))) \
                    / a * stats.norm.pdf(e)
            want = integrate.quad(integrand, -12, 12, limit=400, epsabs=1e-13)[0]
            got = noised.log_prob(torch.tensor([[y]], dtype=torch.float64)).exp().item()
            assert got == pytest.approx(want, rel=1e-8)
    with pytest.raises(ValueError, match="t: expected a 0-based step"):
        D.noised_mixture(mix, s, 50)


# ================================================================================================
# Notebook 04: the true reverse conditional q(x_{t-1} | x_t) of a mixture
# ================================================================================================
def _bayes_reverse_on_grid(weights, means, stds, schedule, t, xt, grid):
    """q(x_{t-1} | x_t) on ``grid`` (per dimension of a product grid) by Bayes' rule, normalised by
    the trapezoid rule: the noised mixture q(x_{t-1}) written out in NumPy from alphas_cumprod
    (the data at t = 0) times the likelihood N(x_t; sqrt(alpha_t) x_{t-1}, beta_t), with scipy."""
    ab_prev = 1.0 if t == 0 else float(schedule.alphas_cumprod[t - 1])
    a, b = float(schedule.alphas[t]), float(schedule.betas[t])
    pts = np.stack(np.meshgrid(*([grid] * len(xt)), indexing="ij"), axis=-1)      # (..., D)
    prior = np.zeros(pts.shape[:-1])
    for w, m, s in zip(weights, means, stds):
        sd = np.sqrt(ab_prev * np.asarray(s) ** 2 + 1 - ab_prev)
        prior += w * np.prod(stats.norm.pdf(pts, math.sqrt(ab_prev) * np.asarray(m), sd), axis=-1)
    like = np.prod(stats.norm.pdf(np.asarray(xt), math.sqrt(a) * pts, math.sqrt(b)), axis=-1)
    post = prior * like
    z = post
    for _ in range(len(xt)):
        z = integrate.trapezoid(z, grid, axis=0)
    return pts, post / z


@pytest.mark.parametrize("t", [0, 1, 7, 29])
def test_reverse_conditional_is_bayes_rule_1d(t):
    """The closed-form mixture against q(x_{t-1}) q(x_t | x_{t-1}) normalised by quadrature, at
    several x_t, on a coarse schedule (large steps: bimodal) and DDPM's fine one (t = 0: the data
    itself is the prior); densities to 1e-7 of the peak, and the integral of the closed form is 1."""
    weights, means, stds = [0.3, 0.7], [[-1.2], [0.9]], [[0.25], [0.4]]
    mix = GaussianMixture(torch.tensor(means, dtype=F64), torch.tensor(stds, dtype=F64)[:, 0],
                          torch.tensor(weights, dtype=F64))
    grid = np.linspace(-8, 8, 32_001)
    for schedule in (NoiseSchedule.cosine(30), NoiseSchedule.linear(1000)):
        for x in (-1.0, 0.0, 0.4, 2.5):
            rc = D.reverse_conditional(mix, schedule, t, torch.tensor([x], dtype=F64))
            _, want = _bayes_reverse_on_grid(weights, means, stds, schedule, t, [x], grid)
            got = rc.log_prob(torch.from_numpy(grid)[:, None]).exp().numpy()
            assert np.abs(got - want).max() < 1e-7 * want.max(), (t, x)
            assert integrate.trapezoid(got, grid) == pytest.approx(1.0, abs=1e-9)
            assert rc.weights.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_reverse_conditional_is_bayes_rule_2d():
    """A 2-D mixture with different stds per dimension, against Bayes' rule on a 2-D grid (the
    components are diagonal but the mixture couples the dimensions)."""
    weights, means = [0.5, 0.25, 0.25], [[-1.0, 0.5], [1.0, 1.0], [0.0, -1.5]]
    stds = [[0.3, 0.6], [0.5, 0.2], [0.4, 0.4]]
    mix = GaussianMixture(torch.tensor(means, dtype=F64), torch.tensor(stds, dtype=F64),
                          torch.tensor(weights, dtype=F64))
    schedule = NoiseSchedule.cosine(8)
    grid = np.linspace(-6, 6, 801)
    for t, xt in ((0, [0.3, -0.2]), (2, [0.0, 0.4]), (5, [-1.0, 1.2])):
        rc = D.reverse_conditional(mix, schedule, t, torch.tensor([xt], dtype=F64))
        pts, want = _bayes_reverse_on_grid(weights, means, stds, schedule, t, xt, grid)
        got = rc.log_prob(torch.from_numpy(pts.reshape(-1, 2))).exp().numpy().reshape(want.shape)
        assert np.abs(got - want).max() < 1e-6 * want.max(), t


def test_reverse_conditional_edges_and_errors():
    """Tiny steps (DDPM's beta_1 = 1e-4) give a finite, near-point-mass answer centred near
    x_t / sqrt(alpha); float32 in, float32 out; bad arguments are named."""
    mix = GaussianMixture(torch.tensor([[-1.0], [1.0]], dtype=F64), 0.2)
    s = NoiseSchedule.linear(1000)
    rc = D.reverse_conditional(mix, s, 0, torch.tensor([0.8], dtype=F64))
    assert torch.isfinite(rc.means).all() and torch.isfinite(rc.stds).all()
    mean = (rc.weights[:, None] * rc.means).sum(0)
    assert abs(mean.item() - 0.8 / math.sqrt(float(s.alphas[0]))) < 3e-3      # within ~ 0.3 std of a step
    assert D.reverse_conditional(mix.to(torch.float32), s, 5, torch.zeros(1)).means.dtype == torch.float32
    with pytest.raises(ValueError, match="t: expected a 0-based step"):
        D.reverse_conditional(mix, s, 1000, torch.zeros(1, dtype=F64))
    with pytest.raises(ValueError, match="xt: expected shape"):
        D.reverse_conditional(mix, s, 3, torch.zeros(2, 1, dtype=F64))
    with pytest.raises(TypeError, match="xt"):
        D.reverse_conditional(mix, s, 3, torch.zeros(1, dtype=torch.long))
    with pytest.raises(TypeError, match="mixture"):
        D.reverse_conditional("not a mixture", s, 3, torch.zeros(1, dtype=F64))


# ================================================================================================
# Notebook 05: the bound's weights, InDI, and posterior samples of a mixture
# ================================================================================================
@pytest.mark.parametrize("variance", ["small", "large"])
def test_vlb_weights_are_the_bounds_dependence_on_the_eps_error(variance):
    """vlb_term (Gaussian KLs / decoder NLL) of two models differs by lambda_t times the difference
    of their squared eps errors, at every step, to float64 precision: Ho et al. (2020), Eq. 12."""
    T, n = 12, 64
    s = NoiseSchedule.cosine(T)
    lam = D.vlb_weights(s, variance)
    assert lam.shape == (T,) and lam.dtype == F64 and bool((lam > 0).all())
    x0 = torch.randn(n, 3, generator=_gen(40), dtype=F64)
    m1 = lambda x, t: torch.tanh(x) + 0.01 * t[:, None]                  # noqa: E731
    m2 = lambda x, t: 0.3 * x - 0.2                                       # noqa: E731
    for k in range(T):
        t = torch.full((n,), k, dtype=torch.long)
        eps = torch.randn(n, 3, generator=_gen(41 + k), dtype=F64)
        xt = q_sample(s, x0, t, noise=eps)
        d_vlb = vlb_term(s, m1, x0, xt, t, variance=variance) - vlb_term(s, m2, x0, xt, t, variance=variance)
        d_err = ((eps - m1(xt, t)) ** 2).sum(1) - ((eps - m2(xt, t)) ** 2).sum(1)
        torch.testing.assert_close(d_vlb, lam[k] * d_err, rtol=1e-9, atol=1e-9)


def test_loss_simple_weights_weigh_each_examples_step():
    """weights=None is L_simple; weights multiply each example's mean squared error by w[t]."""
    T, n = 10, 500
    s = NoiseSchedule.linear(T, 0.01, 0.3)
    x0 = torch.randn(n, 2, generator=_gen(50), dtype=F64)
    seen = {}

    def model(xt, t):
        seen["xt"], seen["t"] = xt, t
        return 0.5 * xt

    w = torch.linspace(0.5, 3.0, T, dtype=F64)
    loss_w = loss_simple(s, model, x0, generator=_gen(51), weights=w)
    xt, t = seen["xt"], seen["t"]
    ab = s.alphas_cumprod[t][:, None]
    eps = (xt - ab.sqrt() * x0) / (1 - ab).sqrt()
    per = ((eps - 0.5 * xt) ** 2).mean(1)
    assert loss_w.item() == pytest.approx((w[t] * per).mean().item(), rel=1e-10)
    ones = loss_simple(s, model, x0, generator=_gen(51), weights=torch.ones(T, dtype=F64))
    assert ones.item() == pytest.approx(loss_simple(s, model, x0, generator=_gen(51)).item(), rel=1e-12)
    for bad in (torch.ones(T - 1), -torch.ones(T), [1.0] * T):
        with pytest.raises(ValueError, match="weights"):
            loss_simple(s, model, x0, weights=bad)


def _sigma(t):
    return 1 - 0.5 * t


def test_indi_interpolate_endpoints_and_noise():
    x0 = torch.randn(7, 2, generator=_gen(60), dtype=F64)
    y = torch.randn(7, 2, generator=_gen(61), dtype=F64)
    e = torch.randn(7, 2, generator=_gen(62), dtype=F64)
    assert torch.equal(D.indi_interpolate(x0, y, 0.0), x0)
    assert torch.equal(D.indi_interpolate(x0, y, 1.0), y)
    t = torch.rand(7, generator=_gen(63), dtype=F64)
    fs = lambda t: t * _sigma(t)                                          # noqa: E731
    ref = (1 - t[:, None]) * x0 + t[:, None] * y + (t * (1 - 0.5 * t))[:, None] * e
    torch.testing.assert_close(D.indi_interpolate(x0, y, t, fs, e), ref, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="t:"):
        D.indi_interpolate(x0, y, 1.5)
    with pytest.raises(ValueError, match="noise"):
        D.indi_interpolate(x0, y, 0.5, fs)


def _indi_mix1d():
    return GaussianMixture(torch.tensor([[-1.0], [0.7]], dtype=F64), torch.tensor([0.3, 0.5], dtype=F64),
                           torch.tensor([0.4, 0.6], dtype=F64))


@pytest.mark.parametrize("noisy", [False, True])
def test_indi_mixture_denoiser_by_quadrature_and_tweedie(noisy):
    """E[x0 | x_t] by quadrature over x0 (scipy); Tweedie (1-t) E[x0|x_t] = x_t + v_t grad log p_t(x_t)
    with p_t's score from the mixture's own score formula."""
    mix = _indi_mix1d()
    fs = (lambda t: t * _sigma(t)) if noisy else None
    den = D.indi_mixture_denoiser(mix, fs)
    w, mu, sd = mix.weights.numpy(), mix.means[:, 0].numpy(), mix.stds[:, 0].numpy()
    for t in (0.05, 0.3, 0.6, 0.95):
        v = t * t + (t * _sigma(t)) ** 2 if noisy else t * t
        xs = torch.tensor([[-1.3], [0.0], [0.4], [2.0]], dtype=F64)
        got = den(xs, t)
        for x, g in zip(xs[:, 0].tolist(), got[:, 0].tolist()):
            def joint(x0, x=x):
                prior = sum(wk * stats.norm.pdf(x0, mk, sk) for wk, mk, sk in zip(w, mu, sd))
                return prior * stats.norm.pdf(x, (1 - t) * x0, math.sqrt(v))
            num = integrate.quad(lambda z: z * joint(z), -10, 10, epsabs=1e-13, limit=200)[0]
            norm = integrate.quad(joint, -10, 10, epsabs=1e-13, limit=200)[0]
            assert g == pytest.approx(num / norm, rel=1e-7, abs=1e-9)
        score = D.indi_mixture_marginal(mix, t, fs).score(xs)
        torch.testing.assert_close((1 - t) * got, xs + v * score, rtol=1e-10, atol=1e-12)
    x = torch.randn(5, 1, generator=_gen(64), dtype=F64)
    torch.testing.assert_close(den(x, 1.0), (mix.weights @ mix.means).expand(5, 1))
    torch.testing.assert_close(den(x, torch.zeros(5, dtype=F64)), mix.posterior_mean(x, 0.0))


def test_indi_mixture_marginal_is_the_law_of_indi_interpolate():
    mix = _indi_mix1d()
    fs = lambda t: torch.sqrt(t) * _sigma(t)                              # noqa: E731
    n = 40_000
    for t in (0.0, 0.4, 1.0):
        x0 = mix.sample(n, generator=_gen(70))
        xt = D.indi_interpolate(x0, torch.randn(n, 1, generator=_gen(71), dtype=F64), t, fs,
                                torch.randn(n, 1, generator=_gen(72), dtype=F64))
        law = D.indi_mixture_marginal(mix, t, fs)
        m = (law.weights @ law.means)[0].item()
        m2 = (law.weights @ (law.means**2 + law.stds**2))[0].item()
        for got, ref, vals in ((xt.mean().item(), m, xt), ((xt**2).mean().item(), m2, xt**2)):
            assert abs(got - ref) < 5 * vals.std().item() / math.sqrt(n), (t, got, ref)


def test_indi_update_std_closed_forms_and_errors():
    """s_t = t sigma_t gives Delbracio & Milanfar's t' sqrt(sigma_t'^2 - sigma_t^2); s_t = sqrt(t) sigma_t
    gives sqrt(t') sqrt(sigma_t'^2 - (t'/t) sigma_t^2); and the step keeps the path: (t'/t)^2 s_t^2 + c^2 = s_t'^2."""
    for t, tn in ((1.0, 0.9), (0.5, 0.2), (0.3, 0.0)):
        c = D.indi_update_std(t, tn, lambda u: u * _sigma(u))
        assert c == pytest.approx(tn * math.sqrt(_sigma(tn) ** 2 - _sigma(t) ** 2), rel=1e-12, abs=1e-15)
        c = D.indi_update_std(t, tn, lambda u: torch.sqrt(u) * _sigma(u))
        assert c == pytest.approx(math.sqrt(tn) * math.sqrt(_sigma(tn) ** 2 - tn / t * _sigma(t) ** 2),
                                  rel=1e-12, abs=1e-15)
        assert D.indi_update_std(t, tn) == 0.0
    with pytest.raises(ValueError, match="t_next"):
        D.indi_update_std(0.2, 0.5)
    with pytest.raises(ValueError, match="forward_std"):           # noise that grows toward t = 0
        D.indi_update_std(0.5, 0.4, lambda u: u**2)


def test_indi_stochastic_step_with_the_true_x0_keeps_the_path_exactly():
    """One large step with the true x0 (not the denoiser): x_t' - (1-t')x0 - t'y has std s_t' (Monte Carlo)."""
    n, t, tn = 200_000, 0.8, 0.3
    fs = lambda u: torch.sqrt(u) * _sigma(u)                              # noqa: E731
    x0, y = torch.randn(n, 1, generator=_gen(80), dtype=F64), torch.randn(n, 1, generator=_gen(81), dtype=F64)
    xt = D.indi_interpolate(x0, y, t, fs, torch.randn(n, 1, generator=_gen(82), dtype=F64))
    c = D.indi_update_std(t, tn, fs)
    r = (t - tn) / t
    xn = (1 - r) * xt + r * x0 + c * torch.randn(n, 1, generator=_gen(83), dtype=F64)
    resid = (xn - (1 - tn) * x0 - tn * y) ** 2
    target = float(fs(torch.tensor(tn, dtype=F64))) ** 2
    assert abs(resid.mean().item() - target) < 5 * resid.std().item() / math.sqrt(n)


@pytest.mark.parametrize("noisy", [False, True])
def test_indi_sample_with_the_exact_denoiser_reproduces_gaussian_data(noisy):
    """Data N(0.5, 0.6^2): with many steps the iteration ends at the data's mean and variance
    (5 standard errors plus a stated discretization allowance of 0.01)."""
    mix = GaussianMixture(torch.tensor([[0.5]], dtype=F64), torch.tensor([0.6], dtype=F64))
    fs = (lambda u: torch.sqrt(u) * _sigma(u)) if noisy else None
    n = 20_000
    s1 = float(fs(torch.tensor(1.0, dtype=F64))) if noisy else 0.0
    x1 = torch.randn(n, 1, generator=_gen(90), dtype=F64) * math.sqrt(1 + s1**2)
    x = D.indi_sample(D.indi_mixture_denoiser(mix, fs), x1, 400, forward_std=fs, generator=_gen(91))
    se = 0.6 / math.sqrt(n)
    assert abs(x.mean().item() - 0.5) < 5 * se + 0.01
    assert abs(x.var().item() - 0.36) < 5 * 0.36 * math.sqrt(2 / n) + 0.01
    if noisy:                                                      # the inconsistent noise: far off
        bad = lambda t, tn: tn * math.sqrt(max(_sigma(tn) ** 2 - _sigma(t) ** 2, 0.0))  # noqa: E731
        xb = D.indi_sample(D.indi_mixture_denoiser(mix, fs), x1, 400, forward_std=fs, update_std=bad,
                           generator=_gen(91))
        assert abs(xb.var().item() - 0.36) > 20 * 0.36 * math.sqrt(2 / n)


def test_indi_sample_trajectory_and_errors():
    den = lambda x, t: 0.5 * x                                            # noqa: E731
    x1 = torch.randn(6, 2, generator=_gen(95), dtype=F64)
    out, path = D.indi_sample(den, x1, 4, trajectory=True)
    assert path.shape == (5, 6, 2) and torch.equal(path[0], x1) and torch.equal(path[-1], out)
    ref = x1.clone()
    for t, tn in ((1.0, 0.75), (0.75, 0.5), (0.5, 0.25), (0.25, 0.0)):
        r = (t - tn) / t
        ref = (1 - r) * ref + r * 0.5 * ref
    torch.testing.assert_close(out, ref, rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match="num_steps"):
        D.indi_sample(den, x1, 0)
    with pytest.raises(ValueError, match="denoiser"):
        D.indi_sample(lambda x, t: x[:, :1], x1, 3)


def test_indi_loss_is_minimized_by_the_exact_denoiser():
    """Orthogonality of the MMSE error: E[(x0 - D*(x_t)) h(x_t, t)] = 0 for any h, so adding h to D*
    raises the loss by E h^2 (paired Monte Carlo, 5 s.e.); and the loss reconstructs by hand."""
    mix = _indi_mix1d()
    den = D.indi_mixture_denoiser(mix)
    x0 = mix.sample(50_000, generator=_gen(100))
    seen = {}

    def rec(x, t):
        seen["x"], seen["t"] = x, t
        return den(x, t)

    loss = D.indi_loss(rec, x0, generator=_gen(101))
    xt, t = seen["x"], seen["t"]
    assert 0 <= t.min() and t.max() <= 1 and abs(t.mean().item() - 0.5) < 5 * math.sqrt(1 / 12 / len(t))
    err = x0 - den(xt, t)
    assert loss.item() == pytest.approx((err**2).mean().item(), rel=1e-12)
    h = torch.sin(3 * xt) * (1 - t[:, None])
    cross = (err * h)[:, 0]
    assert abs(cross.mean().item()) < 5 * cross.std().item() / math.sqrt(len(cross))


def test_mixture_posterior_sample_matches_the_posterior():
    """For fixed y, draws have the posterior's mean (posterior_mean) and variance (posterior_covariance),
    and their CDF matches the posterior's by quadrature (KS test); E||x - x_post||^2 = 2 E||x - E[x|y]||^2."""
    mix = _indi_mix1d()
    n, sigma = 40_000, 0.8
    for yv in (-0.5, 0.3, 1.5):
        y = torch.full((n, 1), yv, dtype=F64)
        xs = D.mixture_posterior_sample(mix, y, sigma, generator=_gen(110))[:, 0]
        m = mix.posterior_mean(y[:1], sigma)[0, 0].item()
        v = mix.posterior_covariance(y[:1], sigma)[0, 0, 0].item()
        assert abs(xs.mean().item() - m) < 5 * math.sqrt(v / n)
        assert abs(xs.var().item() - v) < 5 * xs.var().item() * math.sqrt(2 / n) * 2
        w, mu, sd = mix.weights.numpy(), mix.means[:, 0].numpy(), mix.stds[:, 0].numpy()
        post = lambda z: sum(wk * stats.norm.pdf(z, mk, sk) for wk, mk, sk in zip(w, mu, sd)) \
            * stats.norm.pdf(yv, z, sigma)                                # noqa: E731
        zz = np.linspace(-8, 8, 4001)
        cdf = np.cumsum(post(zz))
        cdf /= cdf[-1]
        assert stats.kstest(xs.numpy(), lambda q: np.interp(q, zz, cdf)).pvalue > 1e-4
    x = mix.sample(n, generator=_gen(111))
    y = x + sigma * torch.randn(n, 1, generator=_gen(112), dtype=F64)
    a = ((x - mix.posterior_mean(y, sigma)) ** 2)[:, 0]
    b = ((x - D.mixture_posterior_sample(mix, y, sigma, generator=_gen(113))) ** 2)[:, 0]
    d = b - 2 * a
    assert abs(d.mean().item()) < 5 * d.std().item() / math.sqrt(n)
    assert b.mean() > 1.5 * a.mean()
