"""Diagonal Gaussians described by ``mean`` and ``logvar``: KL divergences and log-likelihoods.

These three formulas carry the VAE's ELBO (notebook 02) and the DDPM variational bound (notebook
04): the KL term of the ELBO is :func:`kl_standard_normal`, a Gaussian decoder's reconstruction term
is :func:`gaussian_log_likelihood`, and every DDPM consistency term is :func:`gaussian_kl`.

Numerics: ``logvar`` is **not clamped**. The formulas are written with differences of
log-variances (``exp(logvar1 - logvar2)`` rather than a ratio of two ``exp``), ``expm1`` where a KL
is near zero, and residuals scaled by ``exp(-logvar / 2)`` before squaring, so results stay finite
and NaN-free for log-variance differences up to +-60 in float32 (tested), and an exactly zero
residual contributes exactly zero even when ``exp(-logvar)`` overflows.

References
----------
- D. P. Kingma, M. Welling, "Auto-encoding variational Bayes", ICLR 2014, Appendix B.
- J. Ho, A. Jain, P. Abbeel, "Denoising diffusion probabilistic models", NeurIPS 2020, Eq. (5)
  (``normal_kl`` in the authors' code, REFERENCES.md A1).
"""

from __future__ import annotations

import math

import torch

__all__ = ["gaussian_kl", "kl_standard_normal", "gaussian_log_likelihood"]

_LOG_2PI = math.log(2.0 * math.pi)


def _tensors(names, values):
    """Convert numbers to tensors on the dtype/device of the first tensor among ``values``."""
    ref = next((v for v in values if isinstance(v, torch.Tensor)), None)
    if ref is None:
        raise TypeError(f"{', '.join(names)}: expected at least one torch.Tensor, got only numbers")
    out = []
    for name, v in zip(names, values):
        if isinstance(v, torch.Tensor):
            t = v
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            t = torch.tensor(float(v), dtype=ref.dtype if ref.is_floating_point() else None,
                             device=ref.device)
        else:
            raise TypeError(f"{name}: expected a torch.Tensor or a number, got {type(v).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got dtype {t.dtype}")
        out.append(t)
    return out


