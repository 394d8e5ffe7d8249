"""Toy distributions with exact densities: the ground truth every 2-D experiment is measured against.

:class:`GaussianMixture` is an exact mixture of Gaussians with diagonal covariances. Everything a
course on generative models asks of a density is available in closed form: samples, the
log-density, the score and the Hessian of the log-density, the law of ``x + sigma * eps`` (another
mixture), and the Bayes-optimal denoiser ``E[x | y]`` with its posterior covariance (Tweedie's
formula and its second-order version hold exactly and are checked against these closed forms in
notebook 06).

The benchmark mixtures are the ones used for mode collapse by VEEGAN (Srivastava et al. 2017) and
PacGAN (Lin et al. 2018): :func:`ring_mixture` (8 modes on the unit circle, std 0.01) and
:func:`grid_mixture` (25 modes on ``{-4, -2, 0, 2, 4}^2``, std 0.05). The sample-only toys
:func:`two_moons`, :func:`swiss_roll` and :func:`checkerboard` are scaled to roughly the unit
square so that one network and one learning rate serve them all.

References
----------
- B. Efron, "Tweedie's formula and selection bias", JASA 106(496):1602-1614, 2011.
- C. Meng, Y. Song, W. Li, S. Ermon, "Estimating high order gradients of the data distribution by
  denoising", NeurIPS 2021 (second-order Tweedie, REFERENCES.md A8).
- A. Srivastava et al., "VEEGAN", NeurIPS 2017; Z. Lin et al., "PacGAN", NeurIPS 2018
  (benchmark mixtures, REFERENCES.md B1-B2).
"""

from __future__ import annotations

import math

import torch

from course_lib._checks import as_tensor, check_int, check_positive, check_tensor
from course_lib._primitives import draw_device, rand, randint, randn, randperm
from course_lib.gaussians import diag_gaussian_log_prob

__all__ = ["GaussianMixture", "ring_mixture", "grid_mixture", "bimodal_1d",
           "two_moons", "swiss_roll", "checkerboard"]


