"""Diagonal Gaussians described by ``mean`` and ``logvar``: KL divergences and log-likelihoods.

These three formulas carry the VAE's ELBO (notebook 02) and the DDPM variational bound (notebook
04): the KL term of the ELBO is :func:`kl_standard_normal`, a Gaussian decoder's reconstruction term
is :func:`gaussian_log_likelihood`, and every DDPM consistency term is :func:`gaussian_kl`.

Full covariances (notebook 02): :func:`covariance_sqrt` (a factor A with A A^T = Sigma, by
eigendecomposition or Cholesky, for sampling mu + A w), :func:`mean_field_gaussian` (the diagonal
Gaussian closest to a full one in reverse KL, the best diagonal encoder of a Gaussian posterior)
and :func:`covariance_ellipse` (the contours drawn in notebook 02).

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


# ------------------------------------------------------------------------------------------------
# full covariances: square roots, the mean-field approximation, ellipses (notebook 02, section 5)
# ------------------------------------------------------------------------------------------------
def _check_covariance(cov) -> torch.Tensor:
    """Require a floating ``(..., D, D)`` tensor, symmetric to rounding; return its symmetric part."""
    if not isinstance(cov, torch.Tensor):
        raise TypeError(f"cov: expected a torch.Tensor, got {type(cov).__name__}")
    if not cov.is_floating_point():
        raise TypeError(f"cov: expected a floating-point tensor, got dtype {cov.dtype}")
    if cov.dim() < 2 or cov.shape[-1] != cov.shape[-2] or cov.shape[-1] == 0:
        raise ValueError(f"cov: expected a square matrix (..., D, D) with D >= 1, got shape {tuple(cov.shape)}")
    if not torch.isfinite(cov).all():
        raise ValueError("cov: expected finite entries, got inf or NaN")
    scale = cov.detach().abs().amax(dim=(-2, -1), keepdim=True)
    asym = (cov.detach() - cov.detach().mT).abs()
    tol = 1e3 * torch.finfo(cov.dtype).eps * scale
    if bool((asym > tol).any()):
        raise ValueError(f"cov: expected a symmetric matrix, got |cov - cov^T| up to {asym.max().item():.3g} "
                         f"(largest entry {scale.max().item():.3g})")
    return 0.5 * (cov + cov.mT)


class _SymmetricSqrt(torch.autograd.Function):
    r"""Sigma^{1/2} = U diag(sqrt(lambda)) U^T, with the gradient of the Sylvester equation.

    Autograd through ``torch.linalg.eigh`` is NaN where eigenvalues repeat (Sigma = I), although the
    square root is smooth there. Differentiating A A = Sigma gives A dA + dA A = dSigma, in the
    eigenbasis dA'_ij = dSigma'_ij / (sqrt(lambda_i) + sqrt(lambda_j)); the backward pass is the
    adjoint of that map, finite for every positive definite Sigma (the Frechet derivative of the
    matrix square root: Higham, *Functions of Matrices*, 2008, chapter 6).
    """

    @staticmethod
    def forward(ctx, cov):
        evals, evecs = torch.linalg.eigh(cov)
        roots = evals.clamp_min(0.0).sqrt()
        ctx.save_for_backward(roots, evecs)
        a = (evecs * roots[..., None, :]) @ evecs.mT
        return 0.5 * (a + a.mT)                      # symmetric to the last bit

    @staticmethod
    def backward(ctx, grad):
        roots, evecs = ctx.saved_tensors
        inner = evecs.mT @ grad @ evecs
        out = evecs @ (inner / (roots[..., :, None] + roots[..., None, :])) @ evecs.mT
        return 0.5 * (out + out.mT)


def covariance_sqrt(cov: torch.Tensor, method: str = "eigh") -> torch.Tensor:
    r"""A square root ``A`` of a covariance, ``A A^T = cov``, by eigendecomposition or Cholesky.

    If :math:`w \sim \mathcal N(0, I)` then :math:`x = \mu + A w` is Gaussian with mean :math:`\mu`
    and covariance :math:`A A^\top`; any ``A`` with :math:`AA^\top = \Sigma` samples
    :math:`\mathcal N(\mu, \Sigma)`. Two standard choices, different matrices, same distribution
    (they differ by an orthogonal factor, :math:`A_{\mathrm{eigh}} = L Q`, and :math:`Qw` is again
    standard normal):

    - ``"eigh"``: the symmetric square root :math:`\Sigma^{1/2} = U \Lambda^{1/2} U^\top` from
      :math:`\Sigma = U\Lambda U^\top` (eigenvalues clamped at 0, so positive semi-definite input is
      fine). Its gradient is the closed form of the Sylvester equation
      :math:`A\,dA + dA\,A = d\Sigma`, finite for every positive definite ``cov`` (also with repeated
      eigenvalues, where autograd through ``torch.linalg.eigh`` gives NaN).
    - ``"cholesky"``: the lower-triangular :math:`L` with positive diagonal, :math:`\Sigma = LL^\top`
      (requires positive definite). Cheaper, with :math:`\log\det\Sigma = 2\sum_i \log L_{ii}`: the
      usual parameterization of a full-covariance encoder (Kingma & Welling 2019, section 2.5).

    Parameters
    ----------
    cov : tensor (..., D, D)
        Symmetric (to rounding: ``|cov - cov^T| <= 1000 eps max|cov|``; its symmetric part is used)
        and positive semi-definite (``"eigh"``) or positive definite (``"cholesky"``).
    method : {"eigh", "cholesky"}

    Returns
    -------
    tensor (..., D, D)
        ``A`` with ``A @ A.mT == cov`` to rounding; symmetric for ``"eigh"``, lower triangular for
        ``"cholesky"``. Same dtype and device as ``cov``.

    Raises
    ------
    ValueError
        Non-square or non-symmetric ``cov``, non-finite entries, an eigenvalue below
        ``-1000 eps max|cov|`` (``"eigh"``), a matrix that is not positive definite (``"cholesky"``),
        or an unknown ``method``.
    TypeError
        ``cov`` not a floating-point tensor.

    References
    ----------
    Golub & Van Loan, *Matrix Computations* (4th ed. 2013), sections 4.2 (Cholesky) and 8.1 (the
    symmetric eigendecomposition); Kingma & Welling, "An introduction to variational autoencoders"
    (2019), section 2.5 (the full-covariance Gaussian posterior, z = mu + L eps).
    """
    if method not in ("eigh", "cholesky"):
        raise ValueError(f"method: expected 'eigh' or 'cholesky', got {method!r}")
    cov = _check_covariance(cov)
    if method == "cholesky":
        chol, info = torch.linalg.cholesky_ex(cov)
        if bool((info != 0).any()):
            raise ValueError("cov: expected a positive definite matrix for method='cholesky' "
                             f"(the factorization failed at leading minor {int(info.max())}); "
                             "use method='eigh' for a positive semi-definite one")
        return chol
    lowest = torch.linalg.eigvalsh(cov.detach()).amin(-1)
    scale = cov.detach().abs().amax(dim=(-2, -1))
    if bool((lowest < -1e3 * torch.finfo(cov.dtype).eps * scale).any()):
        raise ValueError(f"cov: expected a positive semi-definite matrix, got an eigenvalue "
                         f"{lowest.min().item():.3g}")
    return _SymmetricSqrt.apply(cov)


def mean_field_gaussian(mean: torch.Tensor, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The diagonal Gaussian closest to :math:`p = \mathcal N(\mu, \Sigma)` in reverse KL.

    Among all :math:`q = \mathcal N(m, \mathrm{diag}\,v)`, :math:`\mathrm{KL}(q\,\|\,p)` is
    minimized by :math:`m = \mu` and :math:`v_j = 1/(\Sigma^{-1})_{jj}`: the precision's diagonal is
    matched, not the covariance's (Bishop 2006, section 10.1.2). Then
    :math:`\mathrm{KL}(q\,\|\,p) = \tfrac12\big(\sum_j \log(\Sigma^{-1})_{jj} - \log\det\Sigma^{-1}\big)`,
    which in two dimensions is :math:`-\tfrac12\log(1-\rho^2)`, :math:`\rho` the correlation of
    :math:`p`. This is the best diagonal encoder of a linear-Gaussian model, whose ELBO gap is this
    KL; :math:`v_j \le \Sigma_{jj}` (it underestimates the marginal variances).

    Parameters
    ----------
    mean : tensor (..., D)
    cov : tensor (D, D) or (..., D, D)
        Positive definite; a single matrix is shared by every row of ``mean``.

    Returns
    -------
    (mean, logvar) : tensors (..., D)
        ``mean`` unchanged (a copy) and :math:`\log v_j = -\log (\Sigma^{-1})_{jj}`.

    Raises
    ------
    ValueError
        ``cov`` not square, not symmetric or not positive definite; ``mean``'s last dimension
        different from ``cov``'s size.
    TypeError
        Non-floating tensors.
    """
    cov = _check_covariance(cov)
    if not isinstance(mean, torch.Tensor) or not mean.is_floating_point():
        raise TypeError(f"mean: expected a floating-point tensor, got {type(mean).__name__}")
    if mean.dim() < 1 or mean.shape[-1] != cov.shape[-1]:
        raise ValueError(f"mean: expected a last dimension of {cov.shape[-1]} (cov's size), "
                         f"got shape {tuple(mean.shape)}")
    chol, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()):
        raise ValueError("cov: expected a positive definite matrix")
    precision = torch.cholesky_inverse(chol)
    logvar = -torch.log(torch.diagonal(precision, dim1=-2, dim2=-1))
    return mean.clone(), logvar.expand(mean.shape).clone()


