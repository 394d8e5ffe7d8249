r"""The continuous-time view: SDEs, the reverse-time SDE, the probability-flow ODE, flow matching.

Score-based models in continuous time (Song et al. 2021) perturb data with a forward SDE on
:math:`t \in [0, 1]`,

.. math::  dx = f(x, t)\,dt + g(t)\,dW,

whose perturbation kernel is Gaussian, :math:`x_t = m(t)\,x_0 + s(t)\,\varepsilon` (the *mean
coefficient* :math:`m(t)` and *marginal std* :math:`s(t)`), and generate by running time backwards,
either with the reverse-time SDE (Anderson 1982; Song et al. 2021, Eq. 6)

.. math::  dx = \big[f(x, t) - g(t)^2\,\nabla_x\log p_t(x)\big]\,dt + g(t)\,d\bar W

or with the probability-flow ODE, which has the same marginals :math:`p_t` (Eq. 13)

.. math::  \frac{dx}{dt} = f(x, t) - \tfrac12 g(t)^2\,\nabla_x\log p_t(x).

Two SDEs are implemented: :class:`VPSDE` (variance preserving, the continuous limit of DDPM's
linear schedule, Eq. 11) and :class:`VESDE` (variance exploding, the continuous limit of NCSN's
geometric noise levels, Eq. 9). For a :class:`course_lib.toy.GaussianMixture` the score of every
:math:`p_t` is exact (:func:`mixture_score`), so each sampler and the ODE log-likelihood
(:func:`ode_log_likelihood`) can be checked against exact answers. Flow matching on the linear
path :math:`x_t = (1-t)x_0 + t x_1` (Lipman et al. 2023; Liu et al. 2023) comes with the exact
marginal velocity of a mixture (:func:`optimal_velocity`).

Conventions
-----------
- **Continuous time** ``t`` is a number or a tensor ``(N,)`` (one time per example) in
  :math:`[0, 1]`: ``t = 0`` is the data, ``t = 1`` the prior. It is *not* the 0-based step index of
  :mod:`course_lib.diffusion`; :meth:`VPSDE.noise_schedule` and :meth:`VPSDE.ddpm_schedule` relate
  the two (0-based index ``i`` is time ``(i + 1) / T``).
- A ``score_fn`` is called ``score_fn(x, t)`` with ``x`` of shape ``(N, ...)`` and ``t`` a tensor
  ``(N,)`` in ``x``'s dtype and on its device, and must return a tensor of ``x``'s shape (anything
  else raises naming ``score_fn``). A ``velocity_fn`` (flow matching) is called the same way.
- Coefficients are computed in float64 (float32 on Apple MPS, which has no float64) and cast to the
  data's dtype where used. Samplers integrate in the dtype of their starting point; the ODE solvers
  keep their state in float64 (NumPy) and call the score in the starting point's dtype.
- Every random function takes ``generator`` (drawn on its device, then moved to the data's).

References
----------
- Y. Song, J. Sohl-Dickstein, D. P. Kingma, A. Kumar, S. Ermon, B. Poole, "Score-based generative
  modeling through stochastic differential equations", ICLR 2021 (Eqs. 6, 9, 11, 13; Appendix B
  for the kernels, Appendix D.2 for likelihoods, Algorithms 2-3 for predictor-corrector sampling;
  code ``yang-song/score_sde``, REFERENCES.md A4).
- B. D. O. Anderson, "Reverse-time diffusion equation models", Stoch. Proc. Appl. 12(3), 1982.
- R. T. Q. Chen, Y. Rubanova, J. Bettencourt, D. Duvenaud, "Neural ordinary differential
  equations", NeurIPS 2018 (instantaneous change of variables, Theorem 1).
- W. Grathwohl et al., "FFJORD", ICLR 2019 (Hutchinson's estimator in the change of variables).
- J. Song, C. Meng, S. Ermon, "Denoising diffusion implicit models", ICLR 2021 (DDIM as an Euler
  step of the probability-flow ODE, Sec. 4.3).
- Y. Lipman, R. T. Q. Chen, H. Ben-Hamu, M. Nickel, M. Le, "Flow matching for generative
  modeling", ICLR 2023; X. Liu, C. Gong, Q. Liu, "Flow straight and fast: learning to generate and
  transfer data with rectified flow", ICLR 2023.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from course_lib._checks import check_int, check_positive
from course_lib.score import divergence, langevin_dynamics
from course_lib.toy import GaussianMixture

__all__ = [
    "SDE", "VPSDE", "VESDE", "mixture_score", "MixtureScore", "marginal_mixture",
    "reverse_sde_sample", "pc_sample", "probability_flow_trajectory", "probability_flow_sample",
    "ode_log_likelihood", "LikelihoodDetails",
    "flow_matching_loss", "optimal_velocity", "OptimalVelocity", "flow_marginal",
    "flow_matching_sample", "noise_prediction_loss", "score_from_eps", "ScoreFromEps",
    "discrete_eps_model", "DiscreteEpsModel",
]

TimeFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_LOG_2PI = math.log(2.0 * math.pi)
_ODE_METHODS = ("RK45", "DOP853", "Radau", "BDF", "LSODA", "RK23")


# ================================================================================================
# validation helpers
# ================================================================================================
def _coef_dtype(device) -> torch.dtype:
    """float64 for coefficients, except on MPS (no float64 there)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def _check_time(t, batch_size: int | None = None, device=None, name: str = "t") -> torch.Tensor:
    """``t`` as a float64 tensor of shape ``()`` (a number) or ``(N,)``, every value in [0, 1]."""
    if isinstance(t, bool):
        raise TypeError(f"{name}: expected a number or a tensor of times in [0, 1], got bool")
    if isinstance(t, torch.Tensor):
        if t.dtype == torch.bool or t.is_complex():
            raise TypeError(f"{name}: expected a real tensor of times in [0, 1], got dtype {t.dtype}")
        if t.dim() > 1 or (t.dim() == 1 and batch_size is not None and t.shape[0] != batch_size):
            want = f"({batch_size},) (one time per row)" if batch_size is not None else "(N,)"
            raise ValueError(f"{name}: expected a number, a 0-d tensor or a tensor of shape {want}, "
                             f"got shape {tuple(t.shape)}")
        dev = torch.device(device) if device is not None else t.device
        tt = t.detach().to(device=dev, dtype=_coef_dtype(dev))
    else:
        try:
            value = float(t)
        except (TypeError, ValueError):
            raise TypeError(f"{name}: expected a number or a tensor of times in [0, 1], got "
                            f"{type(t).__name__}") from None
        dev = torch.device(device) if device is not None else torch.device("cpu")
        tt = torch.tensor(value, dtype=_coef_dtype(dev), device=dev)
    bad = ~((tt >= 0) & (tt <= 1))                    # also catches NaN
    if bool(bad.any()):
        worst = tt[bad].flatten()[0].item() if tt.dim() else tt.item()
        raise ValueError(f"{name}: expected times in [0, 1], got {worst!r}")
    return tt


def _column(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A coefficient of shape () or (N,) as (N|1, 1, ..., 1) in x's dtype, on x's device."""
    return c.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def _check_data(name: str, x, ndim_min: int = 2) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape (N, D) (or (N, ...)), got "
                        f"{type(x).__name__}")
    if x.dim() < ndim_min or x.shape[0] < 1 or x[0].numel() < 1:
        raise ValueError(f"{name}: expected a tensor of shape (N, D) (or (N, ...)) with N >= 1, "
                         f"got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    return x


def _check_callable(name: str, fn) -> None:
    if not callable(fn):
        raise TypeError(f"{name}: expected a callable {name}(x, t), got {type(fn).__name__}")


def _call(name: str, fn, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``fn(x, t)``, required to return a tensor of x's shape."""
    out = fn(x, t)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name}: expected {name}(x, t) to return a torch.Tensor of shape "
                        f"{tuple(x.shape)} (x's shape), got {type(out).__name__}")
    if out.shape != x.shape:
        raise ValueError(f"{name}: expected {name}(x, t) to return x's shape {tuple(x.shape)}, "
                         f"got {tuple(out.shape)}")
    return out


def _time_vector(t: float, x: torch.Tensor) -> torch.Tensor:
    """The time ``t`` repeated for every row of ``x``: shape (N,), x's dtype and device."""
    return torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)


def _check_sde(sde) -> "SDE":
    if not isinstance(sde, SDE):
        raise TypeError(f"sde: expected a course_lib.sde.VPSDE or VESDE, got {type(sde).__name__}")
    return sde


def _check_mixture(mixture) -> GaussianMixture:
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture: expected a course_lib.toy.GaussianMixture, got "
                        f"{type(mixture).__name__}")
    return mixture


def _check_eps(eps) -> float:
    try:
        e = float(eps)
    except (TypeError, ValueError):
        raise TypeError(f"eps: expected a number in [0, 1), got {type(eps).__name__}") from None
    if not (0.0 <= e < 1.0):
        raise ValueError(f"eps: expected the final time in [0, 1), got {eps!r}")
    return e


def _check_tolerance(name: str, value) -> float:
    check_positive(name, value)
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return v


def _check_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if isinstance(shape, int) or not isinstance(shape, (tuple, list)) or len(shape) < 2 or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"shape: expected a tuple of positive ints (N, D) or (N, ...), got {shape!r}")
    return tuple(shape)


def _check_times(times, allow_equal: bool = False) -> list[float]:
    """A strictly monotone sequence of at least two times in [0, 1], as Python floats."""
    if isinstance(times, torch.Tensor):
        values = times.detach().to("cpu", torch.float64).flatten().tolist() if times.dim() == 1 else None
    else:
        try:
            values = [float(v) for v in times]
        except (TypeError, ValueError):
            values = None
    if values is None or len(values) < 2:
        raise ValueError(f"times: expected a 1-D sequence of at least two times in [0, 1], got "
                         f"{times!r}")
    bad = [v for v in values if not (0.0 <= v <= 1.0)]
    if bad:
        raise ValueError(f"times: expected times in [0, 1], got {bad[0]!r}")
    diffs = np.diff(values)
    if not (bool((diffs > 0).all()) or bool((diffs < 0).all())):
        raise ValueError(f"times: expected a strictly increasing or strictly decreasing sequence, "
                         f"got {values}")
    return values


def _randn(shape, generator: torch.Generator | None, device, dtype) -> torch.Tensor:
    """Standard normal draws on the generator's device (when given), moved to ``device``."""
    dev = torch.device(device) if generator is None else generator.device
    return torch.randn(shape, generator=generator, device=dev, dtype=dtype).to(device)


def _rand(shape, generator: torch.Generator | None, device, dtype) -> torch.Tensor:
    """Uniform draws on [0, 1), like :func:`_randn`."""
    dev = torch.device(device) if generator is None else generator.device
    return torch.rand(shape, generator=generator, device=dev, dtype=dtype).to(device)


