"""Distances between distributions: sample-based (MMD, sliced Wasserstein) and discrete (KL, JS).

The sample-based distances compare a model's samples with data when no density is available (GANs,
the moons/swiss-roll/checkerboard toys); the discrete divergences are the KL and Jensen-Shannon
divergences of notebook 00 and of PacGAN's mode histogram.

References
----------
- A. Gretton, K. Borgwardt, M. Rasch, B. Schoelkopf, A. Smola, "A kernel two-sample test", JMLR 13,
  2012: Lemma 6 (unbiased MMD^2) and Section 8 (median heuristic for the bandwidth).
- N. Bonneel, J. Rabin, G. Peyre, H. Pfister, "Sliced and Radon Wasserstein barycenters of
  measures", J. Math. Imaging Vis. 51, 2015 (sliced Wasserstein distance).
- J. Lin, "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory 37(1), 1991
  (Jensen-Shannon divergence).
"""

from __future__ import annotations

import math

import torch

from course_lib._checks import check_int, check_positive
from course_lib._primitives import randn

__all__ = ["mmd", "sliced_wasserstein", "kl_divergence_discrete", "js_divergence_discrete"]


def _check_samples(x, y, min_rows: int = 1):
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor of shape (N, D), got "
                            f"{type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"{name}: expected a 2-D tensor (N, D), got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got dtype {t.dtype}")
        if t.shape[0] < min_rows:
            raise ValueError(f"{name}: expected at least {min_rows} samples, got {t.shape[0]}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y: expected the same dimension D, got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    return x, y.to(x)


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (Na, Nb), computed from differences (no cancellation)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist") ** 2


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidth: float | None = None) -> torch.Tensor:
    r"""Unbiased estimate of the squared maximum mean discrepancy with a Gaussian RBF kernel.

    .. math::  \widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)}\sum_{i\ne j} k(x_i,x_j)
               + \frac{1}{n(n-1)}\sum_{i\ne j} k(y_i,y_j) - \frac{2}{mn}\sum_{i,j} k(x_i,y_j),
               \qquad k(a,b) = \exp\!\Big(-\frac{\lVert a-b\rVert^2}{2h^2}\Big)

    (Gretton et al. 2012, Lemma 6). It is zero in expectation when both samples come from the same
    distribution, so it can be slightly negative; the population MMD^2 is zero iff the
    distributions are equal (the Gaussian kernel is characteristic).

    Parameters
    ----------
    x : tensor (m, D)
    y : tensor (n, D)
        Samples; m, n >= 2. ``y`` is cast to ``x``'s dtype and device.
    bandwidth : float, optional
        Kernel width :math:`h > 0`. Default: the median heuristic, :math:`h` = median of the
        pairwise Euclidean distances :math:`\lVert z_i - z_j\rVert`, :math:`i < j`, over the pooled
        sample :math:`z = (x, y)` (Gretton et al. 2012, Section 8). Pass a fixed bandwidth to
        compare MMDs across different pairs of samples.

    Returns
    -------
    tensor ()
        :math:`\widehat{\mathrm{MMD}}^2_u` (squared, unitless), in ``x``'s dtype.

    Raises
    ------
    ValueError
        Not 2-D, different D, fewer than 2 samples, non-positive bandwidth.
    """
    x, y = _check_samples(x, y, min_rows=2)
    m, n = x.shape[0], y.shape[0]
    dxx, dyy, dxy = _sq_dists(x, x), _sq_dists(y, y), _sq_dists(x, y)
    if bandwidth is None:
        z = torch.cat([x, y])
        dzz = _sq_dists(z, z)
        iu = torch.triu_indices(m + n, m + n, offset=1, device=z.device)
        h2 = dzz[iu[0], iu[1]].median()           # median squared distance = (median distance)^2
        if not bool(h2 > 0):
            h2 = torch.ones((), dtype=x.dtype, device=x.device)   # all points identical
    else:
        check_positive("bandwidth", bandwidth)
        h2 = torch.tensor(float(bandwidth) ** 2, dtype=x.dtype, device=x.device)
    kxx = torch.exp(-dxx / (2 * h2))                  # k(a, b) = exp(-|a - b|^2 / (2 h^2))
    kyy = torch.exp(-dyy / (2 * h2))
    kxy = torch.exp(-dxy / (2 * h2))
    # sums over i != j: drop the diagonal, where k = 1
    term_xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    term_yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return term_xx + term_yy - 2 * kxy.mean()