def _scaled_residual(diff: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``diff / exp(logvar / 2)``, exactly 0 where ``diff == 0`` (no 0 * inf = NaN)."""
    r = diff * torch.exp(-0.5 * logvar)
    return torch.where(diff == 0, torch.zeros_like(r), r)


def gaussian_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    r"""Elementwise :math:`\mathrm{KL}(\mathcal N(\mu_1, \sigma_1^2) \,\|\, \mathcal N(\mu_2, \sigma_2^2))` in nats.

    .. math::  \mathrm{KL} = \tfrac12\Big[\log\frac{\sigma_2^2}{\sigma_1^2}
               + \frac{\sigma_1^2 + (\mu_1-\mu_2)^2}{\sigma_2^2} - 1\Big]
               = \tfrac12\big[(e^{\delta} - 1 - \delta) + (\mu_1-\mu_2)^2 e^{-\log\sigma_2^2}\big],
               \quad \delta = \log\sigma_1^2 - \log\sigma_2^2 .

    The second form is what is computed: ``expm1(delta) - delta`` is accurate when the variances
    are nearly equal and is clamped at its exact lower bound 0, so the KL is never negative.

    Parameters
    ----------
    mean1, logvar1, mean2, logvar2 : tensors (or numbers), broadcastable to a common shape
        Means and log-variances of the two Gaussians. Elementwise, so the parameters may
        broadcast against each other (e.g. a standard normal given as ``0.0, 0.0``).

    Returns
    -------
    tensor
        The broadcast shape; nats per element (not summed). Sum over dimensions for a diagonal
        multivariate Gaussian.

    Raises
    ------
    ValueError
        Shapes that do not broadcast (the message names the arguments and shapes).
    TypeError
        Non-floating tensors or non-numeric arguments; all four numbers (no tensor).

    References
    ----------
    Kingma & Welling (2014), Appendix B; Ho et al. (2020) ``normal_kl`` (REFERENCES.md A1, A7).
    Fixed point (REFERENCES.md A9): KL(N(1, 0.5^2) || N(0, 1)) = 0.8181471805599453.
    """
    names = ("mean1", "logvar1", "mean2", "logvar2")
    mean1, logvar1, mean2, logvar2 = _tensors(names, (mean1, logvar1, mean2, logvar2))
    try:
        torch.broadcast_shapes(mean1.shape, logvar1.shape, mean2.shape, logvar2.shape)
    except RuntimeError:
        raise ValueError(
            "mean1, logvar1, mean2, logvar2: expected shapes that broadcast together, got "
            f"{tuple(mean1.shape)}, {tuple(logvar1.shape)}, {tuple(mean2.shape)}, "
            f"{tuple(logvar2.shape)}") from None
    delta = logvar1 - logvar2
    variance_term = (torch.expm1(delta) - delta).clamp_min(0.0)   # e^delta - 1 - delta >= 0
    mean_term = _scaled_residual(mean1 - mean2, logvar2) ** 2     # (mu1 - mu2)^2 / sigma2^2
    return 0.5 * (variance_term + mean_term)


def kl_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""KL of a diagonal Gaussian from the standard normal, summed over all non-batch dimensions.

    .. math::  \mathrm{KL}(\mathcal N(\mu, \mathrm{diag}\,\sigma^2) \,\|\, \mathcal N(0, I))
               = -\tfrac12 \sum_j \big(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\big)
               = \tfrac12 \sum_j \big(\mu_j^2 + (e^{\log\sigma_j^2} - 1 - \log\sigma_j^2)\big)

    (Kingma & Welling 2014, Appendix B; the second form, with ``expm1``, is computed).

    Parameters
    ----------
    mean, logvar : tensor (N, ...)
        Same shape; the first dimension is the batch.

    Returns
    -------
    tensor (N,)
        Nats per example, >= 0.

    Raises
    ------
    ValueError
        ``mean`` and ``logvar`` of different shapes, or 0-d inputs.

    References
    ----------
    Kingma & Welling, "Auto-encoding variational Bayes", ICLR 2014, Appendix B.
    """
    mean, logvar = _tensors(("mean", "logvar"), (mean, logvar))
    if mean.shape != logvar.shape:
        raise ValueError(f"mean and logvar: expected the same shape, got {tuple(mean.shape)} "
                         f"and {tuple(logvar.shape)}")
    if mean.dim() == 0:
        raise ValueError("mean: expected a tensor of shape (N, ...) with a batch dimension, "
                         "got a 0-d tensor")
    per_dim = 0.5 * (mean * mean + (torch.expm1(logvar) - logvar).clamp_min(0.0))
    return per_dim.reshape(mean.shape[0], -1).sum(1)


def gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, logvar) -> torch.Tensor:
    r"""Log-density of ``x`` under a diagonal Gaussian, summed over all non-batch dimensions.

    .. math::  \log\mathcal N(x; \mu, \mathrm{diag}\,\sigma^2)
               = -\tfrac12 \sum_j \Big[\log 2\pi + \log\sigma_j^2 + \frac{(x_j-\mu_j)^2}{\sigma_j^2}\Big]

    With a fixed ``logvar`` this is, up to a constant, the negative squared error: the Gaussian
    decoder gives the L2 reconstruction loss (Kingma & Welling 2014, Appendix C.2).

    Parameters
    ----------
    x, mean : tensor (N, ...)
        Same shape (no broadcasting between data and mean).
    logvar : tensor or number
        Log-variance: a number, a 0-d tensor, or a tensor broadcastable to ``x.shape`` without
        changing it (same shape, or e.g. ``(D,)`` / ``(1, D)`` shared across the batch). Not
        clamped.

    Returns
    -------
    tensor (N,)
        Nats per example. A density, so it can be positive.

    Raises
    ------
    ValueError
        ``x`` and ``mean`` of different shapes; ``logvar`` that does not broadcast to ``x.shape``;
        0-d ``x``.

    References
    ----------
    Kingma & Welling (2014), Appendix C.2. Fixed point (REFERENCES.md A9):
    log N(0.3; 1, 0.5^2) = -1.2057913526447273.
    """
    x, mean, logvar = _tensors(("x", "mean", "logvar"), (x, mean, logvar))
    if x.shape != mean.shape:
        raise ValueError(f"x and mean: expected the same shape, got {tuple(x.shape)} and "
                         f"{tuple(mean.shape)}")
    if x.dim() == 0:
        raise ValueError("x: expected a tensor of shape (N, ...) with a batch dimension, "
                         "got a 0-d tensor")
    try:
        shape = torch.broadcast_shapes(x.shape, logvar.shape)
    except RuntimeError:
        shape = None
    if shape != x.shape:
        raise ValueError(f"logvar: expected a number or a shape broadcastable to x's "
                         f"{tuple(x.shape)} without changing it, got {tuple(logvar.shape)}")
    n = x.shape[0]
    return diag_gaussian_log_prob(x.reshape(n, -1), mean.reshape(n, -1),
                                  logvar=logvar.expand(x.shape).reshape(n, -1))


