"""Exercises of notebook 05 (course_lib/exercises/score.py): references agree with course_lib.score
(used as the oracle on the same randomness), pass their own check, and wrong implementations fail."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import grading, score
from course_lib.exercises import score as ex

F64 = torch.float64


# --- references against course_lib.score with the same randomness ---------------------------------

def test_langevin_step_matches_langevin_dynamics():
    for (x, s, eta, _), _ in grading.cases("langevin_step"):
        g = torch.Generator().manual_seed(7)
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=F64)
        got = ex.langevin_step_reference(x, s, eta, z)
        want = score.langevin_dynamics(lambda v: s, x, eta, 1, generator=g)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


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


def test_tweedie_reference_is_the_formula():
    for (y, s, sigma), _ in grading.cases("tweedie_denoise"):
        torch.testing.assert_close(ex.tweedie_denoise_reference(y, s, sigma), y + sigma ** 2 * s)


def test_sure_soft_threshold_reference_closed_form():
    for (y, sigma, thr), _ in grading.cases("sure_soft_threshold"):
        f = ex.soft_threshold(y, thr)
        div = (y.abs() > thr).sum(1).to(F64)
        want = ((f - y) ** 2).sum(1) - y.shape[1] * sigma ** 2 + 2 * sigma ** 2 * div
        torch.testing.assert_close(ex.sure_soft_threshold_reference(y, sigma, thr), want)


# --- wrong implementations fail ----------------------------------------------------------------------

def test_langevin_without_factor_two_fails():
    with pytest.raises(AssertionError):
        grading.check("langevin_step", lambda x, s, eta, z: x + eta * s + math.sqrt(eta) * z,
                      verbose=False)


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


def test_tweedie_with_sigma_not_squared_fails():
    with pytest.raises(AssertionError):
        grading.check("tweedie_denoise", lambda y, s, sigma: y + sigma * s, verbose=False)


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