def _wasserstein_1d_sorted(xs: torch.Tensor, ys: torch.Tensor, p: float) -> torch.Tensor:
    r"""W_p^p between empirical measures given sorted samples along the last axis: (L, n), (L, m).

    :math:`W_p^p = \int_0^1 |F^{-1}(u) - G^{-1}(u)|^p du`; both quantile functions are piecewise
    constant with breaks at i/n and j/m, so the integral is an exact finite sum over the merged
    breaks.
    """
    n, m = xs.shape[-1], ys.shape[-1]
    if n == m:
        return ((xs - ys).abs() ** p).mean(-1)
    dev = xs.device
    breaks = torch.cat([torch.arange(1, n + 1, dtype=torch.float64, device=dev) / n,
                        torch.arange(1, m + 1, dtype=torch.float64, device=dev) / m])
    breaks = torch.cat([torch.zeros(1, dtype=torch.float64, device=dev), breaks.sort().values])
    widths = breaks[1:] - breaks[:-1]
    mid = (breaks[1:] + breaks[:-1]) / 2
    ix = torch.clamp((mid * n).floor().long(), max=n - 1)   # F^{-1}(u) = x_(ceil(u n)), 1-based
    iy = torch.clamp((mid * m).floor().long(), max=m - 1)
    diff = (xs[..., ix] - ys[..., iy]).abs() ** p
    return (diff * widths.to(xs.dtype)).sum(-1)


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, num_projections: int = 128,
                       generator: torch.Generator | None = None, p: float = 2.0) -> torch.Tensor:
    r"""Monte Carlo sliced Wasserstein distance :math:`SW_p` between two samples.

    .. math::  SW_p(\mu, \nu) = \Big(\mathbb E_{\theta\sim U(S^{D-1})}
               W_p^p(\theta^\top_\# \mu,\ \theta^\top_\# \nu)\Big)^{1/p}

    (Bonneel et al. 2015) with ``num_projections`` directions :math:`\theta` drawn uniformly on the
    unit sphere (normalized Gaussians). Each 1-D :math:`W_p^p` is exact: with equal sample sizes it
    is the mean of :math:`|x_{(i)} - y_{(i)}|^p` over the sorted projections; with different sizes
    it integrates the difference of the two empirical quantile functions exactly. In 1-D
    (``D = 1``) every direction is :math:`\pm 1` and the result is the exact :math:`W_p`.

    Parameters
    ----------
    x : tensor (m, D)
    y : tensor (n, D)
        Samples (sizes may differ). ``y`` is cast to ``x``'s dtype and device.
    num_projections : int
        Number of random directions (>= 1).
    generator : torch.Generator, optional
        Directions are drawn on the generator's device (CPU by default), then moved to ``x``'s.
    p : float
        Order, >= 1 (default 2).

    Returns
    -------
    tensor ()
        :math:`SW_p`, in the units of the data.

    Raises
    ------
    ValueError
        Not 2-D, different D, empty samples, ``num_projections < 1``, ``p < 1``.
    """
    x, y = _check_samples(x, y, min_rows=1)
    num_projections = check_int("num_projections", num_projections, minimum=1)
    p = float(p)
    if not p >= 1.0 or not math.isfinite(p):
        raise ValueError(f"p: expected a finite number >= 1, got {p!r}")
    theta = randn((num_projections, x.shape[1]), generator, x.device, x.dtype)
    theta = theta / theta.norm(dim=1, keepdim=True)               # uniform on the unit sphere
    xs = (theta @ x.T).sort(dim=1).values                         # (L, m) sorted projections
    ys = (theta @ y.T).sort(dim=1).values                         # (L, n)
    wpp = _wasserstein_1d_sorted(xs, ys, p)                       # (L,) W_p^p per direction
    return wpp.mean() ** (1.0 / p)


def _check_probs(p, q):
    for name, t in (("p", p), ("q", q)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor of probabilities, got "
                            f"{type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got dtype {t.dtype}")
        if t.dim() == 0:
            raise ValueError(f"{name}: expected a tensor (..., K) of probabilities, got a 0-d "
                             f"tensor")
    if p.shape != q.shape:
        raise ValueError(f"p and q: expected the same shape, got {tuple(p.shape)} and "
                         f"{tuple(q.shape)}")
    q = q.to(p)
    for name, t in (("p", p), ("q", q)):
        check_positive(name, t, strict=False)
        total = t.sum(-1, dtype=torch.float64)
        tol = 1e-6 if t.dtype == torch.float64 else 1e-4
        bad = (total - 1).abs() > tol
        if bool(bad.any()):
            raise ValueError(f"{name}: expected probabilities summing to 1 along the last axis, "
                             f"got a sum of {total[bad].flatten()[0].item()!r}")
    return p, q