def diag_gaussian_log_prob(x: torch.Tensor, mean, logvar=None, *, var=None) -> torch.Tensor:
    r"""The diagonal Gaussian log-density, summed over the last dimension, with broadcasting.

    .. math::  \log\mathcal N(x; \mu, \mathrm{diag}\,\sigma^2)
               = -\tfrac12 \sum_j \Big[\frac{(x_j-\mu_j)^2}{\sigma_j^2} + \log\sigma_j^2 + \log 2\pi\Big]

    The one implementation of this formula in the course: :func:`gaussian_log_likelihood` (with its
    input checks), the VAE's :math:`\log q(z\mid x)`, the mixtures of :mod:`course_lib.toy` and the
    Bayes-optimal noise predictor of :mod:`course_lib.diffusion` all call it. Give the variance
    either as ``logvar`` (the course's convention; the residual is scaled by
    :math:`e^{-\log\sigma^2/2}` before squaring, so it stays finite where
    :math:`e^{-\log\sigma^2}` overflows, and an exactly zero residual contributes exactly zero) or
    as ``var`` (for variances that come as sums, e.g. :math:`s_k^2 + \sigma^2` of a noised
    mixture component).

    Parameters
    ----------
    x : tensor (..., D)
        Points.
    mean : tensor or number, broadcastable with ``x``
    logvar : tensor or number, broadcastable with ``x``
        Log-variances (exactly one of ``logvar`` and ``var``).
    var : tensor, broadcastable with ``x``
        Variances, > 0.

    Returns
    -------
    tensor
        The broadcast shape of the inputs without its last dimension; nats. No input checks (a
        building block: the public functions check their inputs).

    Raises
    ------
    ValueError
        Both or neither of ``logvar`` and ``var``.

    References
    ----------
    Bishop, *Pattern Recognition and Machine Learning* (2006), Eq. 2.43 with a diagonal
    covariance. Fixed point (REFERENCES.md A9): log N(0.3; 1, 0.5^2) = -1.2057913526447273.
    """
    if (logvar is None) == (var is None):
        raise ValueError("logvar, var: expected exactly one of them, got "
                         f"{'both' if logvar is not None else 'neither'}")
    if var is not None:
        diff = x - mean
        return -0.5 * ((diff * diff / var) + torch.log(var) + _LOG_2PI).sum(-1)
    if not isinstance(logvar, torch.Tensor):
        logvar = torch.as_tensor(logvar, dtype=x.dtype, device=x.device)
    z = _scaled_residual(x - mean, logvar)                          # (x - mu) / sigma
    return -0.5 * (_LOG_2PI + logvar + z * z).sum(-1)


__all__ += ["diag_gaussian_log_prob"]
