"""Exercises of notebook 03 (course_lib/exercises/gan.py): references agree with independent oracles
(float64 definitions, scipy.stats, a brute-force loop over the protocol), pass their own check, and
wrong or naive implementations fail with a readable message."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import expit

from course_lib import grading
from course_lib.exercises import gan as ex

# --- references against independent oracles --------------------------------------------------------

def test_losses_reference_matches_float64_definition_and_extremes():
    for (real, fake), _ in grading.cases("gan_losses"):
        d, ns, sat = ex.gan_losses_reference(real, fake)
        assert all(v.dim() == 0 and torch.isfinite(v) for v in (d, ns, sat))
        r, f = real.numpy(), fake.numpy()
        # -log sigmoid(l) = logaddexp(0, -l) exactly, at any size of l
        want_d = np.mean(np.logaddexp(0, -r)) + np.mean(np.logaddexp(0, f))
        want_ns = np.mean(np.logaddexp(0, -f))
        want_sat = -np.mean(np.logaddexp(0, f))
        np.testing.assert_allclose([d.item(), ns.item(), sat.item()], [want_d, want_ns, want_sat], rtol=1e-12)
        # moderate logits: sigmoid then log agrees
        ok_r, ok_f = np.abs(r) < 30, np.abs(f) < 30
        np.testing.assert_allclose(np.log(expit(r[ok_r])), -np.logaddexp(0, -r[ok_r]), rtol=1e-10)
        np.testing.assert_allclose(np.log1p(-expit(f[ok_f])), -np.logaddexp(0, f[ok_f]), rtol=1e-10)
        assert (np.abs(r) == 1e4).any() and (np.abs(f) == 1e4).any()  # the extremes are exercised


def test_dstar_reference_matches_scipy_and_edges():
    for (lp, lq), _ in grading.cases("optimal_discriminator"):
        got = ex.optimal_discriminator_reference(lp, lq)
        assert got.shape == lp.shape and torch.isfinite(got).all()
        want = expit(lp.numpy() - lq.numpy())
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-300)
        p, q = np.exp(lp.numpy()[4:]), np.exp(lq.numpy()[4:])  # no underflow there
        np.testing.assert_allclose(got.numpy()[4:], p / (p + q), rtol=1e-9)
        assert got[3].item() == 0.5 and got[0].item() == pytest.approx(1.0)  # equal; 2000 nats apart
        naive = lp.exp() / (lp.exp() + lq.exp())
        assert torch.isnan(naive).any()  # the underflow edge is exercised


def test_dstar_reference_on_densities_from_scipy():
    x = np.linspace(-6, 6, 41)
    lp, lq = stats.norm.logpdf(x, 0, 1), stats.norm.logpdf(x, 1.0, 0.5)
    got = ex.optimal_discriminator_reference(torch.tensor(lp), torch.tensor(lq)).numpy()
    p, q = stats.norm.pdf(x, 0, 1), stats.norm.pdf(x, 1.0, 0.5)
    np.testing.assert_allclose(got, p / (p + q), rtol=1e-10)


def test_counts_reference_matches_brute_force_protocol():
    for (samples, means, std), kw in grading.cases("high_quality_counts"):
        got = ex.high_quality_counts_reference(samples, means, std, **kw)
        k = means.shape[0]
        want = [0] * k
        for x in samples.tolist():
            d = [math.dist(x, m) / std for m in means.tolist()]
            j = min(range(k), key=d.__getitem__)
            if d[j] < 3.0:
                want[j] += 1
        assert got.tolist() == want and got.dtype == torch.long
        assert want[-1] == 0  # a mode without samples is exercised


# --- wrong implementations fail, with readable messages ----------------------------------------------

def test_naive_sigmoid_then_log_fails_with_a_non_finite_message():
    def naive(real_logits, fake_logits):
        dr, df = torch.sigmoid(real_logits), torch.sigmoid(fake_logits)
        return (-torch.log(dr).mean() - torch.log(1 - df).mean(), -torch.log(df).mean(),
                torch.log(1 - df).mean())

    with pytest.raises(AssertionError, match="(?i)non-finite|inf"):
        grading.check("gan_losses", naive, verbose=False)


def test_swapped_generator_losses_fail():
    def swapped(real_logits, fake_logits):
        d, ns, sat = ex.gan_losses_reference(real_logits, fake_logits)
        return d, sat, ns

    with pytest.raises(AssertionError, match=r"output\[1\]"):
        grading.check("gan_losses", swapped, verbose=False)


def test_naive_density_ratio_fails_with_a_nan_message():
    def naive(log_p_data, log_p_model):
        p, q = log_p_data.exp(), log_p_model.exp()
        return p / (p + q)

    with pytest.raises(AssertionError, match="(?i)nan|non-finite"):
        grading.check("optimal_discriminator", naive, verbose=False)


def test_inverted_ratio_fails():
    def inverted(log_p_data, log_p_model):
        return torch.sigmoid(log_p_model - log_p_data)

    with pytest.raises(AssertionError, match="max abs difference"):
        grading.check("optimal_discriminator", inverted, verbose=False)


def test_non_strict_threshold_fails_with_a_hint():
    def non_strict(samples, means, std, threshold=3.0):
        d = torch.cdist(samples, means) / std
        best, nearest = d.min(1)
        return torch.bincount(nearest[best <= threshold], minlength=means.shape[0])

    with pytest.raises(AssertionError, match="strict"):
        grading.check("high_quality_counts", non_strict, verbose=False)


def test_counting_every_sample_fails():
    def all_samples(samples, means, std, threshold=3.0):
        return torch.bincount(torch.cdist(samples, means).argmin(1), minlength=means.shape[0])

    with pytest.raises(AssertionError, match="counts differ"):
        grading.check("high_quality_counts", all_samples, verbose=False)


def test_float_counts_fail_with_a_dtype_message():
    def floats(samples, means, std, threshold=3.0):
        return ex.high_quality_counts_reference(samples, means, std, threshold).double()

    with pytest.raises(AssertionError, match="dtype"):
        grading.check("high_quality_counts", floats, verbose=False)
