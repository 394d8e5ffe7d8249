"""Variational autoencoders: the ELBO, the reparameterization trick and the IWAE bound (notebook 02).

A *latent-variable model* here is any object with

- ``latent_dim`` (int, K),
- ``encode(x) -> (mean, logvar)``, each ``(N, K)``: a diagonal Gaussian q(z | x),
- ``log_likelihood(x, z) -> (N,)``: log p(x | z) in nats, summed over data dimensions,

and the prior p(z) = N(0, I_K). :class:`VAE` and :class:`LinearGaussianModel` follow this protocol
(:class:`LatentVariableModel`), so :func:`elbo` and :func:`iwae_bound` work on both; on the
linear-Gaussian model log p(x) and p(z | x) are exact, which is how the notebook checks the bounds.

Also here, one function per notebook section: :func:`log_marginal_quadrature` (the marginal of a
1-D latent model), :func:`reparameterization_gradient` / :func:`score_function_gradient` (the two
gradient estimators), :func:`optimal_decoder_mean` (why samples are blurry),
:func:`decoder_std_sweep` (posterior collapse), :class:`HierarchicalVAE` (a two-level model), and
:func:`train_vae` (the training loop, via :func:`course_lib.train.fit`).

Log-variances are clamped to ``LOGVAR_RANGE = (-30, 30)`` wherever they are exponentiated
(:func:`reparameterize`, the KL term, the log-density of q), so a huge encoder output gives a huge
but finite standard deviation (exp(15) ~ 3.3e6) instead of an overflow to ``inf``; the clamp has zero
gradient outside the range. NaN log-variances raise ``ValueError``.

References
----------
Kingma, D. P. & Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR. arXiv:1312.6114.
Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
arXiv:1509.00519.
Tipping, M. E. & Bishop, C. M. (1999). Probabilistic Principal Component Analysis. JRSS B 61(3).
Sonderby, C. K. et al. (2016). Ladder Variational Autoencoders. NeurIPS (hierarchical VAE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._checks import check_int, check_positive, check_same_shape, check_tensor
from course_lib._primitives import model_device, rand, randn
from course_lib.gaussians import (
    covariance_sqrt,
    diag_gaussian_log_prob,
    gaussian_log_likelihood,
    kl_standard_normal,
)
from course_lib.nets import MLP

__all__ = [
    "LOGVAR_RANGE",
    "LatentVariableModel",
    "reparameterize",
    "reparameterize_full",
    "standard_normal_log_prob",
    "ElboTerms",
    "elbo_terms",
    "elbo",
    "vae_loss",
    "log_importance_weights",
    "iwae_bound",
    "log_marginal_quadrature",
    "VAE",
    "LinearGaussianModel",
    "HierarchicalVAE",
    "GradientSamples",
    "reparameterization_gradient",
    "score_function_gradient",
    "optimal_decoder_mean",
    "aggregate_posterior_log_prob",
    "aggregate_posterior_kl",
    "train_vae",
    "LinearVAEFit",
    "fit_linear_vae",
    "DecoderStdResult",
    "decoder_std_sweep",
]

LOGVAR_RANGE: tuple[float, float] = (-30.0, 30.0)
"""Log-variances are clamped to this range before exponentiation (see the module docstring)."""

_LOG_2PI = math.log(2.0 * math.pi)


@runtime_checkable
class LatentVariableModel(Protocol):
    """The protocol :func:`elbo` and :func:`iwae_bound` need; the prior is p(z) = N(0, I_K)."""

    latent_dim: int

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance ``(N, K)`` of the diagonal Gaussian q(z | x)."""
        ...

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) ``(N,)`` in nats, summed over data dimensions."""
        ...


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------
def _check_logvar(name: str, logvar: torch.Tensor) -> torch.Tensor:
    if torch.isnan(logvar).any():
        raise ValueError(f"{name}: expected finite log-variances, got NaN")
    return logvar.clamp(*LOGVAR_RANGE)


def _check_encoded(mean, logvar, n: int, latent_dim: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    check_tensor("mean", mean, ndim=2, floating=True)
    check_tensor("logvar", logvar, ndim=2, floating=True)
    check_same_shape("mean", mean, "logvar", logvar)
    if mean.shape[0] != n:
        raise ValueError(f"mean: expected {n} rows (one per example of x), got shape {tuple(mean.shape)}")
    if latent_dim is not None and mean.shape[1] != latent_dim:
        raise ValueError(f"mean: expected latent size {latent_dim} (model.latent_dim), "
                         f"got shape {tuple(mean.shape)}")
    return mean, _check_logvar("logvar", logvar)


def _encode(model, x, encoded):
    if not hasattr(model, "log_likelihood") or (encoded is None and not hasattr(model, "encode")):
        raise TypeError(f"model: expected an object with encode(x) and log_likelihood(x, z), "
                        f"got {type(model).__name__}")
    check_tensor("x", x, floating=True)
    if x.dim() < 2:
        raise ValueError(f"x: expected a batch (N, ...) with at least 2 dims, got shape {tuple(x.shape)}")
    mean, logvar = model.encode(x) if encoded is None else encoded
    return _check_encoded(mean, logvar, x.shape[0], getattr(model, "latent_dim", None))


# ----------------------------------------------------------------------------------------------
# the reparameterization trick and the bounds
# ----------------------------------------------------------------------------------------------
def reparameterize(mean: torch.Tensor, logvar: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw z ~ N(mean, diag(exp(logvar))) as a differentiable function of (mean, logvar).

    z = mean + exp(logvar / 2) * eps,  eps ~ N(0, I)  (Kingma & Welling 2014, section 2.4 and eq. 10).

    Parameters
    ----------
    mean : torch.Tensor
        Means, any shape (usually ``(N, K)``).
    logvar : torch.Tensor
        Log-variances, same shape as ``mean``. Clamped to ``LOGVAR_RANGE`` before exponentiation
        (no overflow; zero gradient outside the range).
    generator : torch.Generator, optional
        Source of eps (CPU or on the tensors' device).

    Returns
    -------
    torch.Tensor
        ``z``, same shape, dtype and device as ``mean``; gradients flow to ``mean`` and ``logvar``.

    Raises
    ------
    ValueError
        If the shapes differ or ``logvar`` contains NaN.
    TypeError
        If the inputs are not floating-point tensors.

    References
    ----------
    Kingma & Welling (2014), Auto-Encoding Variational Bayes, eq. (10) and Appendix C.
    """
    check_tensor("mean", mean, floating=True)
    check_tensor("logvar", logvar, floating=True)
    check_same_shape("mean", mean, "logvar", logvar)
    logvar = _check_logvar("logvar", logvar)
    eps = randn(mean.shape, generator, mean.device, mean.dtype)
    return mean + torch.exp(0.5 * logvar) * eps  # z = mu + sigma * eps