# ================================================================================================
# SDEs
# ================================================================================================
class SDE:
    r"""A forward SDE :math:`dx = a(t)\,x\,dt + g(t)\,dW` on :math:`t\in[0,1]` with a Gaussian kernel.

    Base class of :class:`VPSDE` and :class:`VESDE`; both have a drift linear in :math:`x`, so the
    perturbation kernel is :math:`p_{0t}(x_t \mid x_0) = \mathcal N\big(m(t)\,x_0,\ s(t)^2 I\big)`
    with :math:`\log m(t) = \int_0^t a` and :math:`s(t)^2 = \int_0^t g(u)^2\, m(t)^2/m(u)^2\, du`
    (Song et al. 2021, Appendix B; the mean and variance equations of linear SDEs in Särkkä &
    Solin, "Applied stochastic differential equations", 2019). Subclasses provide
    ``_drift_coeff`` (:math:`a`), ``_g2`` (:math:`g^2`), ``_log_mean_coeff`` (:math:`\log m`),
    ``_marginal_var`` (:math:`s^2`) and ``prior_std``, all as functions of a float64 tensor ``t``.

    Every public method takes ``t`` as a number or a tensor ``(N,)`` in :math:`[0, 1]`; a tensor
    must have one entry per row of ``x``. Bad ``t`` raises ``ValueError`` (outside ``[0, 1]``, NaN,
    wrong shape) or ``TypeError`` (not a number or tensor).
    """

    prior_std: float = 1.0

    # -- to be provided by subclasses -------------------------------------------------------
    def _drift_coeff(self, t: torch.Tensor) -> torch.Tensor:   # pragma: no cover - abstract
        raise NotImplementedError

    def _g2(self, t: torch.Tensor) -> torch.Tensor:            # pragma: no cover - abstract
        raise NotImplementedError

    def _log_mean_coeff(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _marginal_var(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- coefficients ----------------------------------------------------------------------------
    def _out_dtype(self, t) -> torch.dtype | None:
        return t.dtype if isinstance(t, torch.Tensor) and t.is_floating_point() else None

    def _finish(self, value: torch.Tensor, t) -> torch.Tensor:
        dtype = self._out_dtype(t)
        return value if dtype is None else value.to(dtype)

    def diffusion(self, t) -> torch.Tensor:
        r"""Diffusion coefficient :math:`g(t)`.

        Parameters
        ----------
        t : float or tensor (N,)
            Times in :math:`[0, 1]`.

        Returns
        -------
        tensor () or (N,)
            The shape of ``t``; float64 for a number, else ``t``'s floating dtype.

        Raises
        ------
        ValueError, TypeError
            Bad ``t`` (outside ``[0, 1]``, NaN, not 0-d or 1-D, not a number).
        """
        tt = _check_time(t)
        return self._finish(torch.sqrt(self._g2(tt)), t)

    def drift(self, x: torch.Tensor, t) -> torch.Tensor:
        r"""Drift :math:`f(x, t)` of the forward SDE.

        Parameters
        ----------
        x : tensor (N, D) or (N, ...)
        t : float or tensor (N,)
            Times in :math:`[0, 1]`, one per row of ``x`` or shared.

        Returns
        -------
        tensor
            ``x``'s shape, dtype and device.

        Raises
        ------
        ValueError, TypeError
            ``x`` not a floating tensor of shape ``(N, ...)``; bad ``t``.
        """
        x = _check_data("x", x)
        tt = _check_time(t, x.shape[0], x.device)
        return _column(self._drift_coeff(tt), x) * x

    def marginal_mean_coeff(self, t) -> torch.Tensor:
        r"""Mean coefficient :math:`m(t)` of the kernel, :math:`E[x_t \mid x_0] = m(t)\,x_0`.

        Parameters
        ----------
        t : float or tensor (N,)

        Returns
        -------
        tensor () or (N,)
            In :math:`(0, 1]`; :math:`m(0) = 1`.
        """
        tt = _check_time(t)
        return self._finish(torch.exp(self._log_mean_coeff(tt)), t)

    def marginal_std(self, t) -> torch.Tensor:
        r"""Standard deviation :math:`s(t)` of the kernel, :math:`\mathrm{Cov}[x_t \mid x_0] = s(t)^2 I`.

        Parameters
        ----------
        t : float or tensor (N,)

        Returns
        -------
        tensor () or (N,)
            :math:`s(0) = 0` exactly (no NaN at the edge).
        """
        tt = _check_time(t)
        return self._finish(torch.sqrt(self._marginal_var(tt)), t)

    def marginal(self, x0: torch.Tensor, t):
        r"""Mean and std of the perturbation kernel :math:`p_{0t}(x_t \mid x_0) = \mathcal N(m(t)x_0, s(t)^2 I)`.

        Parameters
        ----------
        x0 : tensor (N, D) or (N, ...)
            Data.
        t : float or tensor (N,)
            Times in :math:`[0, 1]`.

        Returns
        -------
        mean : tensor
            :math:`m(t)\,x_0`, ``x0``'s shape.
        std : tensor (N,)
            :math:`s(t)` for every row (expanded when ``t`` is shared), in ``x0``'s dtype.

        Raises
        ------
        ValueError, TypeError
            ``x0`` not a floating tensor ``(N, ...)``; bad ``t``.

        References
        ----------
        Song et al. (2021), Appendix B (the VE and VP kernels); score_sde ``marginal_prob``.
        """
        x0 = _check_data("x0", x0)
        tt = _check_time(t, x0.shape[0], x0.device)
        mean = _column(torch.exp(self._log_mean_coeff(tt)), x0) * x0          # m(t) x0
        std = torch.sqrt(self._marginal_var(tt)).to(x0.dtype).expand(x0.shape[0])
        return mean, std.contiguous()

    def perturb(self, x0: torch.Tensor, t, generator: torch.Generator | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        r"""Draw :math:`x_t = m(t)\,x_0 + s(t)\,\varepsilon` from the kernel.

        Parameters
        ----------
        x0 : tensor (N, ...)
        t : float or tensor (N,)
        generator : torch.Generator, optional
        noise : tensor, optional
            :math:`\varepsilon` of ``x0``'s shape (drawn when omitted).

        Returns
        -------
        tensor
            ``x0``'s shape.
        """
        mean, std = self.marginal(x0, t)
        if noise is None:
            noise = _randn(x0.shape, generator, x0.device, x0.dtype)
        elif not isinstance(noise, torch.Tensor) or noise.shape != x0.shape:
            raise ValueError(f"noise: expected a tensor of x0's shape {tuple(x0.shape)}, got "
                             f"{getattr(noise, 'shape', type(noise).__name__)}")
        return mean + _column(std, x0) * noise

    # -- the reverse-time processes ----------------------------------------------------------
    def _score_drift(self, x: torch.Tensor, t, score: torch.Tensor, weight: float) -> torch.Tensor:
        r""":math:`f(x, t) - w\,g(t)^2\,s`, validated: the reverse SDE (w = 1) and the ODE (w = 1/2)."""
        x = _check_data("x", x)
        if not isinstance(score, torch.Tensor) or score.shape != x.shape:
            raise ValueError(f"score: expected a tensor of x's shape {tuple(x.shape)}, got "
                             f"{getattr(score, 'shape', type(score).__name__)}")
        tt = _check_time(t, x.shape[0], x.device)
        g2 = _column(self._g2(tt), x)
        return _column(self._drift_coeff(tt), x) * x - weight * g2 * score

    def reverse_drift(self, x: torch.Tensor, t, score: torch.Tensor) -> torch.Tensor:
        r"""Drift of the reverse-time SDE, :math:`f(x, t) - g(t)^2\, s(x, t)` (Song et al. 2021, Eq. 6).

        Time runs backwards: an Euler-Maruyama step from :math:`t` to :math:`t - \Delta t` is
        :math:`x \leftarrow x - [f - g^2 s]\Delta t + g\sqrt{\Delta t}\,z` (Anderson 1982).

        Parameters
        ----------
        x : tensor (N, ...)
        t : float or tensor (N,)
        score : tensor
            :math:`\nabla_x \log p_t(x)`, ``x``'s shape.

        Returns
        -------
        tensor
            ``x``'s shape.
        """
        return self._score_drift(x, t, score, 1.0)                          # f - g^2 s

    def probability_flow_drift(self, x: torch.Tensor, t, score: torch.Tensor) -> torch.Tensor:
        r"""Velocity of the probability-flow ODE, :math:`f(x, t) - \tfrac12 g(t)^2\, s(x, t)` (Eq. 13).

        Parameters
        ----------
        x : tensor (N, ...)
        t : float or tensor (N,)
        score : tensor
            :math:`\nabla_x \log p_t(x)`, ``x``'s shape.

        Returns
        -------
        tensor
            :math:`dx/dt`, ``x``'s shape.
        """
        return self._score_drift(x, t, score, 0.5)                          # f - 1/2 g^2 s

    # -- the prior ---------------------------------------------------------------------------
    def prior_sample(self, shape, generator: torch.Generator | None = None, device=None,
                     dtype: torch.dtype | None = None) -> torch.Tensor:
        r"""Draw from the prior :math:`\mathcal N(0, \sigma_T^2 I)` that stands in for :math:`p_1`.

        Parameters
        ----------
        shape : tuple of int
            ``(N, D)`` or ``(N, ...)``.
        generator : torch.Generator, optional
        device : torch.device or str, optional
            Default: the generator's device, else CPU.
        dtype : torch.dtype, optional
            Default: ``torch.get_default_dtype()``.

        Returns
        -------
        tensor ``shape``
        """
        shape = _check_shape(shape)
        dtype = dtype or torch.get_default_dtype()
        device = torch.device(device) if device is not None else (
            generator.device if generator is not None else torch.device("cpu"))
        return self.prior_std * _randn(shape, generator, device, dtype)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        r"""Log-density of the prior, :math:`\log\mathcal N(z; 0, \sigma_T^2 I)`, summed over dimensions.

        Parameters
        ----------
        z : tensor (N, D) or (N, ...)

        Returns
        -------
        tensor (N,)
            Nats.
        """
        z = _check_data("z", z)
        d = z[0].numel()
        sq = (z.reshape(z.shape[0], -1) ** 2).sum(1)
        var = self.prior_std ** 2
        # log N(z; 0, var I) = -1/2 (|z|^2 / var + D log(2 pi var))
        return -0.5 * (sq / var + d * (_LOG_2PI + math.log(var)))


class VPSDE(SDE):
    r"""Variance-preserving SDE: the continuous limit of DDPM (Song et al. 2021, Eq. 11).

    .. math::  dx = -\tfrac12\beta(t)\,x\,dt + \sqrt{\beta(t)}\,dW, \qquad
               \beta(t) = \beta_\min + t(\beta_\max - \beta_\min),

    with kernel :math:`\mathcal N(m(t)x_0, (1 - m(t)^2) I)`,
    :math:`\log m(t) = -\tfrac14 t^2(\beta_\max-\beta_\min) - \tfrac12 t\beta_\min` (Appendix B).
    DDPM's chain :math:`x_i = \sqrt{1-\beta_i}\,x_{i-1} + \sqrt{\beta_i}\,z` with
    :math:`\beta_i = \beta(t)/T` is its Euler-Maruyama discretization (Appendix B), so
    ``alphas_cumprod`` of DDPM's schedule tends to :math:`m(t)^2` as :math:`T` grows
    (:meth:`ddpm_schedule`). Prior :math:`\mathcal N(0, I)`.

    Parameters
    ----------
    beta_min, beta_max : float
        :math:`0 < \beta_\min \le \beta_\max`, finite. Defaults 0.1 and 20 (DDPM's 1e-4 .. 0.02
        times :math:`T = 1000`).

    Raises
    ------
    ValueError
        ``beta_min <= 0``, ``beta_max < beta_min``, or a value not finite.
    TypeError
        Not numbers.

    References
    ----------
    Song et al. (2021), Eq. 11 and Appendix B; score_sde ``sde_lib.VPSDE`` (REFERENCES.md A4,
    A9: :math:`m(1) = 0.006571586494929619`, :math:`s(1) = 0.9999784068923386`).

    Examples
    --------
    >>> sde = VPSDE()
    >>> round(float(sde.marginal_mean_coeff(1.0)), 6)
    0.006572
    """

    prior_std = 1.0

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        check_positive("beta_min", beta_min)
        check_positive("beta_max", beta_max)
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)
        if not (math.isfinite(self.beta_min) and math.isfinite(self.beta_max)):
            raise ValueError(f"beta_min, beta_max: expected finite numbers, got {beta_min!r}, "
                             f"{beta_max!r}")
        if not self.beta_max >= self.beta_min:
            raise ValueError(f"beta_max: expected beta_max >= beta_min = {self.beta_min!r} "
                             f"(noise that does not decrease), got {beta_max!r}")

    def __repr__(self) -> str:
        return f"VPSDE(beta_min={self.beta_min!r}, beta_max={self.beta_max!r})"

    def _beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)      # beta(t), linear

    def _drift_coeff(self, t):
        return -0.5 * self._beta(t)                                     # f = -1/2 beta(t) x

    def _g2(self, t):
        return self._beta(t)                                            # g^2 = beta(t)

    def _log_mean_coeff(self, t):
        # log m(t) = -int_0^t beta/2 = -1/4 t^2 (beta_max - beta_min) - 1/2 t beta_min
        return -0.25 * t ** 2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def _marginal_var(self, t):
        return -torch.expm1(2.0 * self._log_mean_coeff(t))             # 1 - m(t)^2, exact at t->0

    def beta(self, t) -> torch.Tensor:
        r""":math:`\beta(t) = \beta_\min + t(\beta_\max - \beta_\min)`; ``t``'s shape (float or ``(N,)``)."""
        tt = _check_time(t)
        return self._finish(self._beta(tt), t)

    def log_mean_coeff(self, t) -> torch.Tensor:
        r""":math:`\log m(t) = -\tfrac14 t^2(\beta_\max-\beta_\min) - \tfrac12 t\beta_\min`; ``t``'s shape."""
        tt = _check_time(t)
        return self._finish(self._log_mean_coeff(tt), t)

    def alphas_cumprod(self, t) -> torch.Tensor:
        r"""The continuous :math:`\bar\alpha(t) = m(t)^2`, DDPM's ``alphas_cumprod`` as a function of time.

        Parameters
        ----------
        t : float or tensor (N,)

        Returns
        -------
        tensor () or (N,)
        """
        tt = _check_time(t)
        return self._finish(torch.exp(2.0 * self._log_mean_coeff(tt)), t)

    def time_from_alphas_cumprod(self, alphas_cumprod) -> torch.Tensor:
        r"""The time :math:`t` at which :math:`\bar\alpha(t)` = ``alphas_cumprod`` (inverse of :meth:`alphas_cumprod`).

        Solves :math:`\tfrac14 t^2\Delta + \tfrac12 t\beta_\min = -\tfrac12\log\bar\alpha`,
        :math:`\Delta = \beta_\max-\beta_\min`, in the cancellation-free form
        :math:`t = -2\log\bar\alpha / \big(\beta_\min + \sqrt{\beta_\min^2 - 2\Delta\log\bar\alpha}\big)`.

        Parameters
        ----------
        alphas_cumprod : float or tensor
            Values in :math:`[\bar\alpha(1), 1]`.

        Returns
        -------
        tensor
            Times in :math:`[0, 1]`, ``alphas_cumprod``'s shape, float64 (or its dtype).

        Raises
        ------
        ValueError
            A value outside :math:`[\bar\alpha(1), 1]` (relative slack 1e-9 for round-off).
        """
        src = alphas_cumprod
        a = torch.as_tensor(src, dtype=torch.float64) if not isinstance(src, torch.Tensor) else \
            src.detach().to(dtype=_coef_dtype(src.device))
        lo = math.exp(2.0 * float(self._log_mean_coeff(torch.tensor(1.0, dtype=torch.float64))))
        bad = ~((a >= lo * (1 - 1e-9)) & (a <= 1.0))
        if bool(bad.any()):
            raise ValueError(f"alphas_cumprod: expected values in [alphas_cumprod(1) = {lo!r}, 1], "
                             f"got {a[bad].flatten()[0].item()!r}")
        log_a = torch.log(a)
        delta = self.beta_max - self.beta_min
        t = -2.0 * log_a / (self.beta_min + torch.sqrt(self.beta_min ** 2 - 2.0 * delta * log_a))
        t = t.clamp(0.0, 1.0)
        return self._finish(t, src)

    def noise_schedule(self, num_steps: int):
        r"""The discrete schedule that samples this SDE at :math:`t_i = (i+1)/T`, exactly.

        ``alphas_cumprod[i]`` :math:`= \bar\alpha((i+1)/T) = m(t_i)^2` (0-based ``i``; index ``T-1``
        is :math:`t = 1`), i.e. :math:`\beta_i = 1 - \bar\alpha(t_i)/\bar\alpha(t_{i-1})`. Use it to
        run :mod:`course_lib.diffusion`'s samplers on exactly this process: DDIM with ``eta = 0``
        on it is a first-order discretization of this SDE's probability-flow ODE from
        :math:`t = 1` to :math:`t = 0` (Song, Meng, Ermon 2021, Sec. 4.3), so its error against
        :func:`probability_flow_trajectory` (times ``[1, 0]``) falls like ``1 / num_steps``.

        Parameters
        ----------
        num_steps : int
            ``T >= 1``.

        Returns
        -------
        course_lib.diffusion.NoiseSchedule
        """
        from course_lib.diffusion import NoiseSchedule

        T = check_int("num_steps", num_steps, minimum=1)
        t = torch.arange(0, T + 1, dtype=torch.float64) / T                 # t_{-1} = 0, ..., t_{T-1} = 1
        lmc = self._log_mean_coeff(t)
        betas = -torch.expm1(2.0 * (lmc[1:] - lmc[:-1]))                   # 1 - abar(t_i)/abar(t_{i-1})
        return NoiseSchedule(betas, name="vpsde")

    def ddpm_schedule(self, num_steps: int):
        r"""DDPM's linear schedule, ``T = num_steps`` betas from :math:`\beta_\min/T` to :math:`\beta_\max/T`.

        The discrete process the VP SDE is the limit of (Song et al. 2021, Appendix B; score_sde's
        ``discrete_betas``). For ``T = 1000`` it is Ho et al.'s ``NoiseSchedule.linear(1000)``
        (1e-4 .. 0.02). Index ``i`` (0-based) corresponds to time :math:`(i+1)/T`, and
        ``alphas_cumprod[i]`` :math:`\to m((i+1)/T)^2` with an :math:`O(1/T)` gap.

        Parameters
        ----------
        num_steps : int
            ``T > beta_max`` (so that every :math:`\beta_i < 1`).

        Returns
        -------
        course_lib.diffusion.NoiseSchedule

        Raises
        ------
        ValueError
            ``num_steps <= beta_max``.
        """
        from course_lib.diffusion import NoiseSchedule

        T = check_int("num_steps", num_steps, minimum=1)
        if not T > self.beta_max:
            raise ValueError(f"num_steps: expected num_steps > beta_max = {self.beta_max!r} so that "
                             f"every beta_i = beta(t)/num_steps < 1, got {T}")
        if self.beta_max == self.beta_min or T == 1:
            return NoiseSchedule(torch.full((T,), self.beta_min / T, dtype=torch.float64), name="linear")
        return NoiseSchedule.linear(T, self.beta_min / T, self.beta_max / T)


class VESDE(SDE):
    r"""Variance-exploding SDE: the continuous limit of NCSN's noise levels (Song et al. 2021, Eq. 9).

    .. math::  dx = \sqrt{\tfrac{d\,\sigma(t)^2}{dt}}\,dW
               = \sigma(t)\sqrt{2\log(\sigma_\max/\sigma_\min)}\,dW,\qquad
               \sigma(t) = \sigma_\min(\sigma_\max/\sigma_\min)^t,

    NCSN's geometric levels (``course_lib.score.geometric_sigmas(sigma_max, sigma_min, L)`` are
    :math:`\sigma` at ``linspace(1, 0, L)``). No drift, so :math:`m(t) = 1`, and the exact kernel
    started at :math:`x(0) = x_0` is

    .. math::  p_{0t}(x_t\mid x_0) = \mathcal N\big(x_0,\ [\sigma(t)^2 - \sigma(0)^2]\, I\big)
               \quad\text{(Appendix B)}.

    score_sde's ``marginal_prob`` uses :math:`\sigma(t)` instead, i.e. treats the data as already
    noised at :math:`\sigma_\min`; here the exact kernel is used (it is what simulating the SDE
    gives, and the tests check it that way), so :math:`s(0) = 0`. The prior is
    :math:`\mathcal N(0, \sigma_\max^2 I)`.

    Parameters
    ----------
    sigma_min, sigma_max : float
        :math:`0 < \sigma_\min < \sigma_\max`, finite. Defaults 0.01 and 50 (NCSNv2's CIFAR-10
        range).

    Raises
    ------
    ValueError
        ``sigma_min <= 0``, ``sigma_max <= sigma_min``, or a value not finite.
    TypeError
        Not numbers.

    References
    ----------
    Song et al. (2021), Eq. 9 and Appendix B; Song & Ermon (2020), NCSNv2;
    score_sde ``sde_lib.VESDE`` (REFERENCES.md A4).
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        check_positive("sigma_min", sigma_min)
        check_positive("sigma_max", sigma_max)
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        if not (math.isfinite(self.sigma_min) and math.isfinite(self.sigma_max)):
            raise ValueError(f"sigma_min, sigma_max: expected finite numbers, got {sigma_min!r}, "
                             f"{sigma_max!r}")
        if not self.sigma_max > self.sigma_min:
            raise ValueError(f"sigma_max: expected sigma_max > sigma_min = {self.sigma_min!r} "
                             f"(increasing noise levels), got {sigma_max!r}")
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    @property
    def prior_std(self) -> float:
        """:math:`\\sigma_\\max`, the prior's standard deviation."""
        return self.sigma_max

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min!r}, sigma_max={self.sigma_max!r})"

    def _sigma(self, t):
        return self.sigma_min * torch.exp(t * self._log_ratio)         # sigma_min (max/min)^t

    def _drift_coeff(self, t):
        return torch.zeros_like(t)                                      # f = 0

    def _g2(self, t):
        return self._sigma(t) ** 2 * (2.0 * self._log_ratio)           # d sigma^2 / dt

    def _log_mean_coeff(self, t):
        return torch.zeros_like(t)                                      # m(t) = 1

    def _marginal_var(self, t):
        # sigma(t)^2 - sigma(0)^2 = sigma_min^2 ((max/min)^(2t) - 1), exact at t -> 0
        return self.sigma_min ** 2 * torch.expm1(2.0 * t * self._log_ratio)

    def sigma(self, t) -> torch.Tensor:
        r""":math:`\sigma(t) = \sigma_\min(\sigma_\max/\sigma_\min)^t`; ``t``'s shape (float or ``(N,)``)."""
        tt = _check_time(t)
        return self._finish(self._sigma(tt), t)


