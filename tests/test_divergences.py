"""Tests of course_lib.divergences (notebook 00's mathematics) against independent references:
adaptive quadrature (scipy.integrate.quad), scipy.stats densities, closed forms, and an independent
optimisation (Nelder-Mead on a quad objective)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.optimize import minimize
from scipy.stats import norm

from course_lib import divergences, toy

F64 = torch.float64


def _bimodal(d, w):
    """Notebook 00's target w N(-d/2, 1) + (1 - w) N(d/2, 1)."""
    return toy.bimodal_1d(d, std=1.0, weights=torch.tensor([w, 1 - w], dtype=F64), dtype=F64)


def _gaussian(mean, std):
    return toy.GaussianMixture(torch.tensor([[mean]], dtype=F64), torch.tensor([std], dtype=F64))


def _p(x, d, w):
    return w * norm.pdf(x, -d / 2, 1) + (1 - w) * norm.pdf(x, d / 2, 1)


def _log_p(x, d, w):
    return np.logaddexp(math.log(w) + norm.logpdf(x, -d / 2, 1), math.log(1 - w) + norm.logpdf(x, d / 2, 1))


def _log_density(p, x):
    return p.log_prob(x[:, None])


# --- divergences of 1-D densities by quadrature -----------------------------------------------------


@pytest.mark.parametrize("m1,s1,m2,s2", [(0.0, 1.0, 1.0, 1.0), (-2.0, 0.5, 1.0, 2.0), (3.0, 3.0, 0.0, 0.2)])
def test_kl_of_two_gaussians_matches_closed_form(m1, s1, m2, s2):
    p, q = _gaussian(m1, s1), _gaussian(m2, s2)
    x = divergences.quadrature_grid(p, q)
    got = divergences.kl_divergence_1d(_log_density(p, x), _log_density(q, x), x)
    want = math.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5
    assert abs(got - want) < 1e-9 * max(1.0, want)


@pytest.mark.parametrize("d,w,shift,scale", [(0.0, 0.5, 0.0, 1.0), (4.0, 0.3, 1.0, 2.0), (8.0, 0.8, -3.0, 0.5)])
def test_kl_and_js_of_a_mixture_match_adaptive_quadrature(d, w, shift, scale):
    p, q = _bimodal(d, w), _gaussian(shift, scale)
    x = divergences.quadrature_grid(p, q)
    lp, lq = _log_density(p, x), _log_density(q, x)
    qd = norm(shift, scale)
    lo, hi = float(x[0]), float(x[-1])
    pts = sorted({-d / 2, d / 2, shift})
    want_kl = quad(lambda t: _p(t, d, w) * (_log_p(t, d, w) - qd.logpdf(t)), lo, hi, points=pts, limit=400)[0]

    def log_m(t):
        return np.logaddexp(_log_p(t, d, w), qd.logpdf(t)) - math.log(2)

    want_js = 0.5 * quad(lambda t: _p(t, d, w) * (_log_p(t, d, w) - log_m(t)), lo, hi, points=pts, limit=400)[0] \
        + 0.5 * quad(lambda t: qd.pdf(t) * (qd.logpdf(t) - log_m(t)), lo, hi, points=pts, limit=400)[0]
    assert abs(divergences.kl_divergence_1d(lp, lq, x) - want_kl) < 1e-7
    assert abs(divergences.js_divergence_1d(lp, lq, x) - want_js) < 1e-7
    assert 0.0 <= divergences.js_divergence_1d(lp, lq, x) <= math.log(2) + 1e-12
    assert divergences.js_divergence_1d(lp, lq, x) == pytest.approx(divergences.js_divergence_1d(lq, lp, x),
                                                                    abs=1e-15)


def test_js_of_disjoint_densities_is_log_2_and_zero_densities_give_no_nan():
    p, q = _gaussian(0.0, 1.0), _gaussian(40.0, 1.0)
    x = divergences.quadrature_grid(p, q)
    lp, lq = _log_density(p, x), _log_density(q, x)
    assert abs(divergences.js_divergence_1d(lp, lq, x) - math.log(2)) < 1e-9
    # a density that is exactly zero (log = -inf) on part of the grid: 0 log 0 = 0, no NaN
    lz = torch.where(x < 20, lp, torch.full_like(lp, -math.inf))
    assert math.isfinite(divergences.js_divergence_1d(lz, lq, x))
    assert math.isfinite(divergences.kl_divergence_1d(lz, lp, x))
    assert divergences.kl_divergence_1d(lp, lz, x) == math.inf  # q = 0 where p > 0