def reparameterize_full(mean: torch.Tensor, cov: torch.Tensor, method: str = "cholesky",
                        generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    r"""Draw x ~ N(mean, cov) with a full covariance as x = mean + A w, A A^T = cov, w ~ N(0, I).

    ``A`` is :func:`course_lib.gaussians.covariance_sqrt` of ``cov``: the symmetric square root
    :math:`\Sigma^{1/2}` (``"eigh"``) or the Cholesky factor :math:`L` (``"cholesky"``). The two
    maps send the same ``w`` to different points but give the same distribution; with a diagonal
    ``cov`` both reduce to :func:`reparameterize`'s ``mean + sigma * eps``. Differentiable in
    ``mean`` and ``cov``.

    Parameters
    ----------
    mean : tensor (N, D)
    cov : tensor (D, D) or (N, D, D)
        One covariance for every row, or one per row; symmetric positive definite (positive
        semi-definite is allowed with ``"eigh"``).
    method : {"cholesky", "eigh"}
    generator : torch.Generator, optional
        Source of ``w`` when ``noise`` is not given.
    noise : tensor (N, D), optional
        The standard normal ``w`` itself (to compare the two maps on the same draw).

    Returns
    -------
    tensor (N, D)
        Same dtype and device as ``mean``.

    Raises
    ------
    ValueError
        ``mean`` not 2-D, ``cov`` of the wrong shape or rejected by ``covariance_sqrt``, ``noise``
        of a shape other than ``mean``'s, or an unknown ``method``.
    TypeError
        Non-floating tensors.

    References
    ----------
    Kingma & Welling, "An introduction to variational autoencoders" (2019), section 2.5 (the
    full-covariance Gaussian posterior z = mu + L eps); Chan (2024), section on sampling a
    high-dimensional Gaussian as mu + Sigma^{1/2} w.
    """
    check_tensor("mean", mean, ndim=2, floating=True)
    check_tensor("cov", cov, ndim=(2, 3), floating=True)
    n, d = mean.shape
    if tuple(cov.shape[-2:]) != (d, d) or (cov.dim() == 3 and cov.shape[0] != n):
        raise ValueError(f"cov: expected shape ({d}, {d}) or ({n}, {d}, {d}) to match mean "
                         f"{tuple(mean.shape)}, got {tuple(cov.shape)}")
    a = covariance_sqrt(cov, method)
    if noise is None:
        noise = randn(mean.shape, generator, mean.device, mean.dtype)
    else:
        check_tensor("noise", noise, floating=True)
        check_same_shape("mean", mean, "noise", noise)
    return mean + (a @ noise[..., None])[..., 0] if cov.dim() == 3 else mean + noise @ a.mT  # x = mu + A w


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension: -1/2 (K log 2 pi + ||z||^2). Shape ``(...,)``."""
    check_tensor("z", z, floating=True)
    return diag_gaussian_log_prob(z, 0.0, logvar=0.0)


def _repeat_batch(x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """(N, ...) -> (S*N, ...), sample-major: row s*N + n is example n."""
    return x.unsqueeze(0).expand(num_samples, *x.shape).reshape(num_samples * x.shape[0], *x.shape[1:])


@dataclass
class ElboTerms:
    """The two terms of the ELBO, per example, nats: ``elbo = reconstruction - kl``."""

    reconstruction: torch.Tensor
    kl: torch.Tensor
    elbo: torch.Tensor


def elbo_terms(model: LatentVariableModel, x: torch.Tensor, num_samples: int = 1,
               generator: torch.Generator | None = None,
               encoded: tuple[torch.Tensor, torch.Tensor] | None = None,
               analytic_kl: bool = True) -> ElboTerms:
    """Reconstruction term, KL term and ELBO per example, each ``(N,)`` nats (see :func:`elbo`)."""
    num_samples = check_int("num_samples", num_samples, minimum=1)
    mean, logvar = _encode(model, x, encoded)
    n, k = mean.shape
    # z^(s) = mu + sigma * eps^(s), s = 1..S, drawn as (S, N, K), flattened sample-major
    z = reparameterize(_repeat_batch(mean, num_samples), _repeat_batch(logvar, num_samples), generator)
    log_px_z = model.log_likelihood(_repeat_batch(x, num_samples), z)
    if log_px_z.shape != (num_samples * n,):
        raise ValueError(f"model.log_likelihood: expected shape ({num_samples * n},), "
                         f"got {tuple(log_px_z.shape)}")
    # (1/S) sum_s log p(x | z^(s))   (Kingma & Welling 2014, eq. 10, first term)
    reconstruction = log_px_z.reshape(num_samples, n).mean(0)
    # -KL(q || N(0,I)) = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)   (K&W 2014, App. B)
    if analytic_kl:
        kl = kl_standard_normal(mean, logvar)
    else:
        # (1/S) sum_s [log q(z^(s) | x) - log p(z^(s))]   (Kingma & Welling 2014, eq. 6)
        zs = z.reshape(num_samples, n, k)
        kl = (diag_gaussian_log_prob(zs, mean, logvar) - standard_normal_log_prob(zs)).mean(0)
    return ElboTerms(reconstruction=reconstruction, kl=kl, elbo=reconstruction - kl)


def elbo(model: LatentVariableModel, x: torch.Tensor, num_samples: int = 1,
         generator: torch.Generator | None = None,
         encoded: tuple[torch.Tensor, torch.Tensor] | None = None,
         analytic_kl: bool = True) -> torch.Tensor:
    """Monte Carlo ELBO per example: reconstruction term minus the closed-form KL, in nats.

    ELBO(x) = E_{q(z|x)}[log p(x | z)] - KL(q(z | x) || p(z))
            ~ (1/S) sum_s log p(x | z^(s)) - KL,   z^(s) = mean + exp(logvar/2) * eps^(s).

    ELBO(x) <= log p(x), with log p(x) - ELBO(x) = KL(q(z | x) || p(z | x)). Gradients flow to the
    encoder (through the reparameterized z and the KL) and to the decoder.

    Parameters
    ----------
    model : LatentVariableModel
        Has ``encode(x) -> (mean, logvar)`` and ``log_likelihood(x, z) -> (N,)``; prior N(0, I).
    x : torch.Tensor
        Data ``(N, ...)`` of the shape the model expects.
    num_samples : int
        S >= 1, Monte Carlo samples of z per example.
    generator : torch.Generator, optional
        Source of the noise eps.
    encoded : tuple of torch.Tensor, optional
        ``(mean, logvar)`` ``(N, K)`` of a q(z | x) to use instead of ``model.encode(x)`` (any
        encoder gives a lower bound).
    analytic_kl : bool
        True (default): the KL in closed form (K&W 2014, eq. 7 and 10, estimator B). False: the
        generic estimator (1/S) sum_s [log p(x, z^(s)) - log q(z^(s) | x)] (eq. 6, estimator A),
        which has zero variance when q(z | x) is the exact posterior.

    Returns
    -------
    torch.Tensor
        ``(N,)``, nats.

    Raises
    ------
    ValueError
        If ``num_samples < 1``, ``x`` is not a batch, or the encoder's output has the wrong shape
        (rows other than N, latent size other than ``model.latent_dim``) or NaN log-variances.
    TypeError
        If ``model`` does not follow the protocol or ``x`` is not a floating-point tensor.

    References
    ----------
    Kingma & Welling (2014), eq. (3) (the bound), eq. (7) and (10) (the SGVB estimator with the KL
    in closed form), Appendix B (the Gaussian KL).
    """
    return elbo_terms(model, x, num_samples, generator, encoded, analytic_kl).elbo


def vae_loss(model: LatentVariableModel, x: torch.Tensor, beta: float = 1.0, num_samples: int = 1,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Training loss: mean over the batch of -(reconstruction - beta * KL), nats per example.

    ``beta = 1`` is the negative ELBO (Kingma & Welling 2014, eq. 10); other values weight the KL
    term (beta-VAE, Higgins et al. 2017; beta < 1 or a KL warm-up delays posterior collapse).

    Returns
    -------
    torch.Tensor
        Scalar.

    Raises
    ------
    ValueError
        If ``beta < 0``, or as :func:`elbo`.
    """
    check_positive("beta", beta, strict=False)
    t = elbo_terms(model, x, num_samples, generator)
    return -(t.reconstruction - beta * t.kl).mean()


def log_importance_weights(model: LatentVariableModel, x: torch.Tensor, num_samples: int,
                           generator: torch.Generator | None = None,
                           encoded: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """log w_s = log p(x | z_s) + log p(z_s) - log q(z_s | x), z_s ~ q(z | x); shape ``(S, N)``.

    References
    ----------
    Burda et al. (2016), eq. (8) and the code ``yburda/iwae`` (``log_weights``).
    """
    num_samples = check_int("num_samples", num_samples, minimum=1)
    mean, logvar = _encode(model, x, encoded)
    n = mean.shape[0]
    z = reparameterize(_repeat_batch(mean, num_samples), _repeat_batch(logvar, num_samples), generator)
    log_px_z = model.log_likelihood(_repeat_batch(x, num_samples), z)
    if log_px_z.shape != (num_samples * n,):
        raise ValueError(f"model.log_likelihood: expected shape ({num_samples * n},), "
                         f"got {tuple(log_px_z.shape)}")
    z = z.reshape(num_samples, n, -1)
    log_pz = standard_normal_log_prob(z)
    log_qz = diag_gaussian_log_prob(z, mean.unsqueeze(0), logvar.unsqueeze(0))
    return log_px_z.reshape(num_samples, n) + log_pz - log_qz


def iwae_bound(model: LatentVariableModel, x: torch.Tensor, num_samples: int,
               generator: torch.Generator | None = None,
               encoded: tuple[torch.Tensor, torch.Tensor] | None = None,
               chunk_size: int | None = None) -> torch.Tensor:
    """Importance-weighted bound L_K = log (1/K) sum_k p(x, z_k) / q(z_k | x), z_k ~ q(z | x).

    Computed as a log-mean-exp of the log-weights, logsumexp_k(log w_k) - log K, which subtracts the
    maximum first and so is stable for any K. L_1 = ELBO (in expectation), E[L_K] <= E[L_{K+1}] <=
    log p(x), and L_K -> log p(x) as K -> infinity (Burda et al. 2016, Theorem 1); it is also the
    importance-sampling estimate of log p(x) (Burda, Grosse & Salakhutdinov 2016;
    Prince 2023, Understanding Deep Learning, Chapter 17).

    Parameters
    ----------
    model : LatentVariableModel
    x : torch.Tensor
        Data ``(N, ...)``.
    num_samples : int
        K >= 1 importance samples per example.
    generator : torch.Generator, optional
    encoded : tuple of torch.Tensor, optional
        ``(mean, logvar)`` of the proposal q(z | x) instead of ``model.encode(x)``.
    chunk_size : int, optional
        Draw the K samples in chunks of this many to bound memory (K = 5000 on a batch of digits).

    Returns
    -------
    torch.Tensor
        ``(N,)``, nats.

    Raises
    ------
    ValueError
        If ``num_samples < 1`` or ``chunk_size < 1``, or as :func:`elbo`.

    References
    ----------
    Burda, Grosse & Salakhutdinov (2016), Importance Weighted Autoencoders, eq. (8) and Theorem 1.
    """
    num_samples = check_int("num_samples", num_samples, minimum=1)
    if chunk_size is None:
        chunk_size = num_samples
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    if encoded is None:
        encoded = _encode(model, x, None)  # encode once, reuse for every chunk
    log_w = []
    done = 0
    while done < num_samples:
        s = min(chunk_size, num_samples - done)
        log_w.append(log_importance_weights(model, x, s, generator, encoded))
        done += s
    log_w = torch.cat(log_w, 0)
    # log (1/K) sum_k w_k = m + log (1/K) sum_k exp(log w_k - m), m = max_k log w_k
    return torch.logsumexp(log_w, 0) - math.log(num_samples)


def log_marginal_quadrature(model: LatentVariableModel, x: torch.Tensor, num_points: int = 2001,
                            z_max: float = 8.0) -> torch.Tensor:
    """log p(x) = log integral p(x | z) N(z; 0, 1) dz by the trapezoid rule, for a 1-D latent.

    The integrand is evaluated on ``num_points`` equally spaced z in [-z_max, z_max] and summed in
    log space (``logsumexp``), so it is stable even when p(x | z) is tiny. Exact up to the grid
    error for smooth decoders; only possible because K = 1 (the cost grows like num_points^K,
    which is why the marginal is "intractable" for a real VAE).

    Parameters
    ----------
    model : LatentVariableModel
        With ``latent_dim == 1``.
    x : torch.Tensor
        ``(N, ...)``.
    num_points : int
        Grid size (>= 3).
    z_max : float
        Half-width of the grid, in prior standard deviations (> 0).

    Returns
    -------
    torch.Tensor
        ``(N,)``, nats.

    Raises
    ------
    ValueError
        If ``model.latent_dim != 1``, ``num_points < 3`` or ``z_max <= 0``.
    """
    if getattr(model, "latent_dim", None) != 1:
        raise ValueError(f"model: expected latent_dim == 1 for quadrature, got "
                         f"{getattr(model, 'latent_dim', None)}")
    num_points = check_int("num_points", num_points, minimum=3)
    check_positive("z_max", z_max)
    check_tensor("x", x, floating=True)
    n = x.shape[0]
    z = torch.linspace(-z_max, z_max, num_points, dtype=x.dtype, device=x.device)
    dz = z[1] - z[0]
    zz = z.repeat_interleave(n).unsqueeze(1)  # (P*N, 1), point-major
    log_joint = model.log_likelihood(_repeat_batch(x, num_points), zz).reshape(num_points, n)
    log_joint = log_joint + standard_normal_log_prob(z.unsqueeze(1)).unsqueeze(1)
    # trapezoid weights: dz, with dz/2 at both ends
    log_wts = torch.full((num_points, 1), 0.0, dtype=x.dtype, device=x.device) + torch.log(dz)
    log_wts[0] = log_wts[-1] = torch.log(dz / 2)
    return torch.logsumexp(log_joint + log_wts, 0)


# ----------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------
class VAE(nn.Module):
    """A VAE with MLP encoder and decoder, for vectors ``(N, D)`` or images ``(N, C, H, W)``.

    Encoder q(z | x) = N(mean(x), diag exp(logvar(x))); prior p(z) = N(0, I); decoder

    - ``likelihood="gaussian"``: p(x | z) = N(x; decode(z), sigma_dec^2 I), so
      -log p(x | z) = ||x - decode(z)||^2 / (2 sigma_dec^2) + D/2 log(2 pi sigma_dec^2), the L2 loss
      up to a scale and a constant (Chan 2024). sigma_dec is fixed (``decoder_std``) or a learned scalar
      (``learn_decoder_std=True``, its log-variance kept >= ``min_decoder_logvar``).
    - ``likelihood="bernoulli"``: data in [-1, 1] are mapped to y = (x + 1)/2 in [0, 1] and
      log p(x | z) = sum_d y_d log p_d + (1 - y_d) log(1 - p_d), p = sigmoid(logits(z)) (Kingma &
      Welling 2014, App. C.1; for grey levels this is the usual cross-entropy surrogate).

    Parameters
    ----------
    data_shape : int or tuple of int
        D for vectors, or ``(C, H, W)`` for images (e.g. ``(1, 8, 8)`` for the digits).
    latent_dim : int
        K >= 1.
    hidden_dims : sequence of int
        Hidden widths of the encoder MLP; the decoder uses them reversed.
    likelihood : {"gaussian", "bernoulli"}
    decoder_std : float
        sigma_dec > 0 of the Gaussian decoder (initial value when learned).
    learn_decoder_std : bool
        Learn sigma_dec as one scalar parameter.
    min_decoder_logvar : float
        Floor of the learned decoder log-variance (a learned variance can otherwise shrink to 0 on
        constant pixels and send log p(x | z) to +inf).

    Raises
    ------
    ValueError
        For a non-positive ``latent_dim`` or ``decoder_std``, an unknown ``likelihood``, or a bad
        ``data_shape``.
    """

    def __init__(self, data_shape: int | Sequence[int], latent_dim: int = 2,
                 hidden_dims: Sequence[int] = (128, 128), likelihood: str = "gaussian",
                 decoder_std: float = 1.0, learn_decoder_std: bool = False,
                 min_decoder_logvar: float = -9.0):
        super().__init__()
        if isinstance(data_shape, int):
            data_shape = (data_shape,)
        data_shape = tuple(int(s) for s in data_shape)
        if not data_shape or any(s < 1 for s in data_shape):
            raise ValueError(f"data_shape: expected positive sizes, got {data_shape}")
        self.data_shape = data_shape
        self.latent_dim = check_int("latent_dim", latent_dim, minimum=1)
        if likelihood not in ("gaussian", "bernoulli"):
            raise ValueError(f"likelihood: expected 'gaussian' or 'bernoulli', got {likelihood!r}")
        self.likelihood = likelihood
        check_positive("decoder_std", decoder_std)
        self.data_dim = math.prod(data_shape)
        hidden = [check_int("hidden_dims", h, minimum=1) for h in hidden_dims]
        self.encoder = MLP(self.data_dim, 2 * self.latent_dim, hidden)
        self.decoder = MLP(self.latent_dim, self.data_dim, hidden[::-1])
        self.min_decoder_logvar = float(min_decoder_logvar)
        init = torch.tensor(2.0 * math.log(decoder_std))
        if learn_decoder_std:
            self.decoder_logvar_param = nn.Parameter(init)
        else:
            self.register_buffer("decoder_logvar_param", init)

    @property
    def decoder_logvar(self) -> torch.Tensor:
        """log sigma_dec^2 (scalar tensor); floored at ``min_decoder_logvar`` when learned."""
        if isinstance(self.decoder_logvar_param, nn.Parameter):
            return self.decoder_logvar_param.clamp(min=self.min_decoder_logvar)
        return self.decoder_logvar_param

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, floating=True)
        if tuple(x.shape[1:]) != self.data_shape or x.dim() != len(self.data_shape) + 1:
            want = "(N, " + ", ".join(str(s) for s in self.data_shape) + ")"
            raise ValueError(f"x: expected shape {want}, got {tuple(x.shape)}")
        return x.reshape(x.shape[0], self.data_dim)

    def _check_z(self, z: torch.Tensor) -> torch.Tensor:
        check_tensor("z", z, ndim=2, floating=True)
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"z: expected shape (N, {self.latent_dim}) (latent_dim), got {tuple(z.shape)}")
        return z

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x): ``(mean, logvar)``, each ``(N, K)``; logvar clamped to ``LOGVAR_RANGE``."""
        h = self.encoder(self._check_x(x))
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def decoder_output(self, z: torch.Tensor) -> torch.Tensor:
        """Raw decoder output ``(N, D)``: the Gaussian mean, or the Bernoulli logits."""
        return self.decoder(self._check_z(z))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean of p(x | z) in data space ``(N, *data_shape)`` (in [-1, 1] for Bernoulli)."""
        out = self.decoder_output(z)
        if self.likelihood == "bernoulli":
            out = 2.0 * torch.sigmoid(out) - 1.0
        return out.reshape(z.shape[0], *self.data_shape)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) ``(N,)`` in nats, summed over data dimensions.

        Raises
        ------
        ValueError
            If ``x`` or ``z`` has the wrong shape or their batch sizes differ.
        """
        xf = self._check_x(x)
        z = self._check_z(z)
        if z.shape[0] != xf.shape[0]:
            raise ValueError(f"x and z: expected the same batch size, got {xf.shape[0]} and {z.shape[0]}")
        out = self.decoder(z)
        if self.likelihood == "gaussian":
            logvar = self.decoder_logvar.to(out.dtype).expand_as(out)
            # log N(x; mu, s^2 I) = -||x - mu||^2/(2 s^2) - D/2 log(2 pi s^2)
            return gaussian_log_likelihood(xf, out, logvar)
        y = (xf + 1.0) / 2.0
        # sum_d y log sigmoid(l) + (1 - y) log(1 - sigmoid(l)), computed stably from the logits
        return -F.binary_cross_entropy_with_logits(out, y, reduction="none").sum(1)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reconstruction: decode a reparameterized sample of q(z | x). Shape of ``x``."""
        mean, logvar = self.encode(x)
        return self.decode(reparameterize(mean, logvar, generator))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decode(mean of q(z | x)): the deterministic reconstruction, shape of ``x``."""
        return self.decode(self.encode(x)[0])

    def sample_decoder(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw x ~ p(x | z): the decoder mean plus the decoder's noise, shape ``(N, *data_shape)``.

        Gaussian: x = decode(z) + sigma_dec * eps, eps ~ N(0, I), independent across pixels (the
        covariance sigma_dec^2 I is diagonal: pixels are conditionally independent given z).
        Bernoulli: each pixel is 1 with probability sigmoid(logit), else -1.

        Raises
        ------
        ValueError
            If ``z`` is not ``(N, latent_dim)``.
        """
        mean = self.decode(z)
        if self.likelihood == "gaussian":
            sigma = torch.exp(0.5 * self.decoder_logvar).to(mean.dtype)
            return mean + sigma * randn(mean.shape, generator, mean.device, mean.dtype)
        u = rand(mean.shape, generator, mean.device, mean.dtype)
        return torch.where(u < (mean + 1) / 2, 1.0, -1.0).to(mean.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None,
               add_noise: bool = False) -> torch.Tensor:
        """Ancestral sampling: z ~ N(0, I), then the decoder mean (or x ~ p(x | z) if ``add_noise``).

        The decoder mean E[x | z] is what VAE papers usually show as "samples"; a draw from the
        model is ``add_noise=True`` (:meth:`sample_decoder`).

        Returns
        -------
        torch.Tensor
            ``(n, *data_shape)``. With ``add_noise`` a Gaussian decoder adds sigma_dec * eps and a
            Bernoulli decoder draws pixels in {-1, 1}.
        """
        n = check_int("n", n, minimum=1)
        ref = next(self.parameters())
        z = randn((n, self.latent_dim), generator, ref.device, ref.dtype)
        return self.sample_decoder(z, generator) if add_noise else self.decode(z)