# ================================================================================================
# Exact scores of a Gaussian mixture
# ================================================================================================
def marginal_mixture(mixture: GaussianMixture, sde: SDE, t: float) -> GaussianMixture:
    r"""The exact law :math:`p_t` of :math:`x_t = m(t)x_0 + s(t)\varepsilon` for mixture data :math:`x_0`.

    ``mixture.scale(m(t)).convolve(s(t))``: each component
    :math:`\mathcal N(\mu_k, s_k^2)` becomes :math:`\mathcal N(m\mu_k, m^2 s_k^2 + s^2)`.

    Parameters
    ----------
    mixture : course_lib.toy.GaussianMixture
    sde : VPSDE or VESDE
    t : float
        One time in :math:`[0, 1]`.

    Returns
    -------
    GaussianMixture
        Sample it, evaluate ``log_prob`` (e.g. the exact log-density at ``eps`` that
        :func:`ode_log_likelihood` estimates) or ``score``.
    """
    _check_mixture(mixture)
    _check_sde(sde)
    if isinstance(t, torch.Tensor) and t.dim() != 0:
        raise ValueError(f"t: expected one time (a number or a 0-d tensor), got shape {tuple(t.shape)}")
    tt = _check_time(t)
    m = float(torch.exp(sde._log_mean_coeff(tt)))
    s = float(torch.sqrt(sde._marginal_var(tt)))
    return mixture.scale(m).convolve(s)