class GaussianMixture:
    r"""Mixture of Gaussians with diagonal covariances, everything in closed form.

    .. math::  p(x) = \sum_{k=1}^K w_k\, \mathcal N\big(x;\ \mu_k,\ \mathrm{diag}(s_k^2)\big)

    Parameters
    ----------
    means : tensor (K, D)
        Component means :math:`\mu_k`. Its floating dtype and device become the mixture's
        (an integer tensor or a list becomes the default float dtype).
    stds : tensor (K,) or (K, D), or a positive number
        Component standard deviations :math:`s_k` (not variances): ``(K,)`` for isotropic
        components, ``(K, D)`` for diagonal ones; a single number is shared by every component.
        Stored as ``(K, D)``.
    weights : tensor (K,), optional
        Mixture weights :math:`w_k`, non-negative and summing to one (relative tolerance 1e-6).
        Default: uniform ``1/K``.

    Attributes
    ----------
    means : tensor (K, D)
    stds : tensor (K, D)
    weights : tensor (K,)

    Raises
    ------
    ValueError
        ``means`` not 2-D; ``stds`` of the wrong shape or not positive; ``weights`` of the wrong
        shape, negative, or not summing to one (the message gives the sum).
    TypeError
        Arguments that are not tensors or array-likes.

    Notes
    -----
    Methods that take points ``x`` (or ``y``) of shape ``(N, D)`` compute in ``x``'s dtype and on
    ``x``'s device (the parameters are cast there), so a float64 ``x`` gives float64 results.
    Every log-density is a log-sum-exp over components: finite far from every mode (tested at
    ``|x|`` up to 1e3 with std 0.01) and free of NaN.

    References
    ----------
    Efron (2011) for Tweedie's formula; Meng et al. (2021) for its second-order version
    (REFERENCES.md A8).

    Examples
    --------
    >>> mix = GaussianMixture(torch.tensor([[-2.0], [2.0]]), torch.tensor([0.5, 0.5]))
    >>> mix.log_prob(torch.zeros(1, 1)).shape
    torch.Size([1])
    """

    def __init__(self, means, stds, weights=None):
        means = as_tensor("means", means)
        check_tensor("means", means, ndim=2)
        if not means.is_floating_point():
            means = means.to(torch.get_default_dtype())
        num_components, dim = means.shape
        if num_components < 1 or dim < 1:
            raise ValueError(f"means: expected shape (K, D) with K >= 1 and D >= 1, "
                             f"got {tuple(means.shape)}")
        kw = dict(dtype=means.dtype, device=means.device)

        stds = as_tensor("stds", stds).to(**kw)
        if stds.dim() == 0:
            stds = stds.expand(num_components, dim)
        elif stds.dim() == 1:
            if stds.shape[0] != num_components:
                raise ValueError(f"stds: expected shape ({num_components},) or "
                                 f"({num_components}, {dim}) to match means {tuple(means.shape)}, "
                                 f"got {tuple(stds.shape)}")
            stds = stds[:, None].expand(num_components, dim)
        elif stds.dim() == 2:
            if tuple(stds.shape) != (num_components, dim):
                raise ValueError(f"stds: expected shape ({num_components},) or "
                                 f"({num_components}, {dim}) to match means {tuple(means.shape)}, "
                                 f"got {tuple(stds.shape)}")
        else:
            raise ValueError(f"stds: expected shape ({num_components},) or ({num_components}, "
                             f"{dim}), got {tuple(stds.shape)}")
        check_positive("stds", stds)
        if not bool(torch.isfinite(stds).all()):
            raise ValueError("stds: expected finite standard deviations, got inf")

        if weights is None:
            weights = torch.full((num_components,), 1.0 / num_components, **kw)
        else:
            weights = as_tensor("weights", weights).to(**kw)
            if tuple(weights.shape) != (num_components,):
                raise ValueError(f"weights: expected shape ({num_components},) to match means "
                                 f"{tuple(means.shape)}, got {tuple(weights.shape)}")
            check_positive("weights", weights, strict=False)
            total = float(weights.double().sum())
            if not abs(total - 1.0) <= 1e-6:
                raise ValueError(f"weights: expected non-negative weights summing to 1 "
                                 f"(relative tolerance 1e-6), got sum {total!r}")

        self.means = means
        self.stds = stds.contiguous()
        self.weights = weights

    # ------------------------------------------------------------------------------------------
    # bookkeeping
    # ------------------------------------------------------------------------------------------
    @property
    def num_components(self) -> int:
        """Number of components K."""
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        """Data dimension D."""
        return self.means.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the parameters."""
        return self.means.dtype

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.means.device

    def to(self, *args, **kwargs) -> "GaussianMixture":
        """Return a copy with the parameters moved/cast like ``torch.Tensor.to``.

        Parameters
        ----------
        *args, **kwargs
            A device, a dtype, or both (``mix.to("cuda")``, ``mix.to(torch.float64)``).

        Returns
        -------
        GaussianMixture
        """
        return GaussianMixture(self.means.to(*args, **kwargs), self.stds.to(*args, **kwargs),
                               self.weights.to(*args, **kwargs))

    def __repr__(self) -> str:
        return (f"GaussianMixture(K={self.num_components}, D={self.dim}, dtype={self.dtype}, "
                f"device={self.device})")

    def _params(self, x: torch.Tensor):
        """Parameters cast to ``x``'s dtype and device."""
        return (self.means.to(x), self.stds.to(x), self.weights.to(x))

    def _check_points(self, name: str, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor of shape (N, {self.dim}), "
                            f"got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{name}: expected shape (N, {self.dim}) to match the mixture's "
                             f"dimension D = {self.dim} (means {tuple(self.means.shape)}), "
                             f"got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
        return x

    def _check_sigma(self, sigma, y: torch.Tensor) -> torch.Tensor:
        """``sigma`` as a tensor broadcastable to ``(N, 1, 1)``: a number, 0-d, (N,) or (N, 1)."""
        if isinstance(sigma, torch.Tensor):
            s = sigma.to(y)
        else:
            try:
                s = torch.tensor(float(sigma), dtype=y.dtype, device=y.device)  # no float32 detour
            except (TypeError, ValueError):
                raise TypeError(f"sigma: expected a number or a tensor, got "
                                f"{type(sigma).__name__}") from None
        if s.dim() == 0:
            s = s.reshape(1, 1, 1)
        elif s.dim() in (1, 2) and s.shape[0] == y.shape[0] and s[0].numel() == 1:
            s = s.reshape(-1, 1, 1)
        else:
            raise ValueError(f"sigma: expected a number or a tensor of shape (N,) with "
                             f"N = {y.shape[0]}, got shape {tuple(s.shape)}")
        check_positive("sigma", s, strict=False)
        if not bool(torch.isfinite(s).all()):
            raise ValueError("sigma: expected finite values, got inf")
        return s

    # ------------------------------------------------------------------------------------------
    # sampling
    # ------------------------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None,
               return_labels: bool = False):
        r"""Draw ``n`` samples: :math:`k \sim \mathrm{Cat}(w)`, :math:`x = \mu_k + s_k \odot \varepsilon`.

        Parameters
        ----------
        n : int
            Number of samples (>= 0).
        generator : torch.Generator, optional
            Random numbers are drawn on the generator's device, then moved to the mixture's.
        return_labels : bool
            Also return the component index of every sample.

        Returns
        -------
        x : tensor (n, D)
            On the mixture's device, in its dtype.
        labels : long tensor (n,)
            Only when ``return_labels``.
        """
        n = check_int("n", n, minimum=0)
        dev = draw_device(generator, self.device)
        labels = torch.multinomial(self.weights.to(dev), n, replacement=True,
                                   generator=generator) if n > 0 else \
            torch.zeros(0, dtype=torch.long, device=dev)
        eps = randn((n, self.dim), generator, self.device, self.dtype)
        labels = labels.to(self.device)
        x = self.means[labels] + self.stds[labels] * eps  # x = mu_k + s_k * eps
        return (x, labels) if return_labels else x

    # ------------------------------------------------------------------------------------------
    # density and its derivatives
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _component_log_probs(x: torch.Tensor, means: torch.Tensor,
                             variances: torch.Tensor) -> torch.Tensor:
        """log N(x; mu_k, diag(v_k)) for every point and component: (N, K).

        ``variances`` is (K, D) or (N, K, D)."""
        # log N = -1/2 sum_d [ (x_d - mu_kd)^2 / v_kd + log v_kd + log 2 pi ]
        return diag_gaussian_log_prob(x[:, None, :], means[None, :, :], var=variances)

    def _joint_log_probs(self, x: torch.Tensor, extra_var=None) -> torch.Tensor:
        """log w_k + log N(x; mu_k, s_k^2 + extra_var): (N, K)."""
        means, stds, weights = self._params(x)
        var = stds * stds
        if extra_var is not None:
            var = var + extra_var
        return torch.log(weights) + self._component_log_probs(x, means, var)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""Log-density :math:`\log p(x) = \operatorname{logsumexp}_k [\log w_k + \log\mathcal N(x;\mu_k, s_k^2)]`.

        Parameters
        ----------
        x : tensor (N, D)

        Returns
        -------
        tensor (N,)
            Nats. Finite for any finite ``x`` (log-sum-exp; no underflow far from the modes).

        Raises
        ------
        ValueError
            ``x`` not of shape ``(N, D)`` with the mixture's ``D``.
        """
        x = self._check_points("x", x)
        return torch.logsumexp(self._joint_log_probs(x), dim=1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        r"""Posterior component probabilities :math:`r_k(x) = w_k \mathcal N(x;\mu_k,s_k^2) / p(x)`.

        Parameters
        ----------
        x : tensor (N, D)

        Returns
        -------
        tensor (N, K)
            Rows sum to one (a softmax of the joint log-probabilities).
        """
        x = self._check_points("x", x)
        return torch.softmax(self._joint_log_probs(x), dim=1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        r"""Score :math:`\nabla_x \log p(x) = \sum_k r_k(x)\, \big(-(x - \mu_k) / s_k^2\big)`.

        Closed form (no autograd), so it can be called inside ``torch.no_grad()``.

        Parameters
        ----------
        x : tensor (N, D)

        Returns
        -------
        tensor (N, D)
        """
        x = self._check_points("x", x)
        means, stds, _ = self._params(x)
        resp = torch.softmax(self._joint_log_probs(x), dim=1)                       # (N, K)
        grads = -(x[:, None, :] - means) / (stds * stds)                            # (N, K, D)
        return (resp[..., None] * grads).sum(1)

    def hessian_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""Hessian of the log-density, in closed form.

        With :math:`g_k = -(x - \mu_k)/s_k^2` and the score :math:`s = \sum_k r_k g_k`,

        .. math::  \nabla_x^2 \log p(x) = \sum_k r_k \big[(g_k - s)(g_k - s)^\top
                   - \mathrm{diag}(1/s_k^2)\big],

        the covariance of :math:`g_k` under the responsibilities minus the mean precision (this
        form avoids the cancellation in :math:`\sum_k r_k g_k g_k^\top - s s^\top` far from the
        modes). Used by the second-order Tweedie formula
        :math:`\mathrm{Cov}[x\mid y] = \sigma^2 (I + \sigma^2 \nabla^2 \log p_\sigma(y))`
        (Meng et al. 2021, REFERENCES.md A8).

        Parameters
        ----------
        x : tensor (N, D)

        Returns
        -------
        tensor (N, D, D)
            Symmetric.
        """
        x = self._check_points("x", x)
        means, stds, _ = self._params(x)
        resp = torch.softmax(self._joint_log_probs(x), dim=1)                       # (N, K)
        prec = 1.0 / (stds * stds)                                                  # (K, D)
        grads = -(x[:, None, :] - means) * prec                                     # (N, K, D)
        s = (resp[..., None] * grads).sum(1)                                        # (N, D)
        c = grads - s[:, None, :]
        outer = torch.einsum("nk,nki,nkj->nij", resp, c, c)
        return outer - torch.diag_embed(resp @ prec)

    # ------------------------------------------------------------------------------------------
    # noising and denoising
    # ------------------------------------------------------------------------------------------
    def convolve(self, sigma: float) -> "GaussianMixture":
        r"""Law of :math:`y = x + \sigma\varepsilon`, :math:`\varepsilon\sim\mathcal N(0, I)`.

        Each component's variance grows by :math:`\sigma^2`:
        :math:`p_\sigma(y) = \sum_k w_k \mathcal N(y; \mu_k, s_k^2 + \sigma^2)`.

        Parameters
        ----------
        sigma : float or 0-d tensor
            Noise standard deviation, >= 0.

        Returns
        -------
        GaussianMixture
        """
        check_positive("sigma", sigma, strict=False)
        sigma = float(sigma)
        if not math.isfinite(sigma):
            raise ValueError(f"sigma: expected a finite number, got {sigma!r}")
        stds = torch.sqrt(self.stds * self.stds + sigma ** 2)                     # sqrt(s^2 + sigma^2)
        return GaussianMixture(self.means.clone(), stds, self.weights.clone())

    def scale(self, factor: float) -> "GaussianMixture":
        r"""Law of :math:`a x`: means :math:`a\mu_k`, stds :math:`|a| s_k` (``factor`` = a != 0).

        With :meth:`convolve` this gives the DDPM marginal
        :math:`q(x_t) = ` ``mix.scale(sqrt(abar_t)).convolve(sqrt(1 - abar_t))``.

        Parameters
        ----------
        factor : float
            Non-zero scale.

        Returns
        -------
        GaussianMixture
        """
        a = float(factor)
        if a == 0.0 or not math.isfinite(a):
            raise ValueError(f"factor: expected a finite non-zero number, got {factor!r}")
        return GaussianMixture(a * self.means, abs(a) * self.stds, self.weights.clone())

    def _posterior_components(self, y: torch.Tensor, sigma):
        """Responsibilities under the convolved law and per-component posterior mean/variance."""
        y = self._check_points("y", y)
        s = self._check_sigma(sigma, y)                                             # (N|1, 1, 1)
        means, stds, _ = self._params(y)
        var = stds * stds                                                           # (K, D)
        noise_var = s * s
        total = var + noise_var                                                     # (N|1, K, D)
        # responsibilities under p_sigma(y) = sum_k w_k N(y; mu_k, s_k^2 + sigma^2)
        resp = torch.softmax(self._joint_log_probs(y, extra_var=noise_var), dim=1)  # (N, K)
        # component posterior of N(mu_k, s_k^2) prior and N(y; x, sigma^2) likelihood:
        # m_k = (s_k^2 y + sigma^2 mu_k) / (s_k^2 + sigma^2), v_k = s_k^2 sigma^2 / (s_k^2 + sigma^2)
        post_mean = (var * y[:, None, :] + noise_var * means) / total               # (N, K, D)
        post_var = (var * noise_var / total).expand_as(post_mean)                   # (N, K, D)
        return resp, post_mean, post_var

    def posterior_mean(self, y: torch.Tensor, sigma) -> torch.Tensor:
        r"""Bayes-optimal denoiser :math:`E[x \mid y]` for :math:`y = x + \sigma\varepsilon`.

        .. math::  E[x\mid y] = \sum_k r_k^\sigma(y)\, \frac{s_k^2\, y + \sigma^2 \mu_k}{s_k^2 + \sigma^2},

        where :math:`r_k^\sigma` are the responsibilities under the convolved mixture
        (:meth:`convolve`). Equals Tweedie's :math:`y + \sigma^2 \nabla \log p_\sigma(y)`
        (Efron 2011), which the tests check.

        Parameters
        ----------
        y : tensor (N, D)
            Noisy observations.
        sigma : float, 0-d tensor or tensor (N,)
            Noise standard deviation (>= 0), shared or one per observation. ``sigma = 0`` gives
            ``y``. For DDPM's ``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps`` use
            ``posterior_mean(x_t / sqrt(abar), sqrt((1 - abar) / abar))``.

        Returns
        -------
        tensor (N, D)

        References
        ----------
        Efron, "Tweedie's formula and selection bias", JASA 2011.
        """
        resp, post_mean, _ = self._posterior_components(y, sigma)
        return (resp[..., None] * post_mean).sum(1)

    def posterior_covariance(self, y: torch.Tensor, sigma) -> torch.Tensor:
        r"""Posterior covariance :math:`\mathrm{Cov}[x \mid y]` for :math:`y = x + \sigma\varepsilon`.

        Law of total covariance over the component :math:`k` given :math:`y`:

        .. math::  \mathrm{Cov}[x\mid y] = \sum_k r_k \big[\mathrm{diag}(v_k)
                   + (m_k - m)(m_k - m)^\top\big],\quad
                   v_k = \frac{s_k^2\sigma^2}{s_k^2+\sigma^2},\ m = E[x\mid y].

        Equals the second-order Tweedie formula
        :math:`\sigma^2 (I + \sigma^2 \nabla^2 \log p_\sigma(y))` (Meng et al. 2021).

        Parameters
        ----------
        y : tensor (N, D)
        sigma : float, 0-d tensor or tensor (N,)
            As in :meth:`posterior_mean`.

        Returns
        -------
        tensor (N, D, D)
            Symmetric positive semi-definite.

        References
        ----------
        Meng, Song, Li, Ermon, NeurIPS 2021 (REFERENCES.md A8).
        """
        resp, post_mean, post_var = self._posterior_components(y, sigma)
        m = (resp[..., None] * post_mean).sum(1)                                    # (N, D)
        c = post_mean - m[:, None, :]
        between = torch.einsum("nk,nki,nkj->nij", resp, c, c)
        within = torch.diag_embed((resp[..., None] * post_var).sum(1))
        return within + between

    def posterior_third_central_moment(self, y: torch.Tensor, sigma) -> torch.Tensor:
        r"""Diagonal of the posterior's third central moment, :math:`E[(x_i - m_i)^3 \mid y]`.

        The posterior of a Gaussian mixture under Gaussian noise is again a Gaussian mixture, with
        weights :math:`r_k`, means :math:`m_k` and variances :math:`v_k` (see
        :meth:`posterior_covariance`). With :math:`m = E[x\mid y]` and :math:`c_k = m_k - m`, each
        component contributes :math:`E[(c_k + \sqrt{v_k} z)^3] = c_k^3 + 3 v_k c_k` (odd moments
        of :math:`z` vanish), so per coordinate

        .. math::  E[(x_i - m_i)^3\mid y] = \sum_k r_k\,\big(c_{k,i}^3 + 3\,v_{k,i}\,c_{k,i}\big).

        The third central moment is the third cumulant, which the higher-order Tweedie formula
        gives as :math:`\sigma^6\,\partial^3 \log p_\sigma(y)/\partial y_i^3`
        (:func:`course_lib.score.tweedie_cumulants`); this Bayes-rule form is its independent
        reference. In D dimensions the full third cumulant is a D x D x D tensor; this is its
        diagonal :math:`\kappa_{iii}` (all of it for D = 1).

        Parameters
        ----------
        y : tensor (N, D)
            Noisy observations :math:`y = x + \sigma\varepsilon`.
        sigma : float, 0-d tensor or tensor (N,)
            As in :meth:`posterior_mean` (``sigma = 0`` gives 0).

        Returns
        -------
        tensor (N, D)
            Zero for a single Gaussian component (a Gaussian posterior); its sign is the skewness's.

        References
        ----------
        Efron, "Tweedie's formula and selection bias", JASA 2011, Sec. 2; Meng, Song, Li, Ermon,
        "Estimating high order gradients of the data distribution by denoising", NeurIPS 2021.
        """
        resp, post_mean, post_var = self._posterior_components(y, sigma)
        m = (resp[..., None] * post_mean).sum(1)                                    # (N, D)
        c = post_mean - m[:, None, :]                                               # (N, K, D)
        return (resp[..., None] * (c ** 3 + 3 * post_var * c)).sum(1)


