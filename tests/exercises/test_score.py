"""Exercises of notebook 06 (course_lib/exercises/score.py): references agree with course_lib.score
(used as the oracle on the same randomness), with hand computations and with the stationary law of
the discretized chain, pass their own check, and wrong implementations fail."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import grading, score
from course_lib.exercises import score as ex

F64 = torch.float64


# --- references against course_lib.score with the same randomness ---------------------------------

def _stepwise_noise(generator, levels, steps, shape):
    """The draws annealed_langevin_dynamics makes, one (N, D) step at a time, as (L, K, N, D)."""
    return torch.stack([torch.stack([torch.randn(shape, generator=generator, dtype=F64) for _ in range(steps)])
                        for _ in range(levels)])


def test_annealed_langevin_matches_course_lib_with_the_same_draws():
    finals = set()
    for (f, x, sigmas, eta, noise), kw in grading.cases("annealed_langevin", num_cases=10):
        levels, steps = noise.shape[:2]
        z = _stepwise_noise(torch.Generator().manual_seed(5), levels, steps, x.shape)
        want = score.annealed_langevin_dynamics(f, x, sigmas, eta, steps, generator=torch.Generator().manual_seed(5),
                                                trajectory=True, **kw)
        got = ex.annealed_langevin_reference(f, x, sigmas, eta, z, **kw)
        torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got[1], want[1], rtol=1e-12, atol=1e-12)
        assert got[1].shape == (levels + 1, *x.shape) and torch.equal(got[1][0], x)
        finals.add(kw["final_denoise"])
        assert torch.isfinite(ex.annealed_langevin_reference(f, x, sigmas, eta, noise, **kw)[0]).all()
    assert finals == {False, True}


def test_annealed_langevin_reference_by_hand_and_on_a_gaussian():
    # one level, one step: x + eta s + sqrt(2 eta) z; the final step adds sigma_L^2 s (Tweedie)
    f = ex.GaussianScore(torch.tensor([1.0], dtype=F64), torch.tensor([0.5], dtype=F64))
    x, z = torch.tensor([[2.0], [-1.0]], dtype=F64), torch.tensor([[[[0.3], [-0.7]]]], dtype=F64)
    sig = torch.tensor([0.2], dtype=F64)
    one = x + 0.01 * f(x, 0.2) + math.sqrt(0.02) * z[0, 0]
    torch.testing.assert_close(ex.annealed_langevin_reference(f, x, sig, 0.01, z)[0], one)
    torch.testing.assert_close(ex.annealed_langevin_reference(f, x, sig, 0.01, z, final_denoise=True)[0],
                               one + 0.04 * f(one, 0.2))
    # N(m, c) data: the chain at the last level sigma_L targets N(m, c + sigma_L^2), inflated by the
    # discretization to v / (1 - eta / (2 v)) (the derivation of notebook 06); 20000 chains
    m_, c_ = 1.0, 0.5
    f = ex.GaussianScore(torch.tensor([m_], dtype=F64), torch.tensor([c_], dtype=F64))
    sig = torch.tensor([2.0, 1.0, 0.3], dtype=F64)
    n, eta = 20000, 0.01
    g = torch.Generator().manual_seed(1)
    xs = ex.annealed_langevin_reference(f, torch.zeros(n, 1, dtype=F64), sig, eta,
                                        torch.randn(3, 400, n, 1, generator=g, dtype=F64))[0]
    v = c_ + 0.3 ** 2
    v_disc = v / (1 - eta / (2 * v))
    assert abs(xs.mean().item() - m_) < 5 * math.sqrt(v_disc / n)
    assert abs(xs.var().item() - v_disc) < 5 * v_disc * math.sqrt(2 / n)


def test_dsm_loss_matches_course_lib():
    for (s, x, x_tilde, sigma), _ in grading.cases("dsm_loss"):
        eps = (x_tilde - x) / sigma
        g = torch.Generator().manual_seed(3)
        eps_lib = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
        # course_lib draws its own eps: feed it a score that equals s at its x~
        got_lib = score.denoising_score_matching_loss(lambda v: s + 0 * v, x, sigma, generator=g)
        want = ex.dsm_loss_reference(s, x, x + sigma * eps_lib, sigma)
        torch.testing.assert_close(got_lib, want, rtol=1e-10, atol=1e-12)
        assert torch.allclose(x + sigma * eps, x_tilde)


def test_sure_soft_threshold_reference_closed_form():
    for (y, sigma, thr), _ in grading.cases("sure_soft_threshold"):
        f = ex.soft_threshold(y, thr)
        div = (y.abs() > thr).sum(1).to(F64)
        want = ((f - y) ** 2).sum(1) - y.shape[1] * sigma ** 2 + 2 * sigma ** 2 * div
        torch.testing.assert_close(ex.sure_soft_threshold_reference(y, sigma, thr), want)


# --- wrong implementations fail ----------------------------------------------------------------------

def _annealed_variant(eta_by_sigma=True, factor_two=True, final_uses_first=False):
    def fn(score_fn, x, sigmas, step_size, noise, final_denoise=False):
        s_list, path = sigmas.tolist(), [x]
        for i, sigma in enumerate(s_list):
            eta = step_size * (sigma / s_list[-1]) ** 2 if eta_by_sigma else step_size
            for k in range(noise.shape[1]):
                x = x + eta * score_fn(x, sigma) + math.sqrt((2 if factor_two else 1) * eta) * noise[i, k]
            path.append(x)
        if final_denoise:
            last = s_list[0] if final_uses_first else s_list[-1]
            x = x + last ** 2 * score_fn(x, last)
        return x, torch.stack(path)
    return fn


def test_annealed_langevin_wrong_implementations_fail():
    grading.check("annealed_langevin", _annealed_variant(), verbose=False)       # the variant is right

    def final_in_path(*args, **kwargs):          # the denoised points stored as the last level's state
        x, path = _annealed_variant()(*args, **kwargs)
        return x, torch.cat([path[:-1], x[None]])

    with pytest.raises(AssertionError, match=r"output\[1\]"):
        grading.check("annealed_langevin", final_in_path, verbose=False)
    for wrong in (_annealed_variant(eta_by_sigma=False), _annealed_variant(factor_two=False),
                  _annealed_variant(final_uses_first=True)):
        with pytest.raises(AssertionError, match="max abs difference"):
            grading.check("annealed_langevin", wrong, verbose=False)


def test_dsm_with_sigma_instead_of_sigma_squared_fails():
    def wrong(s, x, xt, sigma):
        return 0.5 * ((s + (xt - x) / sigma) ** 2).sum(1).mean()

    with pytest.raises(AssertionError):
        grading.check("dsm_loss", wrong, verbose=False)


def test_dsm_mean_over_dims_fails():
    def wrong(s, x, xt, sigma):
        return 0.5 * ((s + (xt - x) / sigma ** 2) ** 2).mean()

    with pytest.raises(AssertionError):
        grading.check("dsm_loss", wrong, verbose=False)


def test_sure_without_divergence_fails():
    def wrong(y, sigma, thr):
        f = ex.soft_threshold(y, thr)
        return ((f - y) ** 2).sum(1) - y.shape[1] * sigma ** 2

    with pytest.raises(AssertionError):
        grading.check("sure_soft_threshold", wrong, verbose=False)


def test_sure_with_wrong_sign_fails():
    def wrong(y, sigma, thr):
        f = ex.soft_threshold(y, thr)
        div = (y.abs() > thr).sum(1).to(y.dtype)
        return ((f - y) ** 2).sum(1) - y.shape[1] * sigma ** 2 - 2 * sigma ** 2 * div

    with pytest.raises(AssertionError):
        grading.check("sure_soft_threshold", wrong, verbose=False)