class LinearGaussianModel(nn.Module):
    """Linear-Gaussian latent variable model (probabilistic PCA): everything in closed form.

    p(z) = N(0, I_K),  p(x | z) = N(W z + b, s^2 I_D), so

    - p(x) = N(b, C), C = W W^T + s^2 I (Tipping & Bishop 1999, eq. 3-4);
    - p(z | x) = N(M^{-1} W^T (x - b), s^2 M^{-1}), M = W^T W + s^2 I_K (T&B 1999, eq. 6).

    ``encode`` returns the exact posterior mean and the log of the diagonal of its covariance: a
    diagonal Gaussian, which *is* the exact posterior when W's columns are orthogonal (M diagonal).

    Parameters
    ----------
    weight : torch.Tensor
        W, ``(D, K)``.
    bias : torch.Tensor
        b, ``(D,)``.
    noise_std : float
        s > 0.

    Raises
    ------
    ValueError
        If ``weight`` is not 2-D, ``bias`` is not ``(D,)``, or ``noise_std <= 0``.

    References
    ----------
    Tipping, M. E. & Bishop, C. M. (1999), Probabilistic Principal Component Analysis, eq. (3), (6).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, noise_std: float):
        super().__init__()
        check_tensor("weight", weight, ndim=2, floating=True)
        check_tensor("bias", bias, shape=(weight.shape[0],), floating=True)
        check_positive("noise_std", noise_std)
        if isinstance(noise_std, torch.Tensor):
            noise_std = float(noise_std)
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", bias.detach().clone().to(weight.dtype))
        self.noise_std = float(noise_std)
        self.data_dim, self.latent_dim = weight.shape

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        return check_tensor("x", x, shape=(None, self.data_dim), floating=True)

    def _m(self) -> torch.Tensor:
        w = self.weight
        return w.T @ w + self.noise_std**2 * torch.eye(self.latent_dim, dtype=w.dtype, device=w.device)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log N(x; W z + b, s^2 I) ``(N,)``, nats."""
        self._check_x(x)
        check_tensor("z", z, shape=(x.shape[0], self.latent_dim), floating=True)
        mean = z @ self.weight.T + self.bias
        logvar = torch.full_like(mean, 2.0 * math.log(self.noise_std))
        return gaussian_log_likelihood(x, mean, logvar)

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) = log N(x; b, W W^T + s^2 I) ``(N,)``, nats.

        Uses the Woodbury identity and the matrix determinant lemma with M = W^T W + s^2 I_K:
        C^{-1} = (I - W M^{-1} W^T) / s^2 and log det C = (D - K) log s^2 + log det M.
        """
        self._check_x(x)
        d, k, s2 = self.data_dim, self.latent_dim, self.noise_std**2
        r = x - self.bias
        chol = torch.linalg.cholesky(self._m())
        u = torch.cholesky_solve((r @ self.weight).T, chol).T  # M^{-1} W^T r, (N, K)
        quad = (r.pow(2).sum(1) - ((r @ self.weight) * u).sum(1)) / s2  # r^T C^{-1} r
        logdet = (d - k) * math.log(s2) + 2.0 * torch.log(torch.diagonal(chol)).sum()
        return -0.5 * (d * _LOG_2PI + logdet + quad)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact p(z | x): mean ``(N, K)`` = M^{-1} W^T (x - b) and covariance ``(K, K)`` = s^2 M^{-1}."""
        self._check_x(x)
        m_inv = torch.linalg.inv(self._m())
        mean = (x - self.bias) @ self.weight @ m_inv.T
        return mean, self.noise_std**2 * m_inv

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior mean ``(N, K)`` and log of the diagonal of its covariance ``(N, K)``."""
        mean, cov = self.posterior(x)
        return mean, torch.log(torch.diagonal(cov)).expand_as(mean).clone()

    def sample(self, n: int, generator: torch.Generator | None = None,
               return_latents: bool = False):
        """Ancestral sampling: z ~ N(0, I), x = W z + b + s eps. Returns ``x (n, D)`` (and ``z``)."""
        n = check_int("n", n, minimum=1)
        z = randn((n, self.latent_dim), generator, self.weight.device, self.weight.dtype)
        eps = randn((n, self.data_dim), generator, self.weight.device, self.weight.dtype)
        x = z @ self.weight.T + self.bias + self.noise_std * eps  # x = W z + b + s eps
        return (x, z) if return_latents else x


class HierarchicalVAE(nn.Module):
    """A two-level Markovian hierarchical VAE (Sonderby et al. 2016, "Ladder Variational Autoencoders").

    Generative model p(x, z1, z2) = p(z2) p(z1 | z2) p(x | z1), p(z2) = N(0, I),
    p(z1 | z2) = N(mu(z2), diag exp(lv(z2))), p(x | z1) = N(decode(z1), sigma_dec^2 I);
    inference model q(z1, z2 | x) = q(z1 | x) q(z2 | z1), both diagonal Gaussians. The ELBO is::

        ELBO(x) = E_q[log p(x | z1) + log p(z1 | z2) + log p(z2) - log q(z1 | x) - log q(z2 | z1)]
                = E_{q(z1|x)}[log p(x | z1) - log q(z1 | x) + B(z1)],
        B(z1)   = E_{q(z2|z1)}[log p(z1 | z2)] - KL(q(z2 | z1) || p(z2))  <=  log p(z1),

    where p(z1) = integral p(z1 | z2) p(z2) dz2 is the *learned prior* of z1: the two-level ELBO is
    a flat VAE's ELBO (estimator A, Kingma & Welling 2014 eq. 6) with log N(z1; 0, I) replaced by
    the lower bound B(z1) on log p(z1) (:meth:`prior_log_prob_bound`). It is estimated by
    reparameterized samples of z1 then z2, with the top KL in closed form.

    Parameters
    ----------
    data_dim : int
        D; data are vectors ``(N, D)`` (flatten images first).
    latent_dims : tuple of int
        (K1, K2).
    hidden_dim : int
        Width of every hidden layer (two for q(z1 | x) and p(x | z1), one for the top level).
    decoder_std : float
        Fixed sigma_dec > 0.

    Raises
    ------
    ValueError
        For sizes < 1, ``latent_dims`` not of length 2, or ``decoder_std <= 0``.

    References
    ----------
    Sonderby, C. K. et al. (2016), Ladder Variational Autoencoders, eq. (1)-(3) (the generative
    and inference models; bottom-up inference is what is used here). Hoffman, M. D. & Johnson,
    M. J. (2016), ELBO surgery (why a learned prior helps: :func:`aggregate_posterior_kl`).
    """

    def __init__(self, data_dim: int, latent_dims: tuple[int, int] = (2, 2), hidden_dim: int = 64,
                 decoder_std: float = 0.1):
        super().__init__()
        self.data_dim = check_int("data_dim", data_dim, minimum=1)
        if len(latent_dims) != 2:
            raise ValueError(f"latent_dims: expected two sizes (K1, K2), got {latent_dims}")
        k1, k2 = (check_int("latent_dims", k, minimum=1) for k in latent_dims)
        self.latent_dims = (k1, k2)
        self.latent_dim = k1
        check_positive("decoder_std", decoder_std)
        self.decoder_std = float(decoder_std)
        h = check_int("hidden_dim", hidden_dim, minimum=1)
        self.q_z1 = MLP(data_dim, 2 * k1, (h, h))
        self.q_z2 = MLP(k1, 2 * k2, (h,))
        self.p_z1 = MLP(k2, 2 * k1, (h,))
        self.p_x = MLP(k1, data_dim, (h, h))

    @classmethod
    def from_flat(cls, model: VAE, top_latent_dim: int = 2, hidden_dim: int = 64) -> HierarchicalVAE:
        """A two-level model whose bottom level is a trained flat :class:`VAE`, frozen.

        q(z1 | x) is (a copy of) ``model``'s encoder and p(x | z1) its Gaussian decoder with its
        sigma_dec; only the top level, q(z2 | z1) and p(z1 | z2), is new and trainable. Training
        it by :func:`train_vae` on the flattened data replaces the flat prior N(0, I) by a learned
        prior p(z1) with the same encoder and decoder, so the ELBO difference to ``model`` is what
        the hierarchy adds (per example, E_{q(z1|x)}[B(z1) - log N(z1; 0, I)]).

        Parameters
        ----------
        model : VAE
            With ``likelihood="gaussian"``.
        top_latent_dim : int
            K2 >= 1.
        hidden_dim : int
            Width of the top level's hidden layer.

        Returns
        -------
        HierarchicalVAE
            ``data_dim`` = ``model.data_dim``; on ``model``'s device and dtype; the copied
            bottom-level parameters have ``requires_grad=False``.

        Raises
        ------
        TypeError
            If ``model`` is not a :class:`VAE`.
        ValueError
            If ``model`` has a Bernoulli likelihood.
        """
        import copy

        if not isinstance(model, VAE):
            raise TypeError(f"model: expected a course_lib.vae.VAE, got {type(model).__name__}")
        if model.likelihood != "gaussian":
            raise ValueError(f"model: expected a Gaussian decoder, got likelihood={model.likelihood!r}")
        ref = next(model.parameters())
        decoder_std = math.exp(0.5 * model.decoder_logvar.item())
        out = cls(model.data_dim, (model.latent_dim, top_latent_dim), hidden_dim, decoder_std)
        out.q_z1 = copy.deepcopy(model.encoder)
        out.p_x = copy.deepcopy(model.decoder)
        for p in list(out.q_z1.parameters()) + list(out.p_x.parameters()):
            p.requires_grad_(False)
        return out.to(device=ref.device, dtype=ref.dtype)

    @staticmethod
    def _split(h):
        mean, logvar = h.chunk(2, dim=-1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z1 | x): ``(mean, logvar)``, each ``(N, K1)``."""
        check_tensor("x", x, shape=(None, self.data_dim), floating=True)
        return self._split(self.q_z1(x))

    def log_likelihood(self, x: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        """log p(x | z1) ``(N,)``, nats."""
        check_tensor("x", x, shape=(None, self.data_dim), floating=True)
        check_tensor("z1", z1, shape=(x.shape[0], self.latent_dims[0]), floating=True)
        mean = self.p_x(z1)
        return gaussian_log_likelihood(x, mean, torch.full_like(mean, 2 * math.log(self.decoder_std)))

    def prior_log_prob_bound(self, z1: torch.Tensor,
                             generator: torch.Generator | None = None) -> torch.Tensor:
        """Single-sample estimate of B(z1) = E_{q(z2|z1)}[log p(z1 | z2)] - KL(q(z2 | z1) || p(z2)).

        B(z1) is the ELBO of the top level, a lower bound on the log-density log p(z1) of the
        learned prior (the expectation of this estimate is <= log p(z1)). ``(N,)``, nats.
        """
        check_tensor("z1", z1, shape=(None, self.latent_dims[0]), floating=True)
        m2, lv2 = self._split(self.q_z2(z1))
        z2 = reparameterize(m2, lv2, generator)
        pm1, plv1 = self._split(self.p_z1(z2))
        # log p(z1 | z2) - KL(q(z2 | z1) || N(0, I)), the KL in closed form
        return diag_gaussian_log_prob(z1, pm1, plv1) - kl_standard_normal(m2, lv2)

    def elbo(self, x: torch.Tensor, num_samples: int = 1,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Monte Carlo ELBO ``(N,)`` of the two-level model, nats (formula in the class docstring)."""
        check_tensor("x", x, shape=(None, self.data_dim), floating=True)
        s = check_int("num_samples", num_samples, minimum=1)
        xs = _repeat_batch(x, s)
        m1, lv1 = self._split(self.q_z1(xs))
        z1 = reparameterize(m1, lv1, generator)
        rec = self.log_likelihood(xs, z1)
        # log p(x | z1) - log q(z1 | x) + B(z1): the flat estimator A with log p(z1) -> B(z1)
        out = rec - diag_gaussian_log_prob(z1, m1, lv1) + self.prior_log_prob_bound(z1, generator)
        return out.reshape(s, x.shape[0]).mean(0)

    def sample(self, n: int, generator: torch.Generator | None = None,
               return_latents: bool = False):
        """Ancestral sampling z2 ~ N(0, I), z1 ~ p(z1 | z2), x = decoder mean.

        Returns ``x`` ``(n, D)``, and ``z1`` ``(n, K1)`` (a sample of the learned prior) when
        ``return_latents``.
        """
        n = check_int("n", n, minimum=1)
        ref = next(self.parameters())
        z2 = randn((n, self.latent_dims[1]), generator, ref.device, ref.dtype)
        z1 = reparameterize(*self._split(self.p_z1(z2)), generator)
        x = self.p_x(z1)
        return (x, z1) if return_latents else x


# ----------------------------------------------------------------------------------------------
# gradient estimators: reparameterization vs score function (REINFORCE)
# ----------------------------------------------------------------------------------------------
@dataclass
class GradientSamples:
    """Per-sample estimates of the gradient of E_q[f(z)] w.r.t. q's parameters, each ``(S, K)``.

    Their mean over the first axis is the S-sample estimator; their variance is what makes one
    estimator better than another.
    """

    mean: torch.Tensor
    logvar: torch.Tensor


def _check_q(mean, logvar, num_samples):
    check_tensor("mean", mean, ndim=1, floating=True)
    check_tensor("logvar", logvar, ndim=1, floating=True)
    check_same_shape("mean", mean, "logvar", logvar)
    return check_int("num_samples", num_samples, minimum=1), _check_logvar("logvar", logvar)


def reparameterization_gradient(f, mean: torch.Tensor, logvar: torch.Tensor, num_samples: int,
                                generator: torch.Generator | None = None) -> GradientSamples:
    """Pathwise (reparameterization) estimates of grad E_{N(z; mean, diag exp(logvar))}[f(z)].

    z_s = mean + exp(logvar/2) * eps_s, and the s-th estimate is grad_{mean, logvar} f(z_s), computed
    by autograd through z_s (Kingma & Welling 2014, section 2.4): it needs f to be differentiable.

    Parameters
    ----------
    f : callable
        ``f(z)`` with ``z`` ``(S, K)`` returning ``(S,)`` (one value per row, rows independent).
    mean, logvar : torch.Tensor
        ``(K,)``, the parameters of q.
    num_samples : int
        S >= 1.
    generator : torch.Generator, optional

    Returns
    -------
    GradientSamples
        ``mean`` and ``logvar`` fields ``(S, K)``.

    Raises
    ------
    ValueError
        On mismatched shapes, ``num_samples < 1`` or an ``f`` that does not return ``(S,)``.
    """
    num_samples, logvar = _check_q(mean, logvar, num_samples)
    m = mean.detach().expand(num_samples, -1).clone().requires_grad_(True)
    lv = logvar.detach().expand(num_samples, -1).clone().requires_grad_(True)
    with torch.enable_grad():
        values = f(reparameterize(m, lv, generator))
        if values.shape != (num_samples,):
            raise ValueError(f"f: expected shape ({num_samples},), got {tuple(values.shape)}")
        g_m, g_lv = torch.autograd.grad(values.sum(), (m, lv))
    return GradientSamples(mean=g_m, logvar=g_lv)


def score_function_gradient(f, mean: torch.Tensor, logvar: torch.Tensor, num_samples: int,
                            generator: torch.Generator | None = None) -> GradientSamples:
    """Score-function (REINFORCE, log-derivative) estimates of grad E_q[f(z)], q = N(mean, diag exp(logvar)).

    grad E_q[f] = E_q[f(z) grad log q(z)], so the s-th estimate is f(z_s) grad log q(z_s), with
    d log q / d mean = (z - mean) / sigma^2 and d log q / d logvar = ((z - mean)^2 / sigma^2 - 1) / 2
    (Williams 1992; Kingma & Welling 2014, section 2.2). Needs only values of f, not its gradient.

    Parameters, Returns and Raises as :func:`reparameterization_gradient`.
    """
    num_samples, logvar = _check_q(mean, logvar, num_samples)
    with torch.no_grad():
        mean, logvar = mean.detach(), logvar.detach()
        eps = randn((num_samples, mean.shape[0]), generator, mean.device, mean.dtype)
        z = mean + torch.exp(0.5 * logvar) * eps
        values = f(z)
        if values.shape != (num_samples,):
            raise ValueError(f"f: expected shape ({num_samples},), got {tuple(values.shape)}")
        # (z - mean) / sigma^2 = eps / sigma;  ((z - mean)^2 / sigma^2 - 1) / 2 = (eps^2 - 1) / 2
        score_mean = eps * torch.exp(-0.5 * logvar)
        score_logvar = 0.5 * (eps.pow(2) - 1.0)
        return GradientSamples(mean=values[:, None] * score_mean, logvar=values[:, None] * score_logvar)


# ----------------------------------------------------------------------------------------------
# why samples are blurry: the optimal Gaussian decoder mean is a conditional average
# ----------------------------------------------------------------------------------------------
def optimal_decoder_mean(z: torch.Tensor, x_data: torch.Tensor, mean: torch.Tensor,
                         logvar: torch.Tensor) -> torch.Tensor:
    """The decoder mean minimizing E_{x ~ data} E_{q(z|x)} ||x - mu(z)||^2 for a fixed encoder.

    For data {x_1..x_n} with equal weights and encoder q(z | x_i) = N(mean_i, diag exp(logvar_i)),
    the minimizer is the posterior average, the reason of the blur (Prince 2023, Chapter 17)

        mu*(z) = E[x | z] = sum_i x_i q(z | x_i) / sum_i q(z | x_i),

    a convex combination of the data points: where the q(z | x_i) overlap, mu*(z) averages
    different x_i, which is the blur.

    Parameters
    ----------
    z : torch.Tensor
        ``(M, K)`` latent points where mu* is evaluated.
    x_data : torch.Tensor
        ``(n, D)`` data points.
    mean, logvar : torch.Tensor
        ``(n, K)`` encoder outputs for ``x_data``.

    Returns
    -------
    torch.Tensor
        ``(M, D)``.

    Raises
    ------
    ValueError
        On inconsistent shapes.
    """
    check_tensor("z", z, ndim=2, floating=True)
    check_tensor("x_data", x_data, ndim=2, floating=True)
    mean, logvar = _check_encoded(mean, logvar, x_data.shape[0], z.shape[1])
    # log q(z_m | x_i), (M, n); softmax over i gives the weights q(z|x_i) / sum_j q(z|x_j)
    log_q = diag_gaussian_log_prob(z[:, None, :], mean[None], logvar[None])
    return torch.softmax(log_q, dim=1) @ x_data


def aggregate_posterior_log_prob(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log q(z) of the aggregate posterior q(z) = (1/n) sum_i N(z; mean_i, diag exp(logvar_i)).

    q(z) is the encoder's distribution of codes over a data set {x_1..x_n} (the cloud of points in
    a latent scatter plot, each blurred by its q(z | x_i)); computed by a log-sum-exp over the n
    components, in chunks of ``z``.

    Parameters
    ----------
    z : torch.Tensor
        ``(M, K)`` points.
    mean, logvar : torch.Tensor
        ``(n, K)``, the encoder outputs for the n data points.

    Returns
    -------
    torch.Tensor
        ``(M,)``, nats.

    Raises
    ------
    ValueError
        On inconsistent shapes or NaN log-variances.
    """
    check_tensor("z", z, ndim=2, floating=True)
    check_tensor("mean", mean, ndim=2, floating=True)
    mean, logvar = _check_encoded(mean, logvar, mean.shape[0], z.shape[1])
    n, k = mean.shape
    chunks = z.split(max(1, 2**22 // (n * k)))
    log_q = [torch.logsumexp(diag_gaussian_log_prob(c[:, None, :], mean[None], logvar[None]), 1) for c in chunks]
    return torch.cat(log_q) - math.log(n)


def aggregate_posterior_kl(mean: torch.Tensor, logvar: torch.Tensor, num_samples: int,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """Monte Carlo terms of KL(q(z) || N(0, I)) for the aggregate posterior q(z) of a data set.

    q(z) = (1/n) sum_i N(z; mean_i, diag exp(logvar_i)) (:func:`aggregate_posterior_log_prob`).
    The average over the data of the ELBO's KL term splits as (Hoffman & Johnson 2016, eq. 3-4)

        (1/n) sum_i KL(q(z | x_i) || p(z)) = I_q(i; z) + KL(q(z) || p(z)),

    with I_q(i; z) the mutual information between the data index and the code, and only the second
    part depends on the prior: KL(q(z) || p(z)) is the most any other prior (a learned one, e.g.
    :class:`HierarchicalVAE`) can add to the average ELBO for this encoder and decoder. Each term
    is log q(z_s) - log N(z_s; 0, I) with z_s ~ q(z) (a data point drawn at random, then a draw
    of its Gaussian).

    Parameters
    ----------
    mean, logvar : torch.Tensor
        ``(n, K)``, the encoder outputs for the n data points.
    num_samples : int
        S >= 1 draws.
    generator : torch.Generator, optional

    Returns
    -------
    torch.Tensor
        ``(S,)`` nats: their mean estimates KL(q(z) || N(0, I)), their standard deviation divided
        by sqrt(S) is its standard error.

    Raises
    ------
    ValueError
        On inconsistent shapes, NaN log-variances or ``num_samples < 1``.

    References
    ----------
    Hoffman, M. D. & Johnson, M. J. (2016), ELBO surgery: yet another way to carve up the
    variational evidence lower bound, NIPS Workshop on Advances in Approximate Bayesian Inference.
    """
    num_samples = check_int("num_samples", num_samples, minimum=1)
    check_tensor("mean", mean, ndim=2, floating=True)
    mean, logvar = _check_encoded(mean, logvar, mean.shape[0], None)
    n = mean.shape[0]
    u = torch.rand(num_samples, dtype=torch.float64, device=generator.device if generator else mean.device,
                   generator=generator)
    pick = (u * n).long().clamp_max(n - 1).to(mean.device)  # uniform over the n components
    z = reparameterize(mean[pick], logvar[pick], generator)  # (S, K) ~ q(z)
    return aggregate_posterior_log_prob(z, mean, logvar) - standard_normal_log_prob(z)


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------
def train_vae(model: nn.Module, data: torch.Tensor, num_steps: int, beta: float = 1.0,
              num_samples: int = 1, batch_size: int = 128, lr: float = 1e-3,
              generator: torch.Generator | None = None, device: torch.device | str | None = None,
              progress: bool = True, desc: str = "VAE"):
    """Maximize the ELBO (or the beta-weighted one) with :func:`course_lib.train.fit`.

    The loss is :func:`vae_loss`, -(reconstruction - beta KL) averaged over the minibatch, so
    ``History.losses`` holds minibatch estimates of -ELBO in nats per example when ``beta = 1``.
    A :class:`HierarchicalVAE` is trained on its own ``-elbo`` (``beta`` must then be 1).

    Returns
    -------
    course_lib.train.History
    """
    from course_lib.train import fit

    check_positive("beta", beta, strict=False)
    if isinstance(model, HierarchicalVAE):
        if beta != 1.0:
            raise ValueError(f"beta: the hierarchical VAE is trained on its ELBO (beta = 1), got {beta}")

        def loss_fn(m, batch, generator=None):
            return -m.elbo(batch, num_samples, generator).mean()
    else:
        def loss_fn(m, batch, generator=None):
            return vae_loss(m, batch, beta, num_samples, generator)

    return fit(model, loss_fn, data, num_steps, batch_size=batch_size, lr=lr, generator=generator,
               device=device, progress=progress, desc=desc)


@dataclass
class LinearVAEFit:
    """A linear VAE fitted by :func:`fit_linear_vae`.

    Decoder p(x | z) = N(W z + b, s^2 I) (``weight`` W ``(D, K)``, ``bias`` b = the data mean ``(D,)``,
    ``noise_std`` s); encoder q(z | x) = N(V (x - b), diag exp(lv)) (``encoder_weight`` V ``(K, D)``,
    ``encoder_logvar`` lv ``(K,)``). ``kl_per_dim`` ``(K,)`` is the average over the data of
    KL(q(z_k | x) || N(0, 1)) for each latent dimension k, and ``elbo`` the average ELBO per
    example, both exact (no Monte Carlo), in nats.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    noise_std: float
    encoder_weight: torch.Tensor
    encoder_logvar: torch.Tensor
    kl_per_dim: torch.Tensor
    elbo: float

    def model(self) -> LinearGaussianModel:
        """The decoder as a :class:`LinearGaussianModel` (exact log p(x) and posterior)."""
        return LinearGaussianModel(self.weight, self.bias, self.noise_std)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x): ``(mean, logvar)``, each ``(N, K)``."""
        check_tensor("x", x, shape=(None, self.weight.shape[0]), floating=True)
        mean = (x.to(self.bias.dtype) - self.bias) @ self.encoder_weight.T
        return mean, self.encoder_logvar.expand_as(mean)


def fit_linear_vae(data: torch.Tensor, latent_dim: int, noise_std: float, max_iter: int = 500,
                   generator: torch.Generator | None = None) -> LinearVAEFit:
    """Maximize the exact average ELBO of a linear VAE over its decoder and encoder (L-BFGS, float64).

    The linear VAE of Lucas et al. (2019): p(z) = N(0, I_K), p(x | z) = N(W z + b, s^2 I_D) with s
    fixed, q(z | x) = N(V (x - b), diag exp(lv)). With b the data mean mu (the optimum; an encoder
    offset would only add to the KL), the ELBO averaged over the data depends on the data only
    through their covariance S (1/N normalization):

        E_x ELBO = -D/2 log(2 pi s^2)
                   - [tr S - 2 tr(W V S) + tr(W^T W V S V^T) + sum_k exp(lv_k) ||w_k||^2] / (2 s^2)
                   - 1/2 sum_k [(V S V^T)_kk + exp(lv_k) - 1 - lv_k],

    which is maximized over (W, V, lv) from a random start. At the optimum latent k carries
    KL_k = 1/2 log(lambda_k / s^2) nats when s^2 < lambda_k and is switched off (KL_k = 0, posterior
    collapse) when s^2 > lambda_k, lambda_k the k-th eigenvalue of S (Lucas et al. 2019; Tipping &
    Bishop 1999 for the maximum-likelihood W): the notebook checks this against the eigenvalues.

    Parameters
    ----------
    data : torch.Tensor
        ``(N, ...)`` examples (flattened to ``(N, D)``).
    latent_dim : int
        K >= 1.
    noise_std : float
        s > 0, the fixed decoder standard deviation.
    max_iter : int
        L-BFGS iterations (>= 1).
    generator : torch.Generator, optional
        Draws the random start (W and V with entries N(0, 0.1^2)).

    Returns
    -------
    LinearVAEFit
        float64 tensors on the CPU.

    Raises
    ------
    ValueError
        For ``latent_dim < 1``, ``noise_std <= 0``, ``max_iter < 1`` or fewer than 2 examples.

    References
    ----------
    Lucas, J., Tucker, G., Grosse, R. & Norouzi, M. (2019), Don't Blame the ELBO! A Linear VAE
    Perspective on Posterior Collapse, NeurIPS. Tipping & Bishop (1999), eq. (7).
    """
    check_tensor("data", data, floating=True)
    k = check_int("latent_dim", latent_dim, minimum=1)
    check_positive("noise_std", noise_std)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    x = data.detach().reshape(data.shape[0], -1).to("cpu", torch.float64)
    n, d = x.shape
    if n < 2:
        raise ValueError(f"data: expected at least 2 examples, got shape {tuple(data.shape)}")
    mu = x.mean(0)
    cov = (x - mu).T @ (x - mu) / n                      # S, (D, D)
    s2 = float(noise_std) ** 2
    g_dev = generator.device if generator is not None else "cpu"
    w = (0.1 * torch.randn(d, k, dtype=torch.float64, device=g_dev, generator=generator)).cpu().requires_grad_()
    v = (0.1 * torch.randn(k, d, dtype=torch.float64, device=g_dev, generator=generator)).cpu().requires_grad_()
    lv = torch.zeros(k, dtype=torch.float64, requires_grad=True)

    def average_elbo(w, v, lv):
        vs = v @ cov                                     # V S, (K, D)
        code_power = (vs * v).sum(1)                     # (V S V^T)_kk = E_x[m_k(x)^2]
        sq = (cov.trace() - 2 * (w * vs.T).sum() + ((w.T @ w) * (vs @ v.T)).sum()
              + (lv.exp() * w.pow(2).sum(0)).sum())      # E_x E_q ||x - W z - b||^2
        rec = -0.5 * d * math.log(2 * math.pi * s2) - sq / (2 * s2)
        return rec - 0.5 * (code_power + lv.exp() - 1 - lv).sum(), code_power

    opt = torch.optim.LBFGS([w, v, lv], lr=1, max_iter=max_iter, tolerance_grad=1e-10,
                            tolerance_change=1e-14, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -average_elbo(w, v, lv)[0]
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        value, code_power = average_elbo(w, v, lv)
        # KL is linear in m^2, so its average over the data is the KL at m^2 = E_x[m_k(x)^2]
        kl = kl_standard_normal(code_power.clamp_min(0).sqrt()[:, None], lv.detach()[:, None])
    return LinearVAEFit(weight=w.detach(), bias=mu, noise_std=float(noise_std),
                        encoder_weight=v.detach(), encoder_logvar=lv.detach(), kl_per_dim=kl,
                        elbo=value.item())


@dataclass
class DecoderStdResult:
    """One VAE of :func:`decoder_std_sweep`: per-example averages over the data, nats."""

    decoder_std: float
    kl: float
    reconstruction_mse: float
    elbo: float
    kl_per_dim: torch.Tensor
    reconstructions: torch.Tensor
    samples: torch.Tensor
    model: nn.Module | None = None


def decoder_std_sweep(data: torch.Tensor, decoder_stds: Sequence[float], num_steps: int,
                      latent_dim: int = 2, hidden_dims: Sequence[int] = (128,), batch_size: int = 128,
                      lr: float = 2e-3, num_show: int = 8, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None,
                      progress: bool = True) -> list[DecoderStdResult]:
    """Train one Gaussian-decoder VAE per fixed sigma_dec and record its KL and reconstructions.

    Multiplying the ELBO by 2 sigma_dec^2 gives -||x - x_hat||^2 - 2 sigma_dec^2 KL + const: a large
    decoder variance is a large KL weight, and past the data's variance along a direction it pays to
    switch the latent off (KL -> 0, posterior collapse; for a linear decoder, dimension i collapses
    exactly when sigma_dec^2 exceeds the i-th eigenvalue of the data covariance, Lucas et al. 2019).

    Parameters
    ----------
    data : torch.Tensor
        ``(N, ...)`` training data (also used for the reported averages).
    decoder_stds : sequence of float
        The sigma_dec values (> 0).
    num_steps : int
        Optimizer steps per model.
    latent_dim, hidden_dims, batch_size, lr :
        The VAE and its training.
    num_show : int
        How many reconstructions (of the first ``num_show`` examples) and samples to keep.
    generator, device, progress :
        As :func:`train_vae`.

    Returns
    -------
    list of DecoderStdResult
        In the order of ``decoder_stds``; tensors on the CPU, ``model`` the trained VAE (eval mode).
    """
    results = []
    for sd in decoder_stds:
        check_positive("decoder_stds", sd)
        model = VAE(tuple(data.shape[1:]), latent_dim, hidden_dims, decoder_std=float(sd))
        train_vae(model, data, num_steps, batch_size=batch_size, lr=lr, generator=generator,
                  device=device, progress=progress, desc=f"sigma_dec = {sd:g}")
        model.eval()
        with torch.no_grad():
            x = data.to(model_device(model))
            mean, logvar = model.encode(x)
            # KL(q(z_j | x) || N(0, 1)) per latent dimension j, (N, K)
            kl_dims = torch.stack([kl_standard_normal(mean[:, j:j + 1], logvar[:, j:j + 1])
                                   for j in range(mean.shape[1])], dim=1)
            recon = model.reconstruct(x)
            e = elbo(model, x, 1, generator).mean().item()
            samples = model.sample(num_show, generator)
        results.append(DecoderStdResult(
            decoder_std=float(sd), kl=kl_dims.sum(1).mean().item(),
            reconstruction_mse=(x - recon).pow(2).flatten(1).sum(1).mean().item(), elbo=e,
            kl_per_dim=kl_dims.mean(0).cpu(), reconstructions=recon[:num_show].cpu(),
            samples=samples.cpu(), model=model))
    return results