def kl_divergence_discrete(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r"""KL divergence between discrete distributions over the last axis, in nats.

    .. math::  \mathrm{KL}(p\,\|\,q) = \sum_k p_k \log\frac{p_k}{q_k},\qquad 0 \log\frac{0}{q} = 0

    Infinite when some :math:`p_k > 0` has :math:`q_k = 0`.

    Parameters
    ----------
    p, q : tensor (..., K)
        Same shape; non-negative, summing to one along the last axis (tolerance 1e-6 in float64,
        1e-4 otherwise).

    Returns
    -------
    tensor (...)
        Nats, >= 0.

    Raises
    ------
    ValueError
        Different shapes, negative entries, rows not summing to one.
    """
    p, q = _check_probs(p, q)
    terms = torch.where(p > 0, p * (torch.log(p) - torch.log(q)), torch.zeros_like(p))
    return terms.sum(-1).clamp_min(0.0)


def js_divergence_discrete(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r"""Jensen-Shannon divergence between discrete distributions over the last axis, in nats.

    .. math::  \mathrm{JS}(p, q) = \tfrac12 \mathrm{KL}(p\,\|\,m) + \tfrac12 \mathrm{KL}(q\,\|\,m),
               \qquad m = \tfrac12 (p + q)

    Symmetric, always finite, between 0 (p = q) and :math:`\log 2` (disjoint supports)
    (Lin 1991). The GAN value function at the optimal discriminator is
    :math:`-\log 4 + 2\,\mathrm{JS}` (Goodfellow et al. 2014, Theorem 1).

    Parameters
    ----------
    p, q : tensor (..., K)
        As in :func:`kl_divergence_discrete`.

    Returns
    -------
    tensor (...)
        Nats, in :math:`[0, \log 2]`.

    Raises
    ------
    ValueError
        As in :func:`kl_divergence_discrete`.
    """
    p, q = _check_probs(p, q)
    m = 0.5 * (p + q)
    log_m = torch.log(m)
    kl_pm = torch.where(p > 0, p * (torch.log(p) - log_m), torch.zeros_like(p)).sum(-1)
    kl_qm = torch.where(q > 0, q * (torch.log(q) - log_m), torch.zeros_like(q)).sum(-1)
    return (0.5 * (kl_pm + kl_qm)).clamp(0.0, math.log(2.0))


# ------------------------------------------------------------------------------------------------
# sample-based checks against a reference set or a mixture
# ------------------------------------------------------------------------------------------------
def nearest_neighbor_distance(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Euclidean distance from each example of ``x`` to its nearest example of ``reference``.

    Both are flattened per example (images ``(N, C, H, W)`` become vectors) and compared in
    float64.

    Parameters
    ----------
    x : tensor (M, ...)
        Query examples, e.g. decoded images.
    reference : tensor (N, ...)
        Reference examples with the same per-example shape, e.g. the training images; ``N >= 1``.

    Returns
    -------
    tensor (M,), float64
        In the data's units (pixel units of the ``[-1, 1]`` scale for images); on ``x``'s device.

    Raises
    ------
    TypeError
        Non-tensor inputs.
    ValueError
        0-d inputs, different per-example shapes, or an empty ``reference``.
    """
    for name, t in (("x", x), ("reference", reference)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor of shape (N, ...), got {type(t).__name__}")
        if t.dim() < 1:
            raise ValueError(f"{name}: expected a tensor of shape (N, ...) with a batch dimension, "
                             f"got a 0-d tensor")
    if x.shape[1:] != reference.shape[1:]:
        raise ValueError(f"x and reference: expected the same shape per example, got "
                         f"{tuple(x.shape[1:])} and {tuple(reference.shape[1:])}")
    if reference.shape[0] < 1:
        raise ValueError("reference: expected at least one example, got none")
    a = x.detach().reshape(x.shape[0], -1).to(torch.float64)
    b = reference.detach().reshape(reference.shape[0], -1).to(a)
    return torch.cdist(a, b).min(dim=1).values


def mode_fractions(samples: torch.Tensor, mixture) -> torch.Tensor:
    r"""Fraction of the samples assigned to each component of a mixture, by largest responsibility.

    Sample :math:`x` goes to :math:`\arg\max_k r_k(x)`, with responsibilities
    :math:`r_k(x) = w_k\mathcal N(x;\mu_k, s_k^2)/p(x)`. For samples of the mixture itself the
    fractions estimate the weights :math:`w_k` (exactly so for well separated components), with
    standard error :math:`\sqrt{w_k(1-w_k)/N}`; a sampler that is stuck in the basins where it
    started gives other fractions.

    Parameters
    ----------
    samples : tensor (N, D)
    mixture : course_lib.toy.GaussianMixture
        With ``D``-dimensional components.

    Returns
    -------
    tensor (K,), float64
        Non-negative, summing to one.

    Raises
    ------
    ValueError
        ``samples`` of the wrong shape (from ``mixture.responsibilities``) or no samples.
    """
    if isinstance(samples, torch.Tensor) and samples.dim() >= 1 and samples.shape[0] < 1:
        raise ValueError("samples: expected at least one sample, got none")
    k = mixture.responsibilities(samples.to(mixture.dtype)).argmax(1)
    return torch.bincount(k, minlength=mixture.num_components).to(torch.float64) / samples.shape[0]


__all__ += ["nearest_neighbor_distance", "mode_fractions"]