class MixtureScore:
    r"""Exact score :math:`\nabla_x\log p_t(x)` of a mixture pushed through an SDE (see :func:`mixture_score`)."""

    def __init__(self, mixture: GaussianMixture, sde: SDE):
        self.mixture = _check_mixture(mixture)
        self.sde = _check_sde(sde)
        self._constants = {}                  # (device, dtype) -> (means, stds, log weights)

    def __repr__(self) -> str:
        return f"mixture_score({self.mixture!r}, {self.sde!r})"

    def _params(self, x: torch.Tensor):
        """The mixture's means, stds and log-weights in x's dtype and device, converted once."""
        key = (x.device, x.dtype)
        if key not in self._constants:
            means, stds, weights = (p.to(device=x.device, dtype=x.dtype) for p in
                                    (self.mixture.means, self.mixture.stds, self.mixture.weights))
            self._constants[key] = (means, stds, torch.log(weights))
        return self._constants[key]

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        x = _check_data("x", x)
        if x.dim() != 2 or x.shape[1] != self.mixture.dim:
            raise ValueError(f"x: expected shape (N, {self.mixture.dim}) to match the mixture's "
                             f"dimension, got {tuple(x.shape)}")
        tt = _check_time(t, x.shape[0], x.device)
        if tt.dim() == 1 and tt.numel() > 1 and bool((tt == tt[0]).all()):
            tt = tt[:1]          # one time for all rows (as the samplers pass): the (1, K, D) variances once
        m = _column(torch.exp(self.sde._log_mean_coeff(tt)), x)[:, :, None]      # (N|1, 1, 1)
        s2 = _column(self.sde._marginal_var(tt), x)[:, :, None]                   # (N|1, 1, 1)
        means, stds, log_weights = self._params(x)
        # p_t = sum_k w_k N(m mu_k, m^2 s_k^2 + s^2): the mixture scaled by m, convolved with s
        var = m * m * stds * stds + s2                                            # (N|1, K, D)
        diff = x[:, None, :] - m * means                                          # (N, K, D)
        log_joint = log_weights - 0.5 * (diff * diff / var + torch.log(var)
                                         + _LOG_2PI).sum(-1)                      # (N, K)
        resp = torch.softmax(log_joint, dim=1)
        return -(resp[..., None] * diff / var).sum(1)         # sum_k r_k (-(x - m mu_k) / var_k)


def mixture_score(mixture: GaussianMixture, sde: SDE) -> MixtureScore:
    r"""The exact score of a Gaussian mixture pushed through an SDE's perturbation kernel.

    For :math:`x_0 \sim \sum_k w_k\mathcal N(\mu_k, \mathrm{diag}\,s_k^2)` and
    :math:`x_t = m(t)x_0 + s(t)\varepsilon`, :math:`p_t` is the mixture scaled by :math:`m(t)` and
    convolved with :math:`s(t)` (:func:`marginal_mixture`),
    :math:`p_t = \sum_k w_k \mathcal N(m\mu_k,\ m^2 s_k^2 + s^2)`, so

    .. math::  \nabla_x\log p_t(x) = -\sum_k r_k(x, t)\,\frac{x - m(t)\mu_k}{m(t)^2 s_k^2 + s(t)^2},

    :math:`r_k` the responsibilities under :math:`p_t`. Computed in closed form per row, so every
    row may have its own time (a random ``t`` per example, as in training).

    Parameters
    ----------
    mixture : course_lib.toy.GaussianMixture
        The data law :math:`p_0` (positive component stds, so :math:`t = 0` is finite).
    sde : VPSDE or VESDE

    Returns
    -------
    callable
        ``score_fn(x, t) -> (N, D)``: ``x`` of shape ``(N, D)``, ``t`` a number or a tensor ``(N,)``
        in :math:`[0, 1]`; computes in ``x``'s dtype and on its device, differentiable in ``x``
        (so :func:`ode_log_likelihood` can take its divergence).

    Raises
    ------
    TypeError
        ``mixture`` not a ``GaussianMixture``, ``sde`` not an SDE; at call time a bad ``x``/``t``.
    ValueError
        At call time: ``x`` not ``(N, D)`` with the mixture's ``D``; ``t`` outside ``[0, 1]`` or of
        the wrong shape.

    References
    ----------
    Song et al. (2021), Sec. 3.3 (the score of the perturbed data); Efron (2011) for the mixture
    algebra (REFERENCES.md A8).
    """
    return MixtureScore(mixture, sde)


# ================================================================================================
# Trained noise predictors in continuous time
# ================================================================================================
def noise_prediction_loss(sde: SDE, eps_fn: TimeFn, x0: torch.Tensor,
                          generator: torch.Generator | None = None, eps: float = 1e-3,
                          reduction: str = "mean") -> torch.Tensor:
    r"""Denoising score matching in continuous time, in the noise-prediction form (a Monte Carlo estimate).

    .. math::  \mathcal L(\varepsilon_\theta) = E_{t\sim U(\mathrm{eps}, 1)}\,E_{x_0}\,
               E_{\varepsilon\sim\mathcal N(0, I)}\big\|\varepsilon_\theta(m(t)x_0 + s(t)\varepsilon,\ t)
               - \varepsilon\big\|^2,

    summed over dimensions, one :math:`(t, \varepsilon)` per example: DDPM's
    :math:`L_\text{simple}` (Ho et al. 2020, Algorithm 1) with a continuous time, equivalently
    Song et al. (2021)'s Eq. 7 with the weight :math:`\lambda(t) = s(t)^2` and the score written
    :math:`s_\theta = -\varepsilon_\theta / s(t)` (:func:`score_from_eps`). Its minimizer is
    :math:`\varepsilon^*(x, t) = E[\varepsilon\mid x_t = x] = -s(t)\nabla\log p_t(x)`.

    Parameters
    ----------
    sde : VPSDE or VESDE
    eps_fn : callable
        ``eps_fn(x, t) -> x``'s shape, ``t`` a tensor ``(N,)`` of continuous times.
    x0 : tensor (N, D) or (N, ...)
        Data.
    generator : torch.Generator, optional
        Drives :math:`t` and :math:`\varepsilon`.
    eps : float
        Smallest training time, in ``[0, 1)`` (1e-3 as in score_sde's VP configurations).
    reduction : {"mean", "none"}
        Mean over the batch (a scalar) or per example ``(N,)``.

    Returns
    -------
    tensor () or (N,)
        Differentiable w.r.t. ``eps_fn``'s parameters.

    Raises
    ------
    ValueError, TypeError
        ``x0`` not a floating tensor ``(N, ...)``; bad ``eps`` or ``reduction``; ``eps_fn`` not
        callable or returning another shape.

    References
    ----------
    Ho et al. (2020), Algorithm 1; Song et al. (2021), Eq. 7 and score_sde ``losses.py``
    (``get_sde_loss_fn``, t uniform on ``[eps, 1]``); Vincent (2011).
    """
    _check_sde(sde)
    _check_callable("eps_fn", eps_fn)
    x0 = _check_data("x0", x0)
    eps = _check_eps(eps)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction: expected 'mean' or 'none', got {reduction!r}")
    n = x0.shape[0]
    t = eps + (1.0 - eps) * _rand((n,), generator, x0.device, _coef_dtype(x0.device))
    noise = _randn(x0.shape, generator, x0.device, x0.dtype)
    m = _column(torch.exp(sde._log_mean_coeff(t)), x0)
    s = _column(torch.sqrt(sde._marginal_var(t)), x0)
    out = _call("eps_fn", eps_fn, m * x0 + s * noise, t.to(x0.dtype))     # x_t = m x0 + s eps
    per = ((out - noise) ** 2).reshape(n, -1).sum(1)
    return per.mean() if reduction == "mean" else per


