"""Exercises of notebook 04 (course_lib/exercises/diffusion.py): the references agree with NumPy
float64 formulas written from the paper (independent of course_lib.diffusion), the inputs contain the
edges (t = 0, t = T-1, the cosine schedule's last step), the references pass their own check, the
stub fails as "not attempted", and typical mistakes fail with a readable mismatch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import grading
from course_lib.exercises import diffusion as ex

NAMES = ["q_sample", "q_posterior", "predict_x0_from_eps", "ddpm_step"]


def _abar(betas):
    """abar_t and abar_{t-1} (1 at index 0) in NumPy float64, from the betas alone."""
    ab = np.cumprod(1.0 - betas.numpy())
    return ab, np.concatenate([[1.0], ab[:-1]])


def test_inputs_cover_the_edges():
    seen_cosine_end = False
    for name in NAMES:
        for args, _ in grading.cases(name):
            betas = args[-1]
            t = [a for a in args if isinstance(a, torch.Tensor) and a.dtype == torch.long][0]
            T = betas.shape[0]
            assert (t == 0).any() and (t == T - 1).any()
            assert betas.dtype == torch.float64 and ((betas > 0) & (betas < 1)).all()
            seen_cosine_end |= bool(betas[-1] > 0.9)          # cosine: last beta clipped at 0.999
    assert seen_cosine_end


def test_q_sample_reference_matches_numpy():
    for x0, t, eps, betas in [args for args, _ in grading.cases("q_sample")]:
        ab = _abar(betas)[0][t.numpy()][:, None]
        np.testing.assert_allclose(ex.q_sample_reference(x0, t, eps, betas).numpy(),
                                   np.sqrt(ab) * x0.numpy() + np.sqrt(1 - ab) * eps.numpy(), rtol=1e-10)


def test_q_posterior_reference_matches_numpy_and_bayes_in_1d():
    for x0, xt, t, betas in [args for args, _ in grading.cases("q_posterior")]:
        ab, ab_prev = (a[t.numpy()][:, None] for a in _abar(betas))
        b = betas.numpy()[t.numpy()][:, None]
        mean, var = ex.q_posterior_reference(x0, xt, t, betas)
        want_var = b * (1 - ab_prev) / (1 - ab)
        want_mean = (np.sqrt(ab_prev) * b * x0.numpy() + np.sqrt(1 - b) * (1 - ab_prev) * xt.numpy()) / (1 - ab)
        np.testing.assert_allclose(var.numpy(), np.broadcast_to(want_var, var.shape), rtol=1e-9, atol=1e-300)
        np.testing.assert_allclose(mean.numpy(), want_mean, rtol=1e-9, atol=1e-12)
        assert (var[t == 0] == 0).all()
        torch.testing.assert_close(mean[t == 0], x0[t == 0])
    # Bayes' rule by precision addition, one case: 1/var = alpha/beta + 1/(1 - abar_prev)
    x0, xt, t, betas = grading.cases("q_posterior")[0][0]
    ab, ab_prev = _abar(betas)
    k = int(t[4])
    assert k > 0
    a, b = 1 - betas[k].item(), betas[k].item()
    prec = a / b + 1 / (1 - ab_prev[k])
    m = (np.sqrt(a) / b * xt[4].numpy() + np.sqrt(ab_prev[k]) / (1 - ab_prev[k]) * x0[4].numpy()) / prec
    mean, var = ex.q_posterior_reference(x0, xt, t, betas)
    np.testing.assert_allclose(var[4].numpy(), 1 / prec, rtol=1e-9)
    np.testing.assert_allclose(mean[4].numpy(), m, rtol=1e-8)


def test_predict_x0_and_ddpm_step_references_match_numpy():
    for xt, t, eps, betas in [args for args, _ in grading.cases("predict_x0_from_eps")]:
        ab = _abar(betas)[0][t.numpy()][:, None]
        np.testing.assert_allclose(ex.predict_x0_from_eps_reference(xt, t, eps, betas).numpy(),
                                   (xt.numpy() - np.sqrt(1 - ab) * eps.numpy()) / np.sqrt(ab), rtol=1e-9)
    for xt, t, eps_pred, z, betas in [args for args, _ in grading.cases("ddpm_step")]:
        ab, ab_prev = (a[t.numpy()][:, None] for a in _abar(betas))
        b = betas.numpy()[t.numpy()][:, None]
        mean = (xt.numpy() - b / np.sqrt(1 - ab) * eps_pred.numpy()) / np.sqrt(1 - b)      # Eq. 11
        sigma = np.sqrt(b * (1 - ab_prev) / (1 - ab)) * (t.numpy() != 0)[:, None]
        np.testing.assert_allclose(ex.ddpm_step_reference(xt, t, eps_pred, z, betas).numpy(),
                                   mean + sigma * z.numpy(), rtol=1e-8, atol=1e-10)


def test_typical_mistakes_fail_with_a_readable_message():
    def one_based(x0, t, eps, betas):                  # the paper's t used as the array index
        ab = torch.cumprod(1 - betas, 0)[(t + 1).clamp(max=betas.shape[0] - 1)][:, None]
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps

    def seed_001_variance(x0, xt, t, betas):           # (1 - sqrt(abar_{t-1})) as printed in seed 001
        ab = torch.cumprod(1 - betas, 0)
        ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
        a_, ap, b = ab[t][:, None], ab_prev[t][:, None], betas[t][:, None]
        mean = ap.sqrt() * b / (1 - a_) * x0 + (1 - b).sqrt() * (1 - ap) / (1 - a_) * xt
        return mean, (b * (1 - ap.sqrt()) / (1 - a_)).expand_as(x0)

    def beta_noise(xt, t, eps_pred, z, betas):         # sigma^2 = beta_t, noise kept at t = 0
        ab = torch.cumprod(1 - betas, 0)[t][:, None]
        b = betas[t][:, None]
        return (xt - b / (1 - ab).sqrt() * eps_pred) / (1 - b).sqrt() + b.sqrt() * z

    for name, fn in (("q_sample", one_based), ("q_posterior", seed_001_variance), ("ddpm_step", beta_noise)):
        with pytest.raises(AssertionError, match="max abs difference|differ"):
            grading.check(name, fn, verbose=False)