def covariance_ellipse(mean: torch.Tensor, cov: torch.Tensor, radius: float = 1.0,
                       num_points: int = 100, method: str = "eigh") -> torch.Tensor:
    r"""Points of the ellipse :math:`\{x : (x-\mu)^\top\Sigma^{-1}(x-\mu) = r^2\}` of a 2-D Gaussian.

    The image of the circle of radius :math:`r` under :math:`u \mapsto \mu + A u`, with ``A`` from
    :func:`covariance_sqrt`: since :math:`(Au)^\top \Sigma^{-1} (Au) = u^\top u` for any
    :math:`AA^\top = \Sigma`, both methods trace the same curve (from different starting points).
    For :math:`r = 1` it is the one-standard-deviation contour.

    Parameters
    ----------
    mean : tensor (2,)
    cov : tensor (2, 2)
        Positive semi-definite (``"eigh"``) or definite (``"cholesky"``).
    radius : float
        Mahalanobis radius r > 0.
    num_points : int
        Points on the closed curve (the first is repeated at the end), >= 3.
    method : {"eigh", "cholesky"}

    Returns
    -------
    tensor (num_points + 1, 2)

    Raises
    ------
    ValueError
        Shapes other than (2,) and (2, 2), ``radius <= 0``, ``num_points < 3``, or ``cov`` rejected
        by :func:`covariance_sqrt`.
    """
    if not isinstance(mean, torch.Tensor) or tuple(mean.shape) != (2,):
        raise ValueError(f"mean: expected a tensor of shape (2,), got "
                         f"{tuple(mean.shape) if isinstance(mean, torch.Tensor) else type(mean).__name__}")
    if not isinstance(cov, torch.Tensor) or tuple(cov.shape) != (2, 2):
        raise ValueError(f"cov: expected a tensor of shape (2, 2), got "
                         f"{tuple(cov.shape) if isinstance(cov, torch.Tensor) else type(cov).__name__}")
    if not float(radius) > 0:
        raise ValueError(f"radius: expected a number > 0, got {radius!r}")
    if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 3:
        raise ValueError(f"num_points: expected an int >= 3, got {num_points!r}")
    a = covariance_sqrt(cov, method)
    angle = torch.linspace(0.0, 2 * math.pi, num_points + 1, dtype=cov.dtype, device=cov.device)
    circle = float(radius) * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return mean.to(cov.dtype) + circle @ a.mT


__all__ += ["covariance_sqrt", "mean_field_gaussian", "covariance_ellipse"]