class ScoreFromEps:
    r"""The score :math:`-\varepsilon_\theta(x, t)/s(t)` of a noise predictor (see :func:`score_from_eps`)."""

    def __init__(self, sde: SDE, eps_fn: TimeFn):
        self.sde = _check_sde(sde)
        _check_callable("eps_fn", eps_fn)
        self.eps_fn = eps_fn

    def __repr__(self) -> str:
        return f"score_from_eps({self.sde!r}, {self.eps_fn!r})"

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        x = _check_data("x", x)
        tt = _check_time(t, x.shape[0], x.device)
        if bool((tt <= 0).any()):
            raise ValueError("t: expected times > 0 (s(0) = 0: the noise predictor's score is "
                             "undefined at t = 0), got 0")
        tv = tt.to(x.dtype).expand(x.shape[0]).contiguous()
        out = _call("eps_fn", self.eps_fn, x, tv)
        return -out / _column(torch.sqrt(self.sde._marginal_var(tt)), x)    # -eps / s(t)


def score_from_eps(sde: SDE, eps_fn: TimeFn) -> ScoreFromEps:
    r"""Turn a noise predictor :math:`\varepsilon_\theta(x, t)` into a score, :math:`-\varepsilon_\theta/s(t)`.

    From :math:`x_t = m(t)x_0 + s(t)\varepsilon`, Tweedie's formula gives
    :math:`\nabla\log p_t(x) = -E[\varepsilon\mid x_t = x]/s(t)`, so the minimizer of
    :func:`noise_prediction_loss` divided by :math:`-s(t)` is the exact score. The continuous-time
    counterpart of ``course_lib.diffusion.eps_to_score``.

    Parameters
    ----------
    sde : VPSDE or VESDE
    eps_fn : callable
        ``eps_fn(x, t) -> x``'s shape, ``t`` a tensor ``(N,)``.

    Returns
    -------
    callable
        ``score_fn(x, t) -> x``'s shape for :func:`reverse_sde_sample`,
        :func:`probability_flow_sample`, :func:`ode_log_likelihood`; ``t`` a number or ``(N,)``
        tensor in ``(0, 1]``, passed to ``eps_fn`` as a tensor ``(N,)`` in ``x``'s dtype.

    Raises
    ------
    TypeError
        ``sde`` not an SDE, ``eps_fn`` not callable; at call time as :func:`mixture_score`.
    ValueError
        At call time: ``t = 0`` (where :math:`s(t) = 0`), ``t`` outside ``[0, 1]``, or ``eps_fn``
        returning another shape.

    References
    ----------
    Ho et al. (2020), Sec. 3.2; Song et al. (2021), Appendix C; Efron (2011).
    """
    return ScoreFromEps(sde, eps_fn)


class DiscreteEpsModel:
    r"""A continuous-time noise predictor evaluated at a DDPM schedule's steps (see :func:`discrete_eps_model`)."""

    def __init__(self, sde: "VPSDE", eps_fn: TimeFn, schedule):
        from course_lib.diffusion import NoiseSchedule

        if not isinstance(sde, VPSDE):
            raise TypeError(f"sde: expected a course_lib.sde.VPSDE (DDPM's chain is variance "
                            f"preserving), got {type(sde).__name__}")
        _check_callable("eps_fn", eps_fn)
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule: expected a course_lib.diffusion.NoiseSchedule, got "
                            f"{type(schedule).__name__}")
        self.sde, self.eps_fn, self.schedule = sde, eps_fn, schedule
        abar = schedule.alphas_cumprod.detach().to("cpu", torch.float64)
        try:
            self.times = sde.time_from_alphas_cumprod(abar)                    # (T,) float64
        except ValueError as err:
            raise ValueError(f"schedule: every alphas_cumprod must be a noise level of the SDE, "
                             f"in [m(1)^2, 1]: {err}") from None

    def __repr__(self) -> str:
        return f"discrete_eps_model({self.sde!r}, {self.eps_fn!r}, T={self.schedule.num_steps})"

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        xt = _check_data("xt", xt)
        if not isinstance(t, torch.Tensor) or t.dtype not in (torch.int32, torch.int64) or \
                tuple(t.shape) != (xt.shape[0],):
            raise ValueError(f"t: expected a long tensor of 0-based step indices of shape "
                             f"({xt.shape[0]},), got {getattr(t, 'dtype', type(t).__name__)} of "
                             f"shape {tuple(getattr(t, 'shape', ()))}")
        T = self.schedule.num_steps
        if bool(((t < 0) | (t >= T)).any()):
            raise ValueError(f"t: expected indices in [0, {T - 1}], got {t.min().item()}..{t.max().item()}")
        tc = self.times.to(xt.device)[t.to(xt.device)].to(xt.dtype)           # continuous times
        return _call("eps_fn", self.eps_fn, xt, tc)


def discrete_eps_model(sde: "VPSDE", eps_fn: TimeFn, schedule) -> DiscreteEpsModel:
    r"""A continuous-time noise predictor as a DDPM model ``model(xt, t)`` on a discrete schedule's steps.

    Step ``i`` (0-based) of ``schedule`` has :math:`x_i = \sqrt{\bar\alpha_i}\,x_0 +
    \sqrt{1-\bar\alpha_i}\,\varepsilon`; the VP SDE has the same kernel at the time
    :math:`t_i` with :math:`m(t_i)^2 = \bar\alpha_i` (:meth:`VPSDE.time_from_alphas_cumprod`), so
    the Bayes-optimal noise predictors agree, :math:`\varepsilon^*_\text{DDPM}(x, i) =
    \varepsilon^*(x, t_i)`, and the network is called at :math:`t_i`. With
    ``sde.noise_schedule(T)`` (the chain that samples the SDE exactly), :math:`t_i = (i+1)/T`.
    Use it to evaluate the DDPM bound (``course_lib.diffusion.vlb_terms``) or sample with DDPM/DDIM
    from a network trained in continuous time (:func:`noise_prediction_loss`).

    Parameters
    ----------
    sde : VPSDE
    eps_fn : callable
        ``eps_fn(x, t) -> x``'s shape, ``t`` a tensor ``(N,)`` of continuous times.
    schedule : course_lib.diffusion.NoiseSchedule
        Every ``alphas_cumprod`` in :math:`[m(1)^2, 1]` (e.g. ``sde.noise_schedule(T)``;
        ``sde.ddpm_schedule(T)`` ends slightly below :math:`m(1)^2` and is refused).

    Returns
    -------
    callable
        ``model(xt, t) -> xt``'s shape, ``t`` a long tensor ``(N,)`` of 0-based step indices;
        attribute ``times`` (T,), the continuous time of every index (float64).

    Raises
    ------
    TypeError
        ``sde`` not a ``VPSDE``, ``schedule`` not a ``NoiseSchedule``, ``eps_fn`` not callable.
    ValueError
        A noise level of ``schedule`` outside the SDE's; at call time, indices outside
        ``[0, T-1]`` or not a long tensor ``(N,)``.

    References
    ----------
    Song et al. (2021), Appendix B (DDPM as the discretized VP SDE).
    """
    return DiscreteEpsModel(sde, eps_fn, schedule)


# ================================================================================================
# Samplers: reverse-time SDE and predictor-corrector
# ================================================================================================
def _start(sde: SDE, shape, x1, generator, device, dtype) -> torch.Tensor:
    shape = _check_shape(shape)
    if x1 is None:
        return sde.prior_sample(shape, generator=generator, device=device, dtype=dtype)
    x1 = _check_data("x1", x1)
    if tuple(x1.shape) != shape:
        raise ValueError(f"x1: expected the starting points to have shape {shape} (shape), got "
                         f"{tuple(x1.shape)}")
    return x1.detach().clone()


def _reverse_grid(num_steps: int, eps: float) -> torch.Tensor:
    """The samplers' reverse-time grid :math:`t_i` = ``linspace(1, eps, num_steps + 1)``, float64."""
    return torch.linspace(1.0, eps, num_steps + 1, dtype=torch.float64)


def _reverse_steps(num_steps: int, eps: float, denoise: bool):
    """The grid of :func:`_reverse_grid` as steps ``(i, t_i, t_{i+1}, noise)``, Python floats.

    ``noise`` is False only for the last step when ``denoise``; both samplers iterate over this.
    """
    times = _reverse_grid(num_steps, eps).tolist()
    for i in range(num_steps):
        yield i, times[i], times[i + 1], not (denoise and i == num_steps - 1)


def _em_step(sde: SDE, score_fn, x, t: float, t_next: float, noise: bool, generator) -> torch.Tensor:
    """One Euler-Maruyama step of the reverse-time SDE from t down to t_next."""
    tv = _time_vector(t, x)
    dt = t - t_next                                                        # > 0
    s = _call("score_fn", score_fn, x, tv)
    x_mean = x - sde.reverse_drift(x, tv, s) * dt                          # x - [f - g^2 s] dt
    if not noise:
        return x_mean
    g = float(sde.diffusion(t))
    return x_mean + g * math.sqrt(dt) * _randn(x.shape, generator, x.device, x.dtype)


def reverse_sde_sample(sde: SDE, score_fn: TimeFn, shape, num_steps: int,
                       generator: torch.Generator | None = None, eps: float = 1e-3, *,
                       x1: torch.Tensor | None = None, denoise: bool = True,
                       trajectory: bool = False, device=None, dtype: torch.dtype | None = None):
    r"""Sample by Euler-Maruyama on the reverse-time SDE from :math:`t = 1` to ``eps``.

    On the grid :math:`t_i` = ``linspace(1, eps, num_steps + 1)``, with
    :math:`\Delta t_i = t_i - t_{i+1}`,

    .. math::  x \leftarrow x - \big[f(x, t_i) - g(t_i)^2 s(x, t_i)\big]\Delta t_i
               + g(t_i)\sqrt{\Delta t_i}\; z,\qquad z\sim\mathcal N(0, I)

    (Song et al. 2021, Eq. 6 and score_sde's ``EulerMaruyamaPredictor``), started from the prior
    :math:`\mathcal N(0, \sigma_T^2 I)` (or ``x1``). With ``denoise`` (score_sde's default) the last
    step adds no noise, so the output is the last step's mean, not blurred by
    :math:`g(\mathrm{eps})^2\Delta t`.

    Parameters
    ----------
    sde : VPSDE or VESDE
    score_fn : callable
        ``score_fn(x, t) -> x``'s shape, ``t`` a tensor ``(N,)``; e.g. :func:`mixture_score` or a
        trained time-conditioned network.
    shape : tuple of int
        ``(N, D)`` or ``(N, ...)``.
    num_steps : int
        >= 1.
    generator : torch.Generator, optional
        Drives the prior draw and every :math:`z`.
    eps : float
        Final time in ``[0, 1)`` (1e-3 as in score_sde; a score at exactly 0 is often singular
        for real data).
    x1 : tensor ``shape``, optional
        Starting points at :math:`t = 1` instead of prior draws (e.g. to compare with the ODE).
    denoise : bool
        No noise in the last step.
    trajectory : bool
        Also return every state.
    device, dtype : optional
        Of the prior draw (default CPU/the generator's device and the default dtype).

    Returns
    -------
    x : tensor ``shape``
        Samples of (approximately) :math:`p_{\mathrm{eps}}`.
    path : tensor ``(num_steps + 1, *shape)``
        Only with ``trajectory=True``; ``path[i]`` is the state at :math:`t_i`.

    Raises
    ------
    ValueError, TypeError
        Bad ``shape``, ``num_steps < 1``, ``eps`` outside ``[0, 1)``, ``x1`` of another shape,
        ``score_fn`` not callable or returning another shape.

    References
    ----------
    Anderson (1982); Song et al. (2021), Eq. 6 and Appendix G; Kloeden & Platen (1992),
    Euler-Maruyama.
    """
    _check_sde(sde)
    _check_callable("score_fn", score_fn)
    num_steps = check_int("num_steps", num_steps, minimum=1)
    eps = _check_eps(eps)
    x = _start(sde, shape, x1, generator, device, dtype)
    path = [x] if trajectory else None
    with torch.no_grad():
        for _, t, t_next, noise in _reverse_steps(num_steps, eps, denoise):
            x = _em_step(sde, score_fn, x, t, t_next, noise, generator)
            if trajectory:
                path.append(x)
    return (x, torch.stack(path)) if trajectory else x


