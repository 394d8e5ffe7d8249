"""Tests of course_lib.metrics against scipy and closed forms.

References: an explicit double loop for the unbiased MMD^2 estimator, scipy's pdist for the median
heuristic, the closed-form population MMD^2 between Gaussians (Monte Carlo over replicas, tolerance
from the standard error), scipy.stats.wasserstein_distance (1-D W1), sorted/replicated samples for
1-D W2, the exact sliced W2 of a translation, scipy.stats.entropy (KL) and
scipy.spatial.distance.jensenshannon (JS).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon, pdist

from course_lib.metrics import js_divergence_discrete, kl_divergence_discrete, mmd, sliced_wasserstein

F64 = torch.float64


# ------------------------------------------------------------------------------------------------
# MMD
# ------------------------------------------------------------------------------------------------
def _mmd_loop(x: np.ndarray, y: np.ndarray, h: float) -> float:
    k = lambda a, b: math.exp(-float(((a - b) ** 2).sum()) / (2 * h * h))  # noqa: E731
    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return sxx + syy - 2 * sxy


def test_mmd_matches_explicit_sum_and_median_heuristic(device, generator):
    x = torch.randn(15, 2, generator=generator, dtype=F64)
    y = torch.randn(12, 2, generator=generator, dtype=F64) + 0.5
    h = 0.8
    ours = mmd(x.to(device), y.to(device), bandwidth=h)
    assert ours.shape == () and ours.dtype == F64
    assert float(ours) == pytest.approx(_mmd_loop(x.numpy(), y.numpy(), h), rel=1e-10)
    # default bandwidth: median pairwise distance of the pooled sample
    h_med = float(np.median(pdist(np.concatenate([x.numpy(), y.numpy()]))))
    assert float(mmd(x.to(device), y.to(device))) == pytest.approx(
        _mmd_loop(x.numpy(), y.numpy(), h_med), rel=1e-10)


def test_mmd_unbiased_against_gaussian_closed_form(generator):
    """E[MMD^2_u] = 2 c (1 - exp(-|mu|^2 / (2 (h^2 + 2 s^2)))), c = (h^2 / (h^2 + 2 s^2))^(D/2)."""
    d, h, reps, n = 2, 1.0, 300, 20
    for shift in (0.0, 0.7):
        mu = torch.tensor([shift, 0.0], dtype=F64)
        vals = torch.stack([mmd(torch.randn(n, d, generator=generator, dtype=F64),
                                torch.randn(n, d, generator=generator, dtype=F64) + mu, bandwidth=h)
                            for _ in range(reps)])
        c = (h ** 2 / (h ** 2 + 2)) ** (d / 2)
        expected = 2 * c * (1 - math.exp(-shift ** 2 / (2 * (h ** 2 + 2))))
        se = float(vals.std()) / math.sqrt(reps)
        assert abs(float(vals.mean()) - expected) <= 5 * se, (float(vals.mean()), expected, se)


def test_mmd_same_vs_different(generator):
    x = torch.randn(300, 2, generator=generator)
    same = mmd(x, torch.randn(300, 2, generator=generator))
    diff = mmd(x, torch.randn(300, 2, generator=generator) * 0.3 + 1.0)
    assert abs(float(same)) < 0.01
    assert float(diff) > 0.2
    assert float(diff) > 20 * abs(float(same))


def test_mmd_bad_input():
    with pytest.raises(ValueError, match="x and y"):
        mmd(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="x"):
        mmd(torch.zeros(4), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="y"):
        mmd(torch.zeros(4, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="bandwidth"):
        mmd(torch.zeros(4, 2), torch.zeros(4, 2), bandwidth=0.0)


# ------------------------------------------------------------------------------------------------
# sliced Wasserstein
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("m, n", [(40, 40), (30, 47)])
def test_sliced_wasserstein_1d_w1_matches_scipy(device, generator, m, n):
    x = torch.randn(m, 1, generator=generator, dtype=F64)
    y = 2 * torch.rand(n, 1, generator=generator, dtype=F64) + 0.3
    ours = sliced_wasserstein(x.to(device), y.to(device), num_projections=3, generator=generator, p=1)
    ref = stats.wasserstein_distance(x[:, 0].numpy(), y[:, 0].numpy())
    assert float(ours) == pytest.approx(ref, rel=1e-10)


def test_sliced_wasserstein_1d_w2(device, generator):
    x = torch.randn(6, 1, generator=generator, dtype=F64)
    y = torch.randn(6, 1, generator=generator, dtype=F64) * 2 + 1
    ours = sliced_wasserstein(x.to(device), y.to(device), num_projections=4, generator=generator)
    ref = math.sqrt(np.mean((np.sort(x[:, 0].numpy()) - np.sort(y[:, 0].numpy())) ** 2))
    assert float(ours) == pytest.approx(ref, rel=1e-10)
    # different sizes: replicating each point of x (size 4) 3 times and of y (size 6) 2 times gives
    # the same empirical measures with equal sizes 12
    x4, y6 = x[:4], y
    rep_x = np.sort(np.repeat(x4[:, 0].numpy(), 3))
    rep_y = np.sort(np.repeat(y6[:, 0].numpy(), 2))
    ref = math.sqrt(np.mean((rep_x - rep_y) ** 2))
    assert float(sliced_wasserstein(x4, y6, num_projections=2, generator=generator)) == \
        pytest.approx(ref, rel=1e-10)


def test_sliced_wasserstein_translation_2d(generator):
    """For y = x + c, W2^2 along theta is (theta . c)^2; its mean over the circle is |c|^2 / 2."""
    x = torch.randn(50, 2, generator=generator, dtype=F64)
    c = torch.tensor([1.5, -0.5], dtype=F64)
    num = 4000
    sw = sliced_wasserstein(x, x + c, num_projections=num, generator=generator)
    # Monte Carlo over directions: (theta . c)^2 = |c|^2 cos^2(phi), variance |c|^4 / 8
    expected_sq = float(c @ c) / 2
    se = float(c @ c) / math.sqrt(8 * num)
    assert abs(float(sw) ** 2 - expected_sq) <= 5 * se
    assert float(sliced_wasserstein(x, x, generator=generator)) == 0.0


def test_sliced_wasserstein_reproducible_and_dtype(generator):
    x = torch.randn(20, 3)
    y = torch.randn(25, 3) + 1
    a = sliced_wasserstein(x, y, generator=torch.Generator().manual_seed(0))
    b = sliced_wasserstein(x, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.dtype == torch.float32 and a.shape == ()
    assert float(a) > 0.3


def test_sliced_wasserstein_bad_input():
    with pytest.raises(ValueError, match="x and y"):
        sliced_wasserstein(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="num_projections"):
        sliced_wasserstein(torch.zeros(4, 2), torch.zeros(4, 2), num_projections=0)
    with pytest.raises(ValueError, match="p"):
        sliced_wasserstein(torch.zeros(4, 2), torch.zeros(4, 2), p=0.5)


# ------------------------------------------------------------------------------------------------
# discrete divergences
# ------------------------------------------------------------------------------------------------
def test_discrete_divergences_match_scipy(generator):
    p = torch.rand(6, 5, generator=generator, dtype=F64) ** 2
    q = torch.rand(6, 5, generator=generator, dtype=F64)
    p[0, 1] = 0.0  # 0 log 0 = 0
    p, q = p / p.sum(1, keepdim=True), q / q.sum(1, keepdim=True)
    kl = kl_divergence_discrete(p, q)
    js = js_divergence_discrete(p, q)
    assert kl.shape == (6,) and js.shape == (6,)
    np.testing.assert_allclose(kl.numpy(), stats.entropy(p.numpy(), q.numpy(), axis=1), rtol=1e-12)
    np.testing.assert_allclose(js.numpy(), jensenshannon(p.numpy(), q.numpy(), axis=1) ** 2,
                               rtol=1e-10)


def test_discrete_divergence_edges():
    p = torch.tensor([0.5, 0.5, 0.0], dtype=F64)
    q = torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    assert float(js_divergence_discrete(p, q)) == pytest.approx(math.log(2), rel=1e-15)
    assert math.isinf(float(kl_divergence_discrete(p, q)))
    assert float(kl_divergence_discrete(p, p)) == 0.0
    r = torch.tensor([0.25, 0.75, 0.0], dtype=F64)
    assert float(kl_divergence_discrete(r, p)) == pytest.approx(
        0.25 * math.log(0.5) + 0.75 * math.log(1.5), rel=1e-14)  # q's zero where p is zero: fine


@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=8),
       st.lists(st.floats(0.0, 1.0), min_size=2, max_size=8))
def test_discrete_divergence_properties(a, b):
    k = min(len(a), len(b))
    p = torch.tensor(a[:k], dtype=F64) + 1e-3
    q = torch.tensor(b[:k], dtype=F64) + 1e-3
    p, q = p / p.sum(), q / q.sum()
    kl, js = kl_divergence_discrete(p, q), js_divergence_discrete(p, q)
    assert float(kl) >= 0 and 0 <= float(js) <= math.log(2)
    assert float(js) == pytest.approx(float(js_divergence_discrete(q, p)), abs=1e-15)
    assert float(kl_divergence_discrete(p, p)) == 0.0 and float(js_divergence_discrete(p, p)) == 0.0
    if float((p - q).abs().max()) > 1e-3:
        assert float(kl) > 0 and float(js) > 0


def test_discrete_divergence_bad_input():
    p = torch.tensor([0.5, 0.5])
    with pytest.raises(ValueError, match="p and q"):
        kl_divergence_discrete(p, torch.tensor([0.2, 0.3, 0.5]))
    with pytest.raises(ValueError, match=r"q: .*sum"):
        js_divergence_discrete(p, torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match="p"):
        kl_divergence_discrete(torch.tensor([1.5, -0.5]), p)


# ------------------------------------------------------------------------------------------------
# nearest-neighbour distances and mode fractions
# ------------------------------------------------------------------------------------------------
def test_nearest_neighbor_distance_matches_scipy_cdist():
    from scipy.spatial.distance import cdist

    from course_lib import metrics

    g = torch.Generator().manual_seed(3)
    x, ref = torch.rand(7, 1, 4, 4, generator=g), torch.rand(11, 1, 4, 4, generator=g)
    got = metrics.nearest_neighbor_distance(x, ref)
    want = cdist(x.reshape(7, -1).double().numpy(), ref.reshape(11, -1).double().numpy()).min(1)
    assert got.shape == (7,) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert torch.all(metrics.nearest_neighbor_distance(ref[:3], ref) == 0)  # members are at distance 0
    with pytest.raises(ValueError, match="per example"):
        metrics.nearest_neighbor_distance(x, ref.reshape(11, -1))
    with pytest.raises(ValueError, match="reference"):
        metrics.nearest_neighbor_distance(x, ref[:0])


def test_mode_fractions_count_the_most_responsible_component():
    from course_lib import metrics
    from course_lib.toy import GaussianMixture, three_mode_mixture

    mix = GaussianMixture(torch.tensor([[-3.0], [3.0]], dtype=torch.float64), 0.5)
    x = torch.tensor([[-3.5], [-2.0], [0.1], [2.5], [4.0]], dtype=torch.float64)
    torch.testing.assert_close(metrics.mode_fractions(x, mix), torch.tensor([0.4, 0.6], dtype=torch.float64))
    # samples of the mixture itself: fractions estimate the weights within 5 standard errors
    mix3 = three_mode_mixture(torch.float64)
    n = 4000
    frac = metrics.mode_fractions(mix3.sample(n, generator=torch.Generator().manual_seed(50)), mix3)
    se = (mix3.weights * (1 - mix3.weights) / n).sqrt()
    assert frac.sum().item() == pytest.approx(1.0) and ((frac - mix3.weights).abs() <= 5 * se).all()
    with pytest.raises(ValueError, match="samples"):
        metrics.mode_fractions(x[:0], mix)