# ------------------------------------------------------------------------------------------------
# benchmark mixtures
# ------------------------------------------------------------------------------------------------
def ring_mixture(n_modes: int = 8, radius: float = 1.0, std: float = 0.01,
                 dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> GaussianMixture:
    r"""Equal-weight Gaussians on a circle: the PacGAN/VEEGAN "2D ring".

    Means :math:`r(\cos(2\pi k/K), \sin(2\pi k/K))`, :math:`k = 0..K-1` (no repeated endpoint:
    ``linspace(0, 2 pi, K)`` would give only K-1 distinct modes, REFERENCES.md C16), covariance
    :math:`\mathrm{std}^2 I`.

    Parameters
    ----------
    n_modes : int
        K >= 1.
    radius, std : float
        Positive.
    dtype, device : optional
        Default float dtype and CPU.

    Returns
    -------
    GaussianMixture
        K components in D = 2.

    References
    ----------
    Lin et al., PacGAN, NeurIPS 2018 (code: radius 1, std 0.01; REFERENCES.md B2).
    """
    n_modes = check_int("n_modes", n_modes, minimum=1)
    check_positive("radius", radius)
    check_positive("std", std)
    dtype = dtype or torch.get_default_dtype()
    angles = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    means = float(radius) * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    stds = torch.full((n_modes,), float(std), dtype=torch.float64)
    return GaussianMixture(means.to(dtype=dtype, device=device), stds.to(dtype=dtype, device=device))


def grid_mixture(n_per_side: int = 5, spacing: float = 2.0, std: float = 0.05,
                 dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> GaussianMixture:
    r"""Equal-weight Gaussians on a centred square grid: the PacGAN/VEEGAN "2D grid".

    Means :math:`(i, j)` with :math:`i, j \in \{(m - (n-1)/2)\,\mathrm{spacing}\}_{m=0}^{n-1}`
    (the defaults give :math:`\{-4,-2,0,2,4\}^2`, 25 modes), covariance :math:`\mathrm{std}^2 I`.
    Components are ordered row-major: component ``a * n + b`` has mean ``(c_a, c_b)``.

    Parameters
    ----------
    n_per_side : int
        n >= 1; K = n^2 components.
    spacing, std : float
        Positive.
    dtype, device : optional

    Returns
    -------
    GaussianMixture
        n^2 components in D = 2.

    References
    ----------
    Lin et al., PacGAN, NeurIPS 2018 (code: grid {-4,-2,0,2,4}^2, std 0.05; REFERENCES.md B2).
    """
    n_per_side = check_int("n_per_side", n_per_side, minimum=1)
    check_positive("spacing", spacing)
    check_positive("std", std)
    dtype = dtype or torch.get_default_dtype()
    coords = (torch.arange(n_per_side, dtype=torch.float64) - (n_per_side - 1) / 2) * float(spacing)
    a, b = torch.meshgrid(coords, coords, indexing="ij")
    means = torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)
    stds = torch.full((n_per_side ** 2,), float(std), dtype=torch.float64)
    return GaussianMixture(means.to(dtype=dtype, device=device), stds.to(dtype=dtype, device=device))


def bimodal_1d(separation: float = 4.0, std: float = 0.5, weights=None,
               dtype: torch.dtype | None = None,
               device: torch.device | str | None = None) -> GaussianMixture:
    r"""Two 1-D Gaussians at :math:`\pm\,\mathrm{separation}/2`, for forward- vs reverse-KL fits.

    Parameters
    ----------
    separation : float
        Distance between the two means (>= 0).
    std : float
        Common component standard deviation (> 0).
    weights : tensor (2,), optional
        Default ``(0.5, 0.5)``.
    dtype, device : optional

    Returns
    -------
    GaussianMixture
        K = 2 components in D = 1.
    """
    check_positive("separation", separation, strict=False)
    check_positive("std", std)
    dtype = dtype or torch.get_default_dtype()
    half = float(separation) / 2
    means = torch.tensor([[-half], [half]], dtype=dtype, device=device)
    stds = torch.full((2,), float(std), dtype=dtype, device=device)
    return GaussianMixture(means, stds, weights)


# ------------------------------------------------------------------------------------------------
# sample-only toys
# ------------------------------------------------------------------------------------------------
def two_moons(n: int, noise: float = 0.05, generator: torch.Generator | None = None,
              dtype: torch.dtype | None = None,
              device: torch.device | str | None = None) -> torch.Tensor:
    r"""Two interleaving half circles (as scikit-learn's ``make_moons``), centred and scaled.

    Outer moon :math:`(\cos t, \sin t)`, inner moon :math:`(1 - \cos t, \tfrac12 - \sin t)`,
    :math:`t \sim U[0, \pi]`, half of the points each (shuffled); then centred by
    :math:`(\tfrac12, \tfrac14)` and divided by 1.5, so that the noiseless data lie in
    :math:`[-1, 1] \times [-\tfrac12, \tfrac12]`. Gaussian noise of std ``noise`` is added in these
    scaled units.

    Parameters
    ----------
    n : int
        Number of points (>= 0).
    noise : float
        Standard deviation of the added isotropic Gaussian noise (>= 0), in output units.
    generator : torch.Generator, optional
    dtype, device : optional
        Default float dtype, CPU.

    Returns
    -------
    tensor (n, 2)
    """
    n = check_int("n", n, minimum=0)
    check_positive("noise", noise, strict=False)
    dtype = dtype or torch.get_default_dtype()
    t = math.pi * rand((n,), generator, device or "cpu", dtype)
    n_outer = (n + 1) // 2
    outer = torch.stack([torch.cos(t[:n_outer]), torch.sin(t[:n_outer])], dim=1)
    inner = torch.stack([1 - torch.cos(t[n_outer:]), 0.5 - torch.sin(t[n_outer:])], dim=1)
    x = torch.cat([outer, inner])
    x = (x - torch.tensor([0.5, 0.25], dtype=dtype, device=x.device)) / 1.5
    x = x + float(noise) * randn(x.shape, generator, x.device, dtype)
    perm = randperm(n, generator, x.device)
    return x[perm].to(device or "cpu")


def swiss_roll(n: int, noise: float = 0.0, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
    r"""2-D Swiss roll (scikit-learn's ``make_swiss_roll`` seen from the side), scaled to the unit disk.

    :math:`t = \tfrac{3\pi}{2}(1 + 2u)`, :math:`u \sim U[0, 1]`, point
    :math:`(t\cos t,\ t\sin t) / (4.5\pi)`: the division by the largest radius :math:`4.5\pi` puts
    the noiseless spiral inside the unit disk. Gaussian noise of std ``noise`` is added in these
    scaled units.

    Parameters
    ----------
    n : int
    noise : float
        Standard deviation of the added noise (>= 0), in output units.
    generator : torch.Generator, optional
    dtype, device : optional

    Returns
    -------
    tensor (n, 2)
    """
    n = check_int("n", n, minimum=0)
    check_positive("noise", noise, strict=False)
    dtype = dtype or torch.get_default_dtype()
    t = 1.5 * math.pi * (1 + 2 * rand((n,), generator, device or "cpu", dtype))
    x = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) / (4.5 * math.pi)
    x = x + float(noise) * randn(x.shape, generator, x.device, dtype)
    return x.to(device or "cpu")


def checkerboard(n: int, generator: torch.Generator | None = None,
                 dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> torch.Tensor:
    r"""Uniform on the 8 dark squares of a 4 x 4 checkerboard covering :math:`[-1, 1]^2`.

    Squares have side 1/2; square (column c, row r), c, r in 0..3 from the bottom-left corner, is
    dark when c + r is even. The density is exactly 1/2 on the dark squares and 0 elsewhere. This
    is the FFJORD toy (on :math:`[-4, 4]^2` there) divided by 4.

    Parameters
    ----------
    n : int
    generator : torch.Generator, optional
    dtype, device : optional

    Returns
    -------
    tensor (n, 2)
    """
    n = check_int("n", n, minimum=0)
    dtype = dtype or torch.get_default_dtype()
    cell = randint(8, (n,), generator, device or "cpu")                  # one of 8 dark squares
    col = cell // 2                                                      # 0..3
    row = 2 * (cell % 2) + (col % 2)                                     # c + r even
    u = rand((n, 2), generator, device or "cpu", dtype)
    x = torch.stack([col, row], dim=1).to(dtype) + u                     # in [0, 4)^2
    return (x / 2 - 1).to(device or "cpu")


def three_mode_mixture(dtype: torch.dtype | None = None,
                       device: torch.device | str | None = None) -> GaussianMixture:
    r"""Notebook 06's toy: three unequal, well separated 2-D Gaussians with weights 0.5, 0.3, 0.2.

    Means :math:`(-2, -1)`, :math:`(2, -1)`, :math:`(0, 2)`; isotropic standard deviations 0.4, 0.6,
    0.3. The modes are separated by more than 5 standard deviations, so Langevin dynamics with the
    exact score barely crosses between them (unlike annealed Langevin), and the unequal weights
    show whether a sampler recovers them.

    Parameters
    ----------
    dtype, device : optional
        Default float dtype and CPU.

    Returns
    -------
    GaussianMixture
        K = 3 components in D = 2.
    """
    dtype = dtype or torch.get_default_dtype()
    return GaussianMixture(torch.tensor([[-2.0, -1.0], [2.0, -1.0], [0.0, 2.0]], dtype=dtype, device=device),
                           torch.tensor([0.4, 0.6, 0.3], dtype=dtype, device=device),
                           torch.tensor([0.5, 0.3, 0.2], dtype=dtype, device=device))


__all__ += ["three_mode_mixture"]