def _chi_mean(d: int) -> float:
    r""":math:`E\|z\|` for :math:`z\sim\mathcal N(0, I_d)`: :math:`\sqrt2\,\Gamma((d+1)/2)/\Gamma(d/2)`."""
    return math.sqrt(2.0) * math.exp(math.lgamma((d + 1) / 2.0) - math.lgamma(d / 2.0))


def pc_sample(sde: SDE, score_fn: TimeFn, shape, num_steps: int, snr: float = 0.16,
              corrector_steps: int = 1, generator: torch.Generator | None = None,
              eps: float = 1e-3, *, x1: torch.Tensor | None = None, denoise: bool = True,
              device=None, dtype: torch.dtype | None = None) -> torch.Tensor:
    r"""Predictor-corrector sampling, Euler-Maruyama + Langevin (Song et al. 2021, Algorithms 2-3).

    On the grid :math:`t_i` = ``linspace(1, eps, num_steps + 1)``, at each :math:`t_i`
    (:math:`i < ` ``num_steps``), as in score_sde's ``pc_sampler``:

    1. **corrector**: ``corrector_steps`` Langevin steps targeting :math:`p_{t_i}`, by
       :func:`course_lib.score.langevin_dynamics` (:math:`x \leftarrow x + \eta s + \sqrt{2\eta} z`)
       with the *signal-to-noise step rule* of score_sde's ``LangevinCorrector``

       .. math::  \eta = 2\alpha_i\Big(r\,\frac{E\|z\|}{\overline{\|s(x, t_i)\|}}\Big)^2,

       :math:`r` = ``snr``, :math:`\overline{\|s\|}` the batch mean of the per-example score norms,
       :math:`E\|z\| = \sqrt2\,\Gamma(\frac{D+1}2)/\Gamma(\frac D2)` (score_sde uses the batch mean
       of the drawn noise norms, whose expectation this is), and
       :math:`\alpha_i = m(t_{i+1})^2/m(t_i)^2` (the step's :math:`\alpha` of the discretized VP
       process, score_sde's ``sde.alphas[timestep]``; 1 for VE). The update then has
       :math:`\|\eta s\| / \|\sqrt{2\eta}z\| \approx r\sqrt{\alpha_i}`: the signal-to-noise ratio
       :math:`r` fixes the step whatever the scale of :math:`p_t`.
    2. **predictor**: one reverse-time Euler-Maruyama step to :math:`t_{i+1}` (as
       :func:`reverse_sde_sample`; without noise on the last step when ``denoise``).

    Parameters
    ----------
    sde, score_fn, shape, num_steps, generator, eps, x1, denoise, device, dtype
        As in :func:`reverse_sde_sample`.
    snr : float
        :math:`r > 0`; 0.16 is score_sde's default configuration (CIFAR-10).
    corrector_steps : int
        Langevin steps per time, >= 0 (0 gives :func:`reverse_sde_sample`).

    Returns
    -------
    tensor ``shape``

    Raises
    ------
    ValueError, TypeError
        As in :func:`reverse_sde_sample`; ``snr <= 0``; ``corrector_steps < 0``.

    References
    ----------
    Song et al. (2021), Sec. 4.2, Algorithms 2 (VE) and 3 (VP); score_sde ``sampling.py``
    (``LangevinCorrector``, ``get_pc_sampler``; REFERENCES.md A4).
    """
    _check_sde(sde)
    _check_callable("score_fn", score_fn)
    num_steps = check_int("num_steps", num_steps, minimum=1)
    corrector_steps = check_int("corrector_steps", corrector_steps, minimum=0)
    check_positive("snr", snr)
    snr = float(snr)
    eps = _check_eps(eps)
    x = _start(sde, shape, x1, generator, device, dtype)
    shape = tuple(x.shape)
    n = shape[0]
    d = x[0].numel()
    z_norm = _chi_mean(d)
    m2 = torch.exp(2.0 * sde._log_mean_coeff(_reverse_grid(num_steps, eps)))   # m(t_i)^2 on the grid
    with torch.no_grad():
        for i, t, t_next, noise in _reverse_steps(num_steps, eps, denoise):
            alpha = float(m2[i + 1] / m2[i])
            flat_score = (lambda z, tv=_time_vector(t, x):
                          _call("score_fn", score_fn, z.reshape(shape), tv).reshape(n, d))
            for _ in range(corrector_steps):
                s_norm = float(flat_score(x.reshape(n, d)).norm(dim=1).mean())
                if not s_norm > 0.0:
                    break
                step = 2.0 * alpha * (snr * z_norm / s_norm) ** 2
                x = langevin_dynamics(flat_score, x.reshape(n, d), step, 1,
                                      generator=generator).reshape(shape)
            x = _em_step(sde, score_fn, x, t, t_next, noise, generator)
    return x


# ================================================================================================
# ODE solves: probability flow and likelihood
# ================================================================================================
def _check_method(method: str) -> str:
    if method not in _ODE_METHODS:
        raise ValueError(f"method: expected one of scipy's solve_ivp methods {_ODE_METHODS}, got "
                         f"{method!r}")
    return method


def _solve_ivp(rhs, y0: np.ndarray, times: Sequence[float], rtol: float, atol: float,
               method: str):
    """scipy's solve_ivp over ``times`` (monotone), tolerances per component (see below)."""
    from scipy.integrate import solve_ivp

    # solve_ivp controls the RMS over all components of error / (atol + rtol |y|); dividing both
    # tolerances by sqrt(n) makes that bound hold for every single component, so the tolerance
    # means the same for one point or a batch of thousands.
    scale = math.sqrt(y0.size)
    sol = solve_ivp(rhs, (times[0], times[-1]), y0, method=method, t_eval=list(times),
                    rtol=max(rtol / scale, 1e-13), atol=atol / scale)
    if not sol.success or sol.y.shape[1] != len(times):
        raise RuntimeError(f"the ODE solver failed between t = {times[0]} and t = {times[-1]}: "
                           f"{sol.message}")
    return sol.y.T, int(sol.nfev)


def _ode_states(field, x: torch.Tensor, times: list[float], rtol: float, atol: float,
                method: str) -> tuple[torch.Tensor, int]:
    """Integrate dx/dt = field(x, t_vec) over ``times``; returns ((len(times), *x.shape), nfev)."""
    shape, dtype, dev = tuple(x.shape), x.dtype, x.device

    def rhs(t, y):
        xx = torch.from_numpy(y).to(device=dev, dtype=dtype).reshape(shape)
        with torch.no_grad():
            v = field(xx, _time_vector(t, xx))
        return v.detach().to("cpu", torch.float64).numpy().ravel()

    y0 = x.detach().to("cpu", torch.float64).numpy().ravel()
    ys, nfev = _solve_ivp(rhs, y0, times, rtol, atol, method)
    out = torch.from_numpy(np.ascontiguousarray(ys)).reshape(len(times), *shape)
    return out.to(device=dev, dtype=dtype), nfev


def probability_flow_trajectory(sde: SDE, score_fn: TimeFn, x: torch.Tensor, times,
                                rtol: float = 1e-5, atol: float = 1e-5,
                                method: str = "DOP853") -> torch.Tensor:
    r"""Solve the probability-flow ODE accurately from ``x`` at ``times[0]`` and return the states at ``times``.

    .. math::  \frac{dx}{dt} = f(x, t) - \tfrac12 g(t)^2\, s(x, t)\qquad\text{(Song et al. 2021, Eq. 13)}

    Either direction: decreasing ``times`` generate (noise to data), increasing ones encode (data to
    noise; the ODE is a bijection). The reference solution DDIM is compared with: for
    ``sched = sde.noise_schedule(T)``, ``course_lib.diffusion.ddim_sample(sched,
    optimal_eps_model(mixture, sched), shape, n, noise=x1)`` approximates
    ``probability_flow_trajectory(sde, mixture_score(mixture, sde), x1, [1.0, 0.0])[-1]`` with an
    error :math:`O(1/n)` (DDIM is Euler's method on this ODE in the variables
    :math:`x/m(t)` and :math:`s(t)/m(t)`, Song, Meng, Ermon 2021, Sec. 4.3).

    **Solver.** scipy's ``solve_ivp`` on a float64 state, default ``"DOP853"`` (Dormand-Prince
    8(5,3), adaptive), chosen by accuracy. The error control runs in float64 whatever the score's
    dtype, and the tolerance holds *per component*: scipy bounds an RMS over all :math:`N D`
    components, so both tolerances are divided by :math:`\sqrt{ND}` here and every point meets
    ``rtol``/``atol`` as if solved alone. Measured on the course's mixtures (the 3-mode 2-D toy,
    the 25-mode grid, the 8-mode ring; VP and VE; the log-likelihood of :func:`ode_log_likelihood`
    against the exact one, error in units of ``tol * (1 + |log p|)``), at
    ``rtol = atol = 1e-5`` DOP853's error stayed within 6 units (mostly below 1), while
    ``"RK45"`` (the Dormand-Prince 5(4) pair of score_sde's likelihood code) reached 23 units (ring,
    VE) and 4 on the grid, at about 0.75 times DOP853's evaluations. ``torchdiffeq`` implements the
    same Dormand-Prince pairs (``dopri5``, ``dopri8``), so it would add a dependency without adding
    accuracy; its advantages (a state kept on the GPU, adjoint gradients) are not needed by the
    course's problems. ``"LSODA"``/``"BDF"`` suit stiff problems (very narrow
    mixture components near ``t = 0``).

    Parameters
    ----------
    sde : VPSDE or VESDE
    score_fn : callable
        ``score_fn(x, t) -> x``'s shape, ``t`` a tensor ``(N,)``.
    x : tensor (N, D) or (N, ...)
        The state at ``times[0]``.
    times : sequence of float or tensor
        Strictly monotone, at least two, in :math:`[0, 1]`.
    rtol, atol : float
        Per-component local error tolerances, > 0.
    method : str
        A ``scipy.integrate.solve_ivp`` method (default ``"DOP853"``).

    Returns
    -------
    tensor ``(len(times), *x.shape)``
        ``x``'s dtype and device; entry 0 is ``x`` itself.

    Raises
    ------
    ValueError, TypeError
        ``times`` not strictly monotone or outside ``[0, 1]``; bad tolerances or ``method``;
        ``score_fn`` returning another shape.
    RuntimeError
        When the solver fails (its message is included).

    References
    ----------
    Song et al. (2021), Eq. 13 and Appendix D; Hairer, Norsett, Wanner, "Solving ordinary
    differential equations I" (1993), DOP853; Dormand & Prince (1980); Virtanen et al. (2020),
    SciPy ``solve_ivp``.
    """
    _check_sde(sde)
    _check_callable("score_fn", score_fn)
    x = _check_data("x", x)
    times = _check_times(times)
    rtol, atol = _check_tolerance("rtol", rtol), _check_tolerance("atol", atol)
    method = _check_method(method)

    def field(xx, tv):
        return sde.probability_flow_drift(xx, tv, _call("score_fn", score_fn, xx, tv))

    states, _ = _ode_states(field, x, times, rtol, atol, method)
    return states


