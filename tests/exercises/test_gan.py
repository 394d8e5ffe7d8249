"""Exercises of notebook 03 (course_lib/exercises/gan.py): references agree with independent oracles
(float64 definitions, scipy.stats, a brute-force loop over the protocol, finite differences of the
critic), pass their own check, and wrong or naive implementations fail with a readable message."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import expit

from course_lib import gan, grading
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


# --- the WGAN-GP critic loss (multi-step) -----------------------------------------------------------

def _penalty_by_finite_differences(critic, x_hat, h=1e-6):
    """(||grad f(x_hat_i)|| - 1)^2 averaged, the gradient by central differences (no autograd)."""
    with torch.no_grad():
        grads = []
        for j in range(x_hat.shape[1]):
            e = torch.zeros_like(x_hat)
            e[:, j] = h
            grads.append((critic(x_hat + e).reshape(-1) - critic(x_hat - e).reshape(-1)) / (2 * h))
        return ((torch.stack(grads, 1).norm(dim=1) - 1) ** 2).mean()


def test_wgan_gp_reference_matches_course_lib_and_finite_differences():
    for (critic, real, fake, u), kw in grading.cases("wgan_gp_critic_loss"):
        loss, w_est, pen = ex.wgan_gp_critic_loss_reference(critic, real, fake, u, **kw)
        assert all(v.dim() == 0 and torch.isfinite(v) for v in (loss, w_est, pen))
        # course_lib.gan.gradient_penalty draws u itself: give it a generator whose draw is u
        g = torch.Generator().manual_seed(11)
        u_lib = torch.rand(u.shape, generator=torch.Generator().manual_seed(11), dtype=u.dtype)
        _, _, pen_lib_u = ex.wgan_gp_critic_loss_reference(critic, real, fake, u_lib, **kw)
        torch.testing.assert_close(pen_lib_u, gan.gradient_penalty(critic, real, fake, generator=g),
                                   rtol=1e-12, atol=1e-14)
        # the penalty by finite differences, the Wasserstein estimate by its definition
        x_hat = u * real + (1 - u) * fake
        torch.testing.assert_close(pen, _penalty_by_finite_differences(critic, x_hat), rtol=1e-6, atol=1e-9)
        with torch.no_grad():
            want_w = critic(real).mean() - critic(fake).mean()
        torch.testing.assert_close(w_est, want_w, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(loss, -want_w + kw["lam"] * pen, rtol=1e-12, atol=1e-14)
        if critic.hidden == 0:               # a unit-norm linear critic: slope 1 everywhere
            assert pen.item() < 1e-25
        # differentiable w.r.t. the critic's weights, the penalty included
        (gp_grad,) = torch.autograd.grad(pen, [critic.w2])
        assert torch.isfinite(gp_grad).all()
    kinds = {critic.hidden for (critic, *_), _ in grading.cases("wgan_gp_critic_loss")}
    assert kinds == {0, 8}                   # both kinds of critic are exercised


def test_wgan_gp_reference_passes_its_check_and_the_stub_fails():
    grading.check("wgan_gp_critic_loss", ex.wgan_gp_critic_loss_reference, verbose=False)

    def stub(critic, real, fake, u, lam=10.0):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="not attempted"):
        grading.check("wgan_gp_critic_loss", stub, verbose=False)


def _wgan_variant(sign=1.0, create_graph=True, squared_norm=False):
    def fn(critic, real, fake, u, lam=10.0):
        x_hat = (u * real + (1 - u) * fake).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=create_graph)
        norm = g.pow(2).sum(1) if squared_norm else g.norm(dim=1)
        pen = (norm - 1).pow(2).mean()
        w = critic(real).mean() - critic(fake).mean()
        return -sign * w + lam * pen, w, pen
    return fn


def test_wgan_gp_wrong_implementations_fail():
    grading.check("wgan_gp_critic_loss", _wgan_variant(), verbose=False)       # the variant is right
    with pytest.raises(AssertionError, match="output loss"):                  # sign of the W term flipped
        grading.check("wgan_gp_critic_loss", _wgan_variant(sign=-1.0), verbose=False)
    with pytest.raises(AssertionError, match="create_graph"):                 # a penalty without gradient
        grading.check("wgan_gp_critic_loss", _wgan_variant(create_graph=False), verbose=False)
    with pytest.raises(AssertionError, match="output (loss|penalty)"):        # (||g||^2 - 1)^2
        grading.check("wgan_gp_critic_loss", _wgan_variant(squared_norm=True), verbose=False)
