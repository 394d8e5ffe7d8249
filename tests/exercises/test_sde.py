"""Exercises of notebook 07 (course_lib/exercises/sde.py): references agree with course_lib.sde
(used as the oracle on the same random draws), pass their own check, and wrong implementations
fail."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import grading
from course_lib import sde as S
from course_lib.exercises import sde as ex

F64 = torch.float64


# --- references against course_lib.sde with the same randomness ----------------------------------

def test_reverse_sde_sampler_matches_course_lib():
    """course_lib draws one N(0, I) per step except the last, from its generator: replay them."""
    for (score_fn, x1, noise, bmin, bmax, eps), _ in grading.cases("reverse_sde_sampler", num_cases=12):
        k = noise.shape[0]
        g = torch.Generator().manual_seed(11)
        g_replay = torch.Generator().manual_seed(11)
        replay = torch.stack([torch.randn(x1.shape, generator=g_replay, dtype=F64) for _ in range(k)])
        want = S.reverse_sde_sample(S.VPSDE(bmin, bmax), score_fn, tuple(x1.shape), k, generator=g,
                                    eps=eps, x1=x1)
        got = ex.reverse_sde_sampler_reference(score_fn, x1, replay, bmin, bmax, eps)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_reverse_sde_sampler_cases_cover_the_edges():
    cases = grading.cases("reverse_sde_sampler", num_cases=40)
    steps = {args[2].shape[0] for args, _ in cases}
    epss = {args[5] for args, _ in cases}
    assert 1 in steps and max(steps) >= 25 and 0.0 in epss


def test_one_step_adds_no_noise():
    (score_fn, x1, noise, bmin, bmax, eps), _ = grading.cases("reverse_sde_sampler")[0]
    one = noise[:1]
    a = ex.reverse_sde_sampler_reference(score_fn, x1, one, bmin, bmax, eps)
    b = ex.reverse_sde_sampler_reference(score_fn, x1, 100 * one, bmin, bmax, eps)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_flow_matching_loss_matches_course_lib():
    """course_lib draws t ~ U(0, 1) then x0 ~ N(0, I) from its generator: replay them."""
    for (v, x1, _, _), _ in grading.cases("flow_matching_loss"):
        g = torch.Generator().manual_seed(5)
        g_replay = torch.Generator().manual_seed(5)
        t = torch.rand(x1.shape[0], generator=g_replay, dtype=F64)
        x0 = torch.randn(x1.shape, generator=g_replay, dtype=F64)
        want = S.flow_matching_loss(v, x1, generator=g)
        torch.testing.assert_close(ex.flow_matching_loss_reference(v, x1, x0, t), want,
                                   rtol=1e-12, atol=1e-12)


# --- wrong implementations fail ----------------------------------------------------------------------

def _sampler(sign: float = -1.0, noise_power: float = 0.5, noise_last: bool = False, forward: bool = False):
    """The reference with one planted mistake (sign of the score term, dt^power noise, ...)."""
    def fn(score_fn, x1, noise, bmin, bmax, eps):
        k = noise.shape[0]
        times = torch.linspace(1.0, eps, k + 1, dtype=F64).tolist()
        x = x1.clone()
        for i in range(k):
            t, dt = times[i], times[i] - times[i + 1]
            beta = bmin + t * (bmax - bmin)
            s = score_fn(x, torch.full((x.shape[0],), t, dtype=x.dtype))
            drift = -0.5 * beta * x + sign * beta * s
            x = x + drift * dt if forward else x - drift * dt
            if i < k - 1 or noise_last:
                x = x + math.sqrt(beta) * dt ** noise_power * noise[i]
        return x
    return fn


def test_the_unmodified_sampler_passes():
    grading.check("reverse_sde_sampler", _sampler(), verbose=False)


@pytest.mark.parametrize("mistake", [dict(sign=+1.0), dict(noise_power=1.0), dict(noise_last=True),
                                     dict(forward=True)],
                         ids=["score-sign", "noise-dt", "noise-in-last-step", "forward-in-time"])
def test_sampler_mistakes_fail(mistake):
    with pytest.raises(AssertionError):
        grading.check("reverse_sde_sampler", _sampler(**mistake), verbose=False)


def test_flow_matching_reversed_target_fails():
    def wrong(v, x1, x0, t):
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        return ((v(xt, t) - (x0 - x1)) ** 2).sum(1).mean()

    with pytest.raises(AssertionError):
        grading.check("flow_matching_loss", wrong, verbose=False)


def test_flow_matching_swapped_path_fails():
    def wrong(v, x1, x0, t):
        xt = t[:, None] * x0 + (1 - t[:, None]) * x1
        return ((v(xt, t) - (x1 - x0)) ** 2).sum(1).mean()

    with pytest.raises(AssertionError):
        grading.check("flow_matching_loss", wrong, verbose=False)


def test_flow_matching_mean_over_dims_fails():
    def wrong(v, x1, x0, t):
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        return ((v(xt, t) - (x1 - x0)) ** 2).mean()

    with pytest.raises(AssertionError):
        grading.check("flow_matching_loss", wrong, verbose=False)