def probability_flow_sample(sde: SDE, score_fn: TimeFn, x1: torch.Tensor, eps: float = 1e-3,
                            rtol: float = 1e-5, atol: float = 1e-5,
                            method: str = "DOP853") -> torch.Tensor:
    r"""Sample by solving the probability-flow ODE (Eq. 13) from :math:`t = 1` (at ``x1``) to ``eps``.

    Deterministic: the same ``x1`` always gives the same sample, and the law of the output is
    :math:`p_{\mathrm{eps}}` when ``x1`` is drawn from :math:`p_1` (from the prior, up to the
    prior's mismatch with :math:`p_1`). See :func:`probability_flow_trajectory` for the solver and
    the meaning of the tolerances.

    Parameters
    ----------
    sde : VPSDE or VESDE
    score_fn : callable
        ``score_fn(x, t) -> x``'s shape.
    x1 : tensor (N, D) or (N, ...)
        Starting points, e.g. ``sde.prior_sample(shape, generator)``.
    eps : float
        Final time in ``[0, 1)``.
    rtol, atol : float
        Per-component tolerances.
    method : str
        A ``scipy.integrate.solve_ivp`` method (default ``"DOP853"``, chosen by accuracy: see
        :func:`probability_flow_trajectory`).

    Returns
    -------
    tensor
        ``x1``'s shape, dtype and device.

    Raises
    ------
    ValueError, TypeError
        As in :func:`probability_flow_trajectory`; ``eps`` outside ``[0, 1)``.

    References
    ----------
    Song et al. (2021), Eq. 13 and Sec. 4.3.
    """
    eps = _check_eps(eps)
    return probability_flow_trajectory(sde, score_fn, x1, [1.0, eps], rtol=rtol, atol=atol,
                                       method=method)[-1]


class LikelihoodDetails(NamedTuple):
    """What :func:`ode_log_likelihood` computed, with ``return_details=True``."""

    log_prob: torch.Tensor        # (N,) log p_eps(x), nats
    prior_log_prob: torch.Tensor  # (N,) log p_1(z) of the latent z = x(1)
    delta_log_prob: torch.Tensor  # (N,) int_eps^1 div(drift) dt
    latent: torch.Tensor          # x's shape: z = x(1), the ODE's encoding of x
    nfev: int                     # evaluations of the ODE's right-hand side (each: score + divergence)


def ode_log_likelihood(sde: SDE, score_fn: TimeFn, x: torch.Tensor, eps: float = 1e-3,
                       rtol: float = 1e-5, atol: float = 1e-5, *, num_probes: int | None = None,
                       generator: torch.Generator | None = None, probe: str = "rademacher",
                       prior_log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None,
                       method: str = "DOP853", return_details: bool = False):
    r"""Log-density of ``x`` at time ``eps`` under the probability-flow ODE (instantaneous change of variables).

    With :math:`\tilde f(x, t) = f(x, t) - \tfrac12 g(t)^2 s(x, t)` (Eq. 13), solve from
    :math:`t = \mathrm{eps}` to 1 the augmented ODE

    .. math::  \frac{dx}{dt} = \tilde f(x, t),\qquad
               \frac{d}{dt}\log p_t(x(t)) = -\nabla\cdot\tilde f(x(t), t)

    (Chen et al. 2018, Theorem 1), so that

    .. math::  \log p_{\mathrm{eps}}(x) = \log p_1(x(1)) + \int_{\mathrm{eps}}^1
               \nabla\cdot\tilde f(x(t), t)\, dt

    (Song et al. 2021, Appendix D.2), with :math:`p_1` replaced by the prior
    (:math:`\mathcal N(0, I)` for VP, :math:`\mathcal N(0, \sigma_\max^2 I)` for VE) unless
    ``prior_log_prob`` is given. The divergence is exact (autograd, :math:`D` backward passes,
    :func:`course_lib.score.divergence`) or, with ``num_probes``, Hutchinson's unbiased estimate
    :math:`E_v[v^\top \nabla\tilde f\, v]` (FFJORD), the probes drawn **once** per solve (as in
    score_sde) so the right-hand side stays a smooth function of :math:`t` for the adaptive solver.
    The result is then an unbiased estimate of the exact-divergence value.

    When the score is exact, the result equals :math:`\log p_{\mathrm{eps}}(x)` up to the solver's
    tolerance **and** the prior's mismatch :math:`\log p_1(z) - \log\pi(z)` at the latent
    :math:`z = x(1)` (about :math:`m(1) z^\top\mu` for VP: 0.0066 per unit of the data's scale,
    i.e. ~1e-2 nats for modes at distance 2-4). Pass the exact
    ``prior_log_prob=marginal_mixture(mixture, sde, 1.0).log_prob`` to remove it.

    Parameters
    ----------
    sde : VPSDE or VESDE
    score_fn : callable
        ``score_fn(x, t) -> x``'s shape, differentiable in ``x`` by autograd (rows independent).
    x : tensor (N, D) or (N, ...)
        Points (for images, flattened internally for the divergence).
    eps : float
        The time whose density is computed, in ``[0, 1)``.
    rtol, atol : float
        Per-component tolerances of the solver (the log-density is one of the components).
    num_probes : int, optional
        None: exact divergence. Else Hutchinson with that many probes per point.
    generator : torch.Generator, optional
        Drives the probes.
    probe : {"rademacher", "gaussian"}
    prior_log_prob : callable, optional
        ``(N, D) -> (N,)``, the log-density at :math:`t = 1`; default ``sde.prior_log_prob``.
    method : str
        A ``scipy.integrate.solve_ivp`` method (default ``"DOP853"``, chosen by accuracy: see
        :func:`probability_flow_trajectory`).
    return_details : bool
        Return a :class:`LikelihoodDetails` instead of the log-density alone.

    Returns
    -------
    tensor (N,) or LikelihoodDetails
        Nats, in ``x``'s dtype and on its device.

    Raises
    ------
    ValueError, TypeError
        Bad ``x``, ``eps``, tolerances, ``num_probes < 1``, ``probe``, ``method``; ``score_fn``
        returning another shape; ``prior_log_prob`` not returning ``(N,)``.
    RuntimeError
        When the solver fails.

    Notes
    -----
    Cost: each right-hand-side evaluation is one score evaluation plus :math:`D` backward passes
    (exact) or ``num_probes`` (Hutchinson); ``return_details=True`` reports the number ``nfev``.

    References
    ----------
    Chen et al. (2018), Theorem 1; Grathwohl et al. (2019), FFJORD; Song et al. (2021),
    Appendix D.2; score_sde ``likelihood.py`` (which uses RK45 with rtol = atol = 1e-5;
    REFERENCES.md A4); Hairer, Norsett, Wanner (1993), DOP853.
    """
    _check_sde(sde)
    _check_callable("score_fn", score_fn)
    x = _check_data("x", x)
    eps = _check_eps(eps)
    rtol, atol = _check_tolerance("rtol", rtol), _check_tolerance("atol", atol)
    method = _check_method(method)
    if num_probes is not None:
        num_probes = check_int("num_probes", num_probes, minimum=1)
        if probe not in ("rademacher", "gaussian"):
            raise ValueError(f"probe: expected 'rademacher' or 'gaussian', got {probe!r}")
        seed_dev = generator.device if generator is not None else torch.device("cpu")
        probe_seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator, device=seed_dev))
    if prior_log_prob is not None:
        _check_callable("prior_log_prob", prior_log_prob)
    shape, dtype, dev = tuple(x.shape), x.dtype, x.device
    n, d = shape[0], x[0].numel()

    def rhs(t, y):
        xx = torch.from_numpy(y[: n * d]).to(device=dev, dtype=dtype).reshape(n, d)
        tv = _time_vector(t, xx)
        cache = {}

        def drift_flat(z):                       # z (n, d) -> f~(z, t) (n, d); row-wise
            zz = z.reshape(shape)
            v = sde.probability_flow_drift(zz, tv, _call("score_fn", score_fn, zz, tv))
            cache["drift"] = v
            return v.reshape(n, d)

        with torch.no_grad():
            if num_probes is None:
                div = divergence(drift_flat, xx)
            else:                                 # the same probes at every t: reseed each call
                g = torch.Generator(device="cpu")
                g.manual_seed(probe_seed)
                div = divergence(drift_flat, xx, num_probes=num_probes, generator=g, probe=probe)
        dx = cache["drift"].detach().reshape(-1).to("cpu", torch.float64).numpy()
        return np.concatenate([dx, div.detach().to("cpu", torch.float64).numpy()])

    y0 = np.concatenate([x.detach().to("cpu", torch.float64).numpy().reshape(-1), np.zeros(n)])
    ys, nfev = _solve_ivp(rhs, y0, [eps, 1.0], rtol, atol, method)
    y1 = ys[-1]
    z = torch.from_numpy(y1[: n * d].copy()).to(device=dev, dtype=dtype).reshape(shape)
    delta = torch.from_numpy(y1[n * d:].copy()).to(device=dev, dtype=dtype)
    prior = sde.prior_log_prob(z) if prior_log_prob is None else prior_log_prob(z)
    if not isinstance(prior, torch.Tensor) or tuple(prior.shape) != (n,):
        raise ValueError(f"prior_log_prob: expected a tensor of shape ({n},), got "
                         f"{getattr(prior, 'shape', type(prior).__name__)}")
    logp = prior.to(dtype) + delta
    if return_details:
        return LikelihoodDetails(logp, prior.to(dtype), delta, z, nfev)
    return logp