def test_quadrature_grid_covers_every_component():
    p, q = _bimodal(6.0, 0.5), _gaussian(10.0, 0.5)
    x = divergences.quadrature_grid(p, q, num_points=101, num_stds=5.0)
    assert x.shape == (101,) and x.dtype == F64
    assert float(x[0]) == pytest.approx(-3.0 - 5.0) and float(x[-1]) == pytest.approx(10.0 + 2.5)


@pytest.mark.parametrize("call,match", [
    (lambda: divergences.kl_divergence_1d(torch.zeros(3), torch.zeros(4), torch.arange(3.0)), "log_q"),
    (lambda: divergences.js_divergence_1d(torch.zeros(3), torch.zeros(3), torch.tensor([0.0, 2.0, 1.0])), "x"),
    (lambda: divergences.kl_divergence_1d(torch.tensor([0.0, math.nan]), torch.zeros(2), torch.arange(2.0)), "log_p"),
    (lambda: divergences.kl_divergence_1d(torch.zeros(1), torch.zeros(1), torch.zeros(1)), "x"),
    (lambda: divergences.quadrature_grid(), "densities"),
    (lambda: divergences.quadrature_grid(toy.grid_mixture()), "1-D"),
    (lambda: divergences.reverse_kl(_bimodal(2.0, 0.5), 0.0, 0.0), "std"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- forward (moment-matching) and reverse KL fits -----------------------------------------------


@pytest.mark.parametrize("d,w", [(0.0, 0.5), (3.0, 0.3), (8.0, 0.8)])
def test_forward_fit_is_the_mixture_moments(d, w):
    mean = quad(lambda x: x * _p(x, d, w), -np.inf, np.inf)[0]
    var = quad(lambda x: (x - mean) ** 2 * _p(x, d, w), -np.inf, np.inf)[0]
    mu, sigma = divergences.forward_kl_fit(_bimodal(d, w))
    assert abs(mu - mean) < 1e-8 and abs(sigma - math.sqrt(var)) < 1e-8
    # notebook 00's closed form: mean (1 - 2w) d/2, variance 1 + w (1 - w) d^2
    assert abs(mu - (1 - 2 * w) * d / 2) < 1e-12 and abs(sigma ** 2 - (1 + w * (1 - w) * d * d)) < 1e-12


def test_forward_fit_minimises_the_forward_kl():
    """No other Gaussian has a smaller KL(p || q) (quadrature), e.g. nudged mean or std."""
    p = _bimodal(5.0, 0.3)
    mu, sigma = divergences.forward_kl_fit(p)
    x = divergences.quadrature_grid(p, _gaussian(mu, 3 * sigma))

    def kl(m, s):
        return divergences.kl_divergence_1d(_log_density(p, x), _log_density(_gaussian(m, s), x), x)

    best = kl(mu, sigma)
    for dm, ds in ((0.05, 0), (-0.05, 0), (0, 0.05), (0, -0.05)):
        assert kl(mu + dm, sigma + ds) > best


@pytest.mark.parametrize("mu,sigma,d,w", [(0.0, 1.0, 4.0, 0.5), (-1.5, 0.3, 6.0, 0.2), (2.0, 3.0, 2.0, 0.7)])
def test_reverse_kl_matches_adaptive_quadrature(mu, sigma, d, w):
    got = divergences.reverse_kl(_bimodal(d, w), mu, sigma)
    q = norm(mu, sigma)
    want = quad(lambda x: q.pdf(x) * (q.logpdf(x) - _log_p(x, d, w)), mu - 15 * sigma,
                mu + 15 * sigma, points=[mu], limit=200)[0]
    assert abs(got - want) < 1e-6  # Gauss-Hermite converges slowly for wide q; ample for a plot


@pytest.mark.parametrize("mu,sigma,d,w,std", [(0.0, 3.47, 8.0, 0.5, 1.0), (0.0, 4.3, 8.0, 0.3, 0.5),
                                             (1.0, 20.0, 8.0, 0.5, 0.2)])
def test_reverse_kl_of_a_wide_q_over_narrow_separated_modes(mu, sigma, d, w, std):
    """Where log p bends sharply between the modes (a Gauss-Hermite rule of 160 nodes was 0.01-0.9
    nats off here): against a dense trapezoid rule in NumPy."""
    p = toy.bimodal_1d(d, std=std, weights=torch.tensor([w, 1 - w], dtype=F64), dtype=F64)
    x = np.linspace(mu - 14 * sigma, mu + 14 * sigma, 2_000_001)
    log_p = np.logaddexp(norm.logpdf(x, -d / 2, std) + math.log(w), norm.logpdf(x, d / 2, std) + math.log(1 - w))
    want = np.trapezoid(norm.pdf(x, mu, sigma) * (norm.logpdf(x, mu, sigma) - log_p), x)
    assert divergences.reverse_kl(p, mu, sigma) == pytest.approx(want, rel=1e-10, abs=1e-10)


def test_reverse_fit_locks_onto_the_heavier_mode_when_far_apart():
    fits = divergences.reverse_kl_fits(_bimodal(10.0, 0.3))
    assert len(fits) == 3  # one start per mode, one on the forward fit
    mu, sigma, kl = min(fits, key=lambda f: f.kl)
    assert abs(mu - 5.0) < 1e-3 and abs(sigma - 1.0) < 1e-3
    assert abs(kl + math.log(0.7)) < 1e-3  # KL(q || p) ~ -log(weight of the mode)

    # independent optimisation of the same objective by Nelder-Mead with quad
    def obj(params):
        q = norm(params[0], math.exp(params[1]))
        return quad(lambda x: q.pdf(x) * (q.logpdf(x) - _log_p(x, 10.0, 0.3)),
                    params[0] - 12 * q.std(), params[0] + 12 * q.std(), limit=200)[0]
    res = minimize(obj, x0=[4.0, 0.2], method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-10})
    assert abs(res.x[0] - mu) < 1e-3 and abs(math.exp(res.x[1]) - sigma) < 1e-3


def test_reverse_fit_covers_when_modes_overlap():
    fits = divergences.reverse_kl_fits(_bimodal(2.0, 0.5))
    for mu, sigma, _ in fits:
        assert abs(mu) < 1e-4 and sigma < math.sqrt(2)  # narrower than the forward fit


def test_reverse_fits_from_given_starts():
    fits = divergences.reverse_kl_fits(_bimodal(10.0, 0.5), inits=[(-4.0, 2.0)])
    assert len(fits) == 1 and abs(fits[0].mean + 5.0) < 1e-3


def test_gaussian_fits_recover_the_forward_and_reverse_fits():
    """gaussian_fits with the forward KL finds the moment-matching closed form; with the reverse KL on a
    well-separated mixture it locks onto each mode as reverse_kl_fits does (an independent quadrature)."""
    p = toy.bimodal_1d(8.0, 1.0, weights=torch.tensor([0.3, 0.7], dtype=torch.float64), dtype=torch.float64)
    mean, std = divergences.forward_kl_fit(p)
    (fwd,) = divergences.gaussian_fits(p, lambda lp, lq, x: divergences.kl_divergence_1d(lp, lq, x),
                                       inits=[(1.0, 2.0)])
    assert abs(fwd.mean - mean) < 1e-4 and abs(fwd.std - std) < 1e-4
    starts = [(-4.0, 1.0), (4.0, 1.0)]
    rev = divergences.gaussian_fits(p, lambda lp, lq, x: divergences.kl_divergence_1d(lq, lp, x), inits=starts)
    ref = divergences.reverse_kl_fits(p, inits=starts)
    for got, want in zip(rev, ref):
        assert abs(got.mean - want.mean) < 1e-3 and abs(got.std - want.std) < 1e-3 and abs(got.kl - want.kl) < 1e-6


def test_gaussian_fits_bad_input():
    p = toy.bimodal_1d(4.0, 1.0, dtype=torch.float64)
    with pytest.raises(TypeError, match="divergence"):
        divergences.gaussian_fits(p, "kl")
    with pytest.raises(ValueError, match="std_bounds"):
        divergences.gaussian_fits(p, divergences.js_divergence_1d, std_bounds=(1.0, 0.5))
    with pytest.raises(ValueError, match="std"):
        divergences.gaussian_fits(p, divergences.js_divergence_1d, inits=[(0.0, -1.0)])
