"""Exercises of notebooks 04 and 05 (course_lib/exercises/diffusion.py): the references agree with NumPy
float64 formulas written from the paper (independent of course_lib.diffusion), the inputs contain the
edges (t = 0, t = T-1, the cosine schedule's last step), the references pass their own check, the
stub fails as "not attempted", and typical mistakes fail with a readable mismatch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import grading
from course_lib.exercises import diffusion as ex

NAMES = ["q_sample", "q_posterior"]


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


def _ddpm_sample_numpy(model, x_T, betas, noise):
    """Algorithm 2 written from the paper in NumPy float64 (Eq. 11 mean, sigma^2 = beta~)."""
    b = betas.numpy()
    ab, ab_prev = _abar(betas)
    x = x_T.numpy().copy()
    for t in range(len(b) - 1, -1, -1):
        eps = model(torch.from_numpy(x), torch.full((x.shape[0],), t, dtype=torch.long)).numpy()
        x = (x - b[t] / np.sqrt(1 - ab[t]) * eps) / np.sqrt(1 - b[t])
        if t > 0:
            x = x + np.sqrt(b[t] * (1 - ab_prev[t]) / (1 - ab[t])) * noise[t].numpy()
    return x


def test_ddpm_sample_reference_matches_numpy_and_covers_the_schedules():
    seen = set()
    for (model, x_T, betas, noise), _ in grading.cases("ddpm_sample", num_cases=8):
        got = ex.ddpm_sample_reference(model, x_T, betas, noise)
        np.testing.assert_allclose(got.numpy(), _ddpm_sample_numpy(model, x_T, betas, noise), rtol=1e-9, atol=1e-11)
        # noise[0] is never used
        noise2 = noise.clone()
        noise2[0] = 1e6
        assert torch.equal(ex.ddpm_sample_reference(model, x_T, betas, noise2), got)
        seen.add("cosine end" if betas[-1] > 0.9 else f"T={betas.shape[0]}")
    assert "cosine end" in seen and "T=1000" in seen


def test_ddpm_sample_reference_samples_a_gaussian():
    """With the exact eps* of N(0, 1) data, eps*(x, t) = sqrt(1 - abar_t) x, the reverse chain maps
    N(0, 1) to N(0, 1) up to the discretization (cosine T = 100): the sample mean and variance of
    20000 chains are within 5 standard errors of 0 and 1 (plus 0.02 for the discretization)."""
    from course_lib import diffusion as D

    betas = D.NoiseSchedule.cosine(100).betas.double()
    scale = torch.sqrt(1 - torch.cumprod(1 - betas, 0))
    g = torch.Generator().manual_seed(0)
    n = 20000
    x_T = torch.randn(n, 1, generator=g, dtype=torch.float64)
    x = ex.ddpm_sample_reference(lambda x, t: scale[t][:, None] * x, x_T, betas,
                                 torch.randn(100, n, 1, generator=g, dtype=torch.float64))
    assert abs(x.mean().item()) < 5 / n ** 0.5
    assert abs(x.var().item() - 1) < 5 * (2 / n) ** 0.5 + 0.02


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

    def sampler(large=False, noise_at_zero=False, one_based_model=False):
        def fn(model, x_T, betas, noise):
            ab = torch.cumprod(1 - betas, 0)
            ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
            x = x_T
            for t in reversed(range(betas.shape[0])):
                step = torch.full((x.shape[0],), t + one_based_model, dtype=torch.long).clamp(max=len(betas) - 1)
                x = (x - betas[t] / (1 - ab[t]).sqrt() * model(x, step)) / (1 - betas[t]).sqrt()
                var = betas[t] if large else betas[t] * (1 - ab_prev[t]) / (1 - ab[t])
                if t > 0 or noise_at_zero:
                    x = x + var.sqrt() * noise[t]
            return x
        return fn

    grading.check("ddpm_sample", sampler(), verbose=False)     # the variants below differ in one place
    for name, fn in (("q_sample", one_based), ("q_posterior", seed_001_variance),
                     ("ddpm_sample", sampler(large=True)), ("ddpm_sample", sampler(noise_at_zero=True, large=True)),
                     ("ddpm_sample", sampler(one_based_model=True))):
        with pytest.raises(AssertionError, match="max abs difference|differ"):
            grading.check(name, fn, verbose=False)