# ================================================================================================
# Conditional flow matching on the linear path
# ================================================================================================
def flow_matching_loss(velocity_fn: TimeFn, x1: torch.Tensor,
                       generator: torch.Generator | None = None,
                       reduction: str = "mean") -> torch.Tensor:
    r"""Conditional flow matching with the linear (rectified-flow) path, a Monte Carlo estimate.

    .. math::  \mathcal L(v) = E_{t\sim U(0,1)}\,E_{x_0\sim\mathcal N(0,I)}\,E_{x_1\sim p}
               \big\|v(x_t, t) - (x_1 - x_0)\big\|^2,\qquad x_t = (1-t)\,x_0 + t\,x_1,

    summed over dimensions, one :math:`(t, x_0)` per data point. Its gradient equals that of the
    marginal loss :math:`E\|v(x_t,t) - u_t(x_t)\|^2` with
    :math:`u_t(x) = E[x_1 - x_0\mid x_t = x]`, so its minimizer is that marginal velocity
    (:func:`optimal_velocity` for a mixture), and the minimum value is
    :math:`E_t E\,\mathrm{tr}\,\mathrm{Cov}[x_1 - x_0\mid x_t] > 0`, not 0.

    Parameters
    ----------
    velocity_fn : callable
        ``velocity_fn(x, t) -> x``'s shape, ``t`` a tensor ``(N,)`` in ``[0, 1]``.
    x1 : tensor (N, D) or (N, ...)
        Data samples.
    generator : torch.Generator, optional
        Drives :math:`t` and :math:`x_0`.
    reduction : {"mean", "none"}
        Mean over the batch (a scalar) or per example ``(N,)``.

    Returns
    -------
    tensor () or (N,)
        Differentiable w.r.t. ``velocity_fn``'s parameters.

    Raises
    ------
    ValueError, TypeError
        ``x1`` not a floating tensor ``(N, ...)``; bad ``reduction``; ``velocity_fn`` returning
        another shape.

    References
    ----------
    Lipman et al. (2023), Sec. 3-4 (the conditional loss, Theorem 2 for its gradient; the
    optimal-transport path with :math:`\sigma_\min = 0`); Liu et al. (2023), Sec. 2 (rectified
    flow); Albergo & Vanden-Eijnden (2023), stochastic interpolants.
    """
    _check_callable("velocity_fn", velocity_fn)
    x1 = _check_data("x1", x1)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction: expected 'mean' or 'none', got {reduction!r}")
    n = x1.shape[0]
    t = _rand((n,), generator, x1.device, x1.dtype)
    x0 = _randn(x1.shape, generator, x1.device, x1.dtype)
    tc = _column(t, x1)
    xt = (1.0 - tc) * x0 + tc * x1                                   # x_t = (1 - t) x0 + t x1
    target = x1 - x0                                                  # d x_t / dt
    out = _call("velocity_fn", velocity_fn, xt, t)
    per = ((out - target) ** 2).reshape(n, -1).sum(1)
    return per.mean() if reduction == "mean" else per


def flow_marginal(mixture: GaussianMixture, t: float) -> GaussianMixture:
    r"""Exact law of :math:`x_t = (1-t)x_0 + t x_1`, :math:`x_0\sim\mathcal N(0, I)`, :math:`x_1` from a mixture.

    Component :math:`k` becomes :math:`\mathcal N\big(t\mu_k,\ (1-t)^2 + t^2 s_k^2\big)`: at
    :math:`t = 0` the standard normal, at :math:`t = 1` the mixture.

    Parameters
    ----------
    mixture : course_lib.toy.GaussianMixture
    t : float
        One time in :math:`[0, 1]`.

    Returns
    -------
    GaussianMixture
    """
    _check_mixture(mixture)
    if isinstance(t, torch.Tensor) and t.dim() != 0:
        raise ValueError(f"t: expected one time (a number or a 0-d tensor), got shape {tuple(t.shape)}")
    tt = float(_check_time(t))
    stds = torch.sqrt((1.0 - tt) ** 2 + tt ** 2 * mixture.stds ** 2)
    return GaussianMixture(tt * mixture.means, stds, mixture.weights.clone())


class OptimalVelocity:
    r"""Exact marginal velocity :math:`E[x_1 - x_0\mid x_t]` of a mixture target (:func:`optimal_velocity`)."""

    def __init__(self, mixture: GaussianMixture):
        self.mixture = _check_mixture(mixture)

    def __repr__(self) -> str:
        return f"optimal_velocity({self.mixture!r})"

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        x = _check_data("x", x)
        if x.dim() != 2 or x.shape[1] != self.mixture.dim:
            raise ValueError(f"x: expected shape (N, {self.mixture.dim}) to match the mixture's "
                             f"dimension, got {tuple(x.shape)}")
        tt = _column(_check_time(t, x.shape[0], x.device), x)[:, :, None]          # (N|1, 1, 1)
        means, stds, weights = (p.to(device=x.device, dtype=x.dtype) for p in
                                (self.mixture.means, self.mixture.stds, self.mixture.weights))
        s2 = stds * stds                                                           # (K, D)
        var = (1.0 - tt) ** 2 + tt * tt * s2                                       # Var[x_t | k]
        diff = x[:, None, :] - tt * means                                          # x - t mu_k
        log_joint = torch.log(weights) - 0.5 * (diff * diff / var + torch.log(var)
                                                + _LOG_2PI).sum(-1)
        resp = torch.softmax(log_joint, dim=1)                                     # (N, K)
        # E[x1 - x0 | x_t, k] = mu_k + Cov[x1 - x0, x_t | k] / Var[x_t | k] (x - t mu_k),
        # Cov[x1 - x0, x_t | k] = t s_k^2 - (1 - t)
        cond = means + (tt * s2 - (1.0 - tt)) / var * diff                         # (N, K, D)
        return (resp[..., None] * cond).sum(1)


def optimal_velocity(mixture: GaussianMixture) -> OptimalVelocity:
    r"""The exact marginal velocity of the linear path for a Gaussian-mixture target, in closed form.

    Given component :math:`k`, :math:`x_1\sim\mathcal N(\mu_k, \mathrm{diag}\,s_k^2)` and
    :math:`x_0\sim\mathcal N(0, I)` are independent, so :math:`(u, x_t)` with
    :math:`u = x_1 - x_0`, :math:`x_t = (1-t)x_0 + t x_1` is jointly Gaussian, per dimension:

    .. math::  E[x_t\mid k] = t\mu_k,\quad \mathrm{Var}[x_t\mid k] = (1-t)^2 + t^2 s_k^2 =: v_k,\quad
               \mathrm{Cov}[u, x_t\mid k] = t s_k^2 - (1 - t),

    hence :math:`E[u\mid x_t = x, k] = \mu_k + \frac{t s_k^2 - (1-t)}{v_k}(x - t\mu_k)`, and mixing
    with the responsibilities :math:`r_k(x, t) \propto w_k\,\mathcal N(x; t\mu_k, v_k)`,

    .. math::  u_t(x) = E[x_1 - x_0\mid x_t = x] = \sum_k r_k(x, t)\Big[\mu_k
               + \frac{t s_k^2 - (1-t)}{(1-t)^2 + t^2 s_k^2}\,(x - t\mu_k)\Big].

    Finite on all of :math:`[0, 1]` (:math:`v_k > 0`): :math:`u_0(x) = E[x_1] - x` and
    :math:`u_1(x) = x` (:math:`x_0` is independent of :math:`x_1`). The equivalent form
    :math:`(E[x_1\mid x_t] - x_t)/(1-t)` is 0/0 at :math:`t = 1` and is not used.

    Parameters
    ----------
    mixture : course_lib.toy.GaussianMixture
        The target :math:`p_1` (positive component stds).

    Returns
    -------
    callable
        ``velocity_fn(x, t) -> (N, D)``, ``x`` ``(N, D)``, ``t`` a number or a tensor ``(N,)`` in
        ``[0, 1]``; in ``x``'s dtype and on its device.

    Raises
    ------
    TypeError
        ``mixture`` not a ``GaussianMixture``; at call time, as :func:`mixture_score`.

    References
    ----------
    Lipman et al. (2023), Theorem 1 (the marginal velocity); Liu et al. (2023), Sec. 2
    (:math:`v^X(x, t) = E[X_1 - X_0\mid X_t = x]`).
    """
    return OptimalVelocity(mixture)


def flow_matching_sample(velocity_fn: TimeFn, x0: torch.Tensor, num_steps: int | None = None,
                         rtol: float = 1e-5, atol: float = 1e-5, *, times=None,
                         method: str = "DOP853") -> torch.Tensor:
    r"""Sample a flow-matching model: integrate :math:`dx/dt = v(x, t)` from :math:`t = 0` (at ``x0``) to 1.

    Adaptive (scipy ``solve_ivp``, float64 state, per-component tolerances as in
    :func:`probability_flow_trajectory`) by default, or ``num_steps`` Euler steps on a uniform grid
    (what trained rectified flows use: straight paths make few steps accurate).

    Parameters
    ----------
    velocity_fn : callable
        ``velocity_fn(x, t) -> x``'s shape, ``t`` a tensor ``(N,)``.
    x0 : tensor (N, D) or (N, ...)
        Starting points, usually :math:`\mathcal N(0, I)` draws.
    num_steps : int, optional
        Euler steps (>= 1) instead of the adaptive solver.
    rtol, atol : float
        Per-component tolerances of the adaptive solver.
    times : sequence of float, optional
        Adaptive solver only: strictly monotone times in ``[0, 1]``, ``x0`` given at ``times[0]``;
        the states at every time are returned.
    method : str
        A ``scipy.integrate.solve_ivp`` method.

    Returns
    -------
    tensor
        ``x0``'s shape (the state at :math:`t = 1`), or ``(len(times), *x0.shape)`` with ``times``.

    Raises
    ------
    ValueError, TypeError
        ``num_steps < 1``; ``times`` with ``num_steps``, not monotone or outside ``[0, 1]``; bad
        tolerances; ``velocity_fn`` returning another shape.

    References
    ----------
    Lipman et al. (2023), Sec. 3; Liu et al. (2023), Algorithm 1.
    """
    _check_callable("velocity_fn", velocity_fn)
    x0 = _check_data("x0", x0)
    if num_steps is not None:
        num_steps = check_int("num_steps", num_steps, minimum=1)
        if times is not None:
            raise ValueError("times: expected None with num_steps (the Euler sampler returns the "
                             "state at t = 1 only), got a sequence")
        grid = torch.linspace(0.0, 1.0, num_steps + 1, dtype=torch.float64).tolist()
        x = x0.detach().clone()
        with torch.no_grad():
            for i in range(num_steps):
                v = _call("velocity_fn", velocity_fn, x, _time_vector(grid[i], x))
                x = x + (grid[i + 1] - grid[i]) * v                               # Euler step
        return x
    rtol, atol = _check_tolerance("rtol", rtol), _check_tolerance("atol", atol)
    method = _check_method(method)
    grid = [0.0, 1.0] if times is None else _check_times(times)

    def field(xx, tv):
        return _call("velocity_fn", velocity_fn, xx, tv)

    states, _ = _ode_states(field, x0, grid, rtol, atol, method)
    return states if times is not None else states[-1]
