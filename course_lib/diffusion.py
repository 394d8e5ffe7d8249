r"""Denoising diffusion probabilistic models (DDPM): schedules, kernels, posteriors, bound, samplers.

Everything notebooks 04 and 05 derive is computed here, once, and tested against independent references
(``tests/test_diffusion.py``): the forward chain
:math:`q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1-\beta_t}\,x_{t-1}, \beta_t I)`, its closed-form kernel
:math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0, (1-\bar\alpha_t) I)`, the forward
posterior :math:`q(x_{t-1} \mid x_t, x_0)`, the reverse step :math:`p_\theta(x_{t-1} \mid x_t)` in
the eps-, x0- and v-parameterizations, the variational bound in nats, the training loss
:math:`L_\text{simple}` (Algorithm 1), ancestral sampling (Algorithm 2), DDIM, the ELBO-optimal
fixed reverse variance of each step, and the exact Bayes-optimal noise predictor of a Gaussian
mixture.

Index convention (DESIGN.md §4, REFERENCES.md A0)
-------------------------------------------------
**The step index ``t`` is 0-based**: ``t`` in ``{0, ..., T-1}``, as in the DDPM authors' code,
improved-diffusion and diffusers. Index ``t`` is the paper's step ``t+1``: ``alphas_cumprod[0]``
is the paper's :math:`\bar\alpha_1 = 1-\beta_1`, ``posterior_variance[0]`` is the paper's
:math:`\tilde\beta_1 = 0`, the decoder term :math:`L_0` of the bound sits at index 0 and the prior
term :math:`L_T` uses index ``T-1``. A function that takes ``t`` wants an integer tensor of shape
``(N,)`` (one step per example, ``N`` = the batch size of the data argument).

Numerics
--------
Schedule arrays are computed once in float64 (as in improved-diffusion) and gathered by ``t`` and
cast to the data's dtype and device only where used (:func:`_extract`). The samplers, where every
example of the batch is at the same step, cast each array they need once per call instead and
apply its entry at each step as a 0-d tensor (:class:`_SharedStep`), with the same roundings and
through the same formula functions, so the samples are the same bit for bit, at no per-step
gather, cast or broadcast. No clipping of
:math:`\hat x_0` happens unless asked for (``clip_x0``); improved-diffusion's and diffusers'
defaults clip to ``[-1, 1]``, which silently corrupts 2-D toy data at ``+-4`` (REFERENCES.md C6).

References
----------
- J. Ho, A. Jain, P. Abbeel, "Denoising diffusion probabilistic models", NeurIPS 2020
  (Eqs. 4-12, Algorithms 1 and 2).
- A. Nichol, P. Dhariwal, "Improved denoising diffusion probabilistic models", ICML 2021
  (cosine schedule, Eq. 17; code ``improved_diffusion/gaussian_diffusion.py``).
- J. Song, C. Meng, S. Ermon, "Denoising diffusion implicit models", ICLR 2021 (Eqs. 12 and 16).
- T. Salimans, J. Ho, "Progressive distillation for fast sampling of diffusion models", ICLR 2022
  (v-prediction, Appendix D).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from course_lib._checks import call_checked, check_int
from course_lib._primitives import draw_device, model_device, randint, randn
from course_lib._primitives import progress as progress_bar
from course_lib.gaussians import diag_gaussian_log_prob, gaussian_kl, gaussian_log_likelihood

__all__ = [
    "NoiseSchedule", "q_sample", "q_mean_variance", "q_posterior_mean_variance",
    "predict_x0_from_eps", "predict_eps_from_x0", "eps_to_score", "score_to_eps",
    "velocity", "predict_x0_from_v", "predict_eps_from_v",
    "PMeanVariance", "p_mean_variance", "p_sample", "sample", "ddim_timesteps", "ddim_sample",
    "loss_simple", "prior_kl", "VLBTerms", "vlb_term", "vlb_terms", "ReverseVariance", "optimal_reverse_variance",
    "optimal_eps_model", "OptimalEpsModel",
]

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_PREDICTIONS = ("eps", "x0", "v")
_VARIANCES = ("small", "large")

# float64 is not available on Apple MPS: schedules moved there are stored in float32.
_NO_FLOAT64 = ("mps",)


# ================================================================================================
# Noise schedule
# ================================================================================================
class NoiseSchedule:
    r"""A DDPM variance schedule :math:`\beta_1, \dots, \beta_T` and every array derived from it.

    All arrays are float64 tensors of shape ``(T,)``, indexed by the **0-based** step ``t``
    (index ``t`` is the paper's step ``t+1``; REFERENCES.md A0). With
    :math:`\alpha_t = 1-\beta_t` and :math:`\bar\alpha_t = \prod_{s\le t}\alpha_s`:

    ==================================  ==============================================================
    attribute                           value at index ``t``
    ==================================  ==============================================================
    ``betas``                           :math:`\beta_t`
    ``alphas``                          :math:`\alpha_t = 1-\beta_t`
    ``alphas_cumprod``                  :math:`\bar\alpha_t = \prod_{s\le t}\alpha_s`
    ``alphas_cumprod_prev``             :math:`\bar\alpha_{t-1}`, with 1 at index 0
    ``sqrt_alphas_cumprod``             :math:`\sqrt{\bar\alpha_t}`
    ``sqrt_one_minus_alphas_cumprod``   :math:`\sqrt{1-\bar\alpha_t}`
    ``log_one_minus_alphas_cumprod``    :math:`\log(1-\bar\alpha_t)`
    ``sqrt_recip_alphas_cumprod``       :math:`1/\sqrt{\bar\alpha_t}`
    ``sqrt_recipm1_alphas_cumprod``     :math:`\sqrt{1/\bar\alpha_t - 1}`
    ``posterior_variance``              :math:`\tilde\beta_t = \beta_t(1-\bar\alpha_{t-1})/(1-\bar\alpha_t)`
                                        (0 at index 0)
    ``posterior_log_variance_clipped``  :math:`\log\tilde\beta_t`, index 0 replaced by index 1
    ``posterior_mean_coef1``            :math:`\beta_t\sqrt{\bar\alpha_{t-1}}/(1-\bar\alpha_t)` (1 at index 0)
    ``posterior_mean_coef2``            :math:`(1-\bar\alpha_{t-1})\sqrt{\alpha_t}/(1-\bar\alpha_t)` (0 at index 0)
    ``large_log_variance``              :math:`\log\beta_t`, index 0 replaced by :math:`\log\tilde\beta` at index 1
    ``snr``                             :math:`\bar\alpha_t/(1-\bar\alpha_t)`, signal-to-noise ratio
    ``log_snr``                         :math:`\log\bar\alpha_t - \log(1-\bar\alpha_t)`
    ==================================  ==============================================================

    Build one with :meth:`linear` or :meth:`cosine`, or from any ``betas`` in ``(0, 1)``.

    Parameters
    ----------
    betas : tensor or array-like (T,)
        The variances :math:`\beta` of the forward transitions, each in ``(0, 1)``; stored as
        float64 (on ``betas``' device, or CPU for array-likes).
    name : str, optional
        A label shown in ``repr`` (``"linear"``, ``"cosine"``, ``"custom"``).

    Raises
    ------
    ValueError
        ``betas`` not 1-D, empty, not finite, or with a value outside ``(0, 1)``.

    Notes
    -----
    ``posterior_variance[0]`` is exactly 0 (the step from the paper's :math:`x_1` to :math:`x_0`
    has a deterministic posterior given :math:`x_0`), so its log is replaced by the value at index 1
    (improved-diffusion and the original DDPM code, REFERENCES.md A1, C2); this log-variance is
    the decoder's at ``t = 0``. With ``T = 1`` there is no index 1 and :math:`\log\beta_0` is used.

    References
    ----------
    Ho et al. (2020), Eqs. 4, 6, 7; Nichol & Dhariwal (2021), ``GaussianDiffusion.__init__``.

    Examples
    --------
    >>> sched = NoiseSchedule.linear(1000)
    >>> float(sched.alphas_cumprod[0])   # paper's alpha-bar_1 = 1 - 1e-4
    0.9999
    """

    _ARRAYS = ("betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
               "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod",
               "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
               "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
               "large_log_variance", "snr", "log_snr")

    def __init__(self, betas, name: str = "custom"):
        if isinstance(betas, torch.Tensor):
            device = betas.device if betas.device.type not in _NO_FLOAT64 else torch.device("cpu")
            b = betas.detach().to(device=device, dtype=torch.float64)
        else:
            try:
                b = torch.as_tensor(betas, dtype=torch.float64)
            except Exception as exc:
                raise TypeError(f"betas: expected a tensor or array-like of shape (T,), got "
                                f"{type(betas).__name__}") from exc
        if b.dim() != 1 or b.shape[0] < 1:
            raise ValueError(f"betas: expected a 1-D tensor of shape (T,) with T >= 1, got shape "
                             f"{tuple(b.shape)}")
        if not bool(torch.isfinite(b).all()):
            raise ValueError("betas: expected finite values in (0, 1), got NaN or inf")
        if not bool(((b > 0) & (b < 1)).all()):
            bad = b[~((b > 0) & (b < 1))][0].item()
            raise ValueError(f"betas: expected every value in the open interval (0, 1), got {bad!r}")
        self.name = str(name)
        self._compute(b)

    def _compute(self, b: torch.Tensor) -> None:
        T = b.shape[0]
        self.betas = b
        self.alphas = 1.0 - b                                            # alpha_t = 1 - beta_t
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)          # abar_t = prod_{s<=t} alpha_s
        ab = self.alphas_cumprod
        self.alphas_cumprod_prev = torch.cat([ab.new_ones(1), ab[:-1]])  # abar_{t-1}, 1 at t = 0
        ab_prev = self.alphas_cumprod_prev
        self.sqrt_alphas_cumprod = torch.sqrt(ab)
        self.sqrt_one_minus_alphas_cumprod = torch.sqrt(1.0 - ab)
        self.log_one_minus_alphas_cumprod = torch.log(1.0 - ab)
        self.sqrt_recip_alphas_cumprod = torch.sqrt(1.0 / ab)
        self.sqrt_recipm1_alphas_cumprod = torch.sqrt(1.0 / ab - 1.0)
        # beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)             (Ho et al. 2020, Eq. 7)
        self.posterior_variance = b * (1.0 - ab_prev) / (1.0 - ab)
        pv = self.posterior_variance
        # log beta~ with index 0 (where beta~ = 0) replaced by index 1 (improved-diffusion)
        first = pv[1:2] if T > 1 else b[:1]
        self.posterior_log_variance_clipped = torch.log(torch.cat([first, pv[1:]]))
        # mu~_t = coef1 x0 + coef2 x_t                                  (Ho et al. 2020, Eq. 7)
        self.posterior_mean_coef1 = b * torch.sqrt(ab_prev) / (1.0 - ab)
        self.posterior_mean_coef2 = (1.0 - ab_prev) * torch.sqrt(self.alphas) / (1.0 - ab)
        # "large" reverse variance sigma_t^2 = beta_t; index 0 as improved-diffusion FIXED_LARGE
        self.large_log_variance = torch.log(torch.cat([first, b[1:]]))
        self.snr = ab / (1.0 - ab)                                       # SNR_t = abar / (1 - abar)
        self.log_snr = torch.log(ab) - self.log_one_minus_alphas_cumprod

    # --------------------------------------------------------------------------------------------
    @classmethod
    def linear(cls, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
               rescale: bool = False) -> "NoiseSchedule":
        r"""The linear schedule of Ho et al. (2020): :math:`\beta` evenly spaced from ``beta_start`` to ``beta_end``.

        .. math::  \beta_t = \beta_\text{start} + \frac{t}{T-1}(\beta_\text{end} - \beta_\text{start}),
                   \quad t = 0, \dots, T-1 \ \text{(0-based)}

        Parameters
        ----------
        num_steps : int
            Number of diffusion steps ``T >= 1``.
        beta_start, beta_end : float
            First and last :math:`\beta`, with ``0 < beta_start < beta_end < 1`` (for ``T = 1``
            only ``beta_start`` is used). DDPM uses 1e-4 and 0.02 with ``T = 1000``.
        rescale : bool
            Multiply both by ``1000 / T`` (improved-diffusion's ``get_named_beta_schedule``), so
            that a schedule with fewer steps noises the data about as much as DDPM's ``T = 1000``
            (e.g. ``T = 100`` gives 1e-3 .. 0.2). Without it, 1e-4 .. 0.02 with small ``T`` leaves
            :math:`\bar\alpha_{T-1}` far from 0 (REFERENCES.md C5).

        Returns
        -------
        NoiseSchedule

        Raises
        ------
        ValueError
            ``num_steps < 1``; ``beta_start``/``beta_end`` (after rescaling) outside ``(0, 1)`` or
            ``beta_start >= beta_end`` (the message gives the values).
        TypeError
            ``num_steps`` not an int.

        References
        ----------
        Ho et al. (2020), Section 4; Nichol & Dhariwal (2021), ``get_named_beta_schedule``.
        """
        T = check_int("num_steps", num_steps, minimum=1)
        start, end = float(beta_start), float(beta_end)
        if rescale:
            start, end = start * 1000.0 / T, end * 1000.0 / T
        what = " (after rescaling by 1000/num_steps)" if rescale else ""
        for name, v in (("beta_start", start), ("beta_end", end)):
            if not (0.0 < v < 1.0):
                raise ValueError(f"{name}: expected a number in (0, 1){what}, got {v!r}")
        if T > 1 and not start < end:
            raise ValueError(f"beta_start, beta_end: expected beta_start < beta_end, got "
                             f"{start!r} >= {end!r}")
        betas = torch.linspace(start, end, T, dtype=torch.float64)
        return cls(betas, name="linear")

    @classmethod
    def cosine(cls, num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "NoiseSchedule":
        r"""The cosine schedule of Nichol & Dhariwal (2021), Eq. 17, in improved-diffusion's form.

        .. math::  \bar\alpha(u) = \cos^2\Big(\frac{u + s}{1 + s}\,\frac{\pi}{2}\Big), \qquad
                   \beta_t = \min\Big(1 - \frac{\bar\alpha((t+1)/T)}{\bar\alpha(t/T)},\ \beta_\text{max}\Big),
                   \quad t = 0, \dots, T-1 \ \text{(0-based)}

        so that :math:`\bar\alpha_t = \bar\alpha((t+1)/T)/\bar\alpha(0)` until a :math:`\beta` is
        clipped (for ``T = 1000`` only the last one is: :math:`\beta_{T-1} = 0.999`).

        Parameters
        ----------
        num_steps : int
            Number of diffusion steps ``T >= 1``.
        s : float
            Offset ``s >= 0`` that keeps :math:`\beta_0` from being vanishingly small.
        max_beta : float
            Upper clip of :math:`\beta` in ``(0, 1)``; 0.999 avoids the singularity at
            :math:`u = 1` where :math:`\bar\alpha = 0`.

        Returns
        -------
        NoiseSchedule

        Raises
        ------
        ValueError
            ``num_steps < 1``, ``s < 0``, ``max_beta`` outside ``(0, 1)``.

        References
        ----------
        Nichol & Dhariwal (2021), Eq. 17 and ``betas_for_alpha_bar``.
        """
        T = check_int("num_steps", num_steps, minimum=1)
        s = float(s)
        if not (s >= 0.0 and math.isfinite(s)):
            raise ValueError(f"s: expected a finite number >= 0, got {s!r}")
        max_beta = float(max_beta)
        if not (0.0 < max_beta < 1.0):
            raise ValueError(f"max_beta: expected a number in (0, 1), got {max_beta!r}")
        u = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((u + s) / (1.0 + s) * math.pi / 2.0) ** 2      # abar(u) up to abar(0)
        betas = torch.clamp(1.0 - f[1:] / f[:-1], max=max_beta)
        return cls(betas, name="cosine")

    # --------------------------------------------------------------------------------------------
    @property
    def num_steps(self) -> int:
        """Number of diffusion steps ``T``."""
        return int(self.betas.shape[0])

    def __len__(self) -> int:
        return self.num_steps

    @property
    def device(self) -> torch.device:
        """Device of the schedule arrays."""
        return self.betas.device

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the schedule arrays (float64, except on MPS)."""
        return self.betas.dtype

    def to(self, device=None, dtype: torch.dtype | None = None) -> "NoiseSchedule":
        """Return a copy with every array on ``device`` (and in ``dtype``, float64 by default).

        Parameters
        ----------
        device : torch.device or str, optional
            Target device. On Apple MPS, which has no float64, the arrays become float32.
        dtype : torch.dtype, optional
            Floating dtype of the copy; keep float64 unless memory matters.

        Returns
        -------
        NoiseSchedule
            A new schedule (``self`` is unchanged).
        """
        device = self.device if device is None else torch.device(device)
        dtype = self.dtype if dtype is None else dtype
        if device.type in _NO_FLOAT64 and dtype == torch.float64:
            dtype = torch.float32
        new = object.__new__(type(self))
        new.name = self.name
        for key in self._ARRAYS:
            setattr(new, key, getattr(self, key).to(device=device, dtype=dtype))
        return new

    def __repr__(self) -> str:
        return (f"NoiseSchedule(name={self.name!r}, num_steps={self.num_steps}, "
                f"beta_0={self.betas[0].item():.4g}, beta_T-1={self.betas[-1].item():.4g}, "
                f"alphas_cumprod[T-1]={self.alphas_cumprod[-1].item():.4g}, device={self.device})")


# ================================================================================================
# Validation and gathering
# ================================================================================================
def _check_schedule(schedule) -> NoiseSchedule:
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule: expected a NoiseSchedule, got {type(schedule).__name__}")
    return schedule


def _check_data(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a floating-point torch.Tensor of shape (N, ...), got "
                        f"{type(x).__name__}")
    if x.dim() < 1:
        raise ValueError(f"{name}: expected a tensor of shape (N, ...) with a batch dimension, "
                         f"got a 0-d tensor")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    return x


def _check_t(t, schedule: NoiseSchedule, batch_size: int, batch_name: str) -> torch.Tensor:
    """``t`` must be an integer tensor (N,) with values in [0, T-1] (0-based)."""
    T = schedule.num_steps
    want = (f"an integer tensor of shape ({batch_size},) (one 0-based step in [0, {T - 1}] per "
            f"example of {batch_name})")
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"t: expected {want}, got {type(t).__name__} {t!r}")
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise ValueError(f"t: expected {want}, got dtype {t.dtype}")
    if tuple(t.shape) != (batch_size,):
        raise ValueError(f"t: expected {want}, got shape {tuple(t.shape)}")
    if t.numel() > 0:
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi > T - 1:
            raise ValueError(f"t: expected 0-based steps in [0, {T - 1}] (T = {T}), got values in "
                             f"[{lo}, {hi}]")
    return t


def _check_choice(name: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(repr(c) for c in choices)}, "
                         f"got {value!r}")
    return value


def _check_clip(clip_x0):
    if clip_x0 is None:
        return None
    if isinstance(clip_x0, bool) or not isinstance(clip_x0, (int, float)) or not clip_x0 > 0 \
            or not math.isfinite(clip_x0):
        raise ValueError(f"clip_x0: expected None (no clipping) or a positive number c "
                         f"(clip x0_hat to [-c, c]), got {clip_x0!r}")
    return float(clip_x0)


def _check_batch(schedule, name: str, x, t=None):
    """The preamble of every function of a batch: a schedule, a floating-point batch ``x`` named
    ``name`` and, when given, 0-based steps ``t`` (one per example). Returns ``(x, t)``."""
    _check_schedule(schedule)
    x = _check_data(name, x)
    if t is not None:
        t = _check_t(t, schedule, x.shape[0], name)
    return x, t


def _check_options(prediction: str | None = None, variance: str | None = None, clip_x0=None):
    """The options of the reverse step, the samplers, the loss and the bound (None: not taken).
    Returns ``clip_x0`` as a float or None."""
    if prediction is not None:
        _check_choice("prediction", prediction, _PREDICTIONS)
    if variance is not None:
        _check_choice("variance", variance, _VARIANCES)
    return _check_clip(clip_x0)


def _extract(arr: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Gather ``arr[t]`` (float64 schedule array, 0-based ``t`` of shape (N,)) and shape it
    ``(N, 1, ..., 1)`` to broadcast against ``x``, on ``x``'s device and in ``x``'s dtype.

    While sampling, ``t`` may be a :class:`_SharedStep` (every example at one step): then the
    entry of the array cast once per sampling call is returned, a 0-d tensor."""
    if isinstance(t, _SharedStep):
        return t.entry(arr)
    out = arr[t.to(arr.device)]
    return out.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def _check_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if isinstance(shape, int) or not isinstance(shape, (tuple, list)) or len(shape) < 1 or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"shape: expected a tuple of positive ints (N, ...), got {shape!r}")
    return tuple(shape)


# ================================================================================================
# Forward process
# ================================================================================================
def q_mean_variance(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor):
    r"""The diffusion kernel :math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0, (1-\bar\alpha_t) I)`.

    Parameters
    ----------
    schedule : NoiseSchedule
    x0 : tensor (N, ...)
        Clean data.
    t : integer tensor (N,)
        **0-based** steps in ``[0, T-1]``: index ``t`` is the paper's step ``t+1``.

    Returns
    -------
    mean : tensor, x0's shape
        :math:`\sqrt{\bar\alpha_t}\,x_0`.
    variance : tensor, x0's shape
        :math:`1-\bar\alpha_t` (the same for every dimension).

    Raises
    ------
    ValueError
        ``t`` not an integer tensor ``(N,)`` with values in ``[0, T-1]``.

    References
    ----------
    Ho et al. (2020), Eq. 4.
    """
    x0, t = _check_batch(schedule, "x0", x0, t)
    mean = _extract(schedule.sqrt_alphas_cumprod, t, x0) * x0        # sqrt(abar_t) x0
    variance = (1.0 - _extract(schedule.alphas_cumprod, t, x0)).expand(x0.shape).contiguous()
    return mean, variance


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor,
             noise: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Draw :math:`x_t \sim q(x_t \mid x_0)`:
    :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon`.

    Parameters
    ----------
    schedule : NoiseSchedule
    x0 : tensor (N, ...)
        Clean data.
    t : integer tensor (N,)
        **0-based** steps in ``[0, T-1]``: index ``t`` is the paper's step ``t+1`` (``t = 0``
        means one noising step).
    noise : tensor, x0's shape, optional
        :math:`\varepsilon`; drawn from :math:`\mathcal N(0, I)` when omitted.
    generator : torch.Generator, optional
        Drives the draw of ``noise`` (on the generator's device, then moved to x0's).

    Returns
    -------
    tensor, x0's shape, dtype and device

    Raises
    ------
    ValueError
        Bad ``t``; ``noise`` of a shape other than x0's.

    References
    ----------
    Ho et al. (2020), Eq. 4 and Algorithm 1 line 5.
    """
    x0, t = _check_batch(schedule, "x0", x0, t)
    if noise is None:
        noise = randn(x0.shape, generator, x0.device, x0.dtype)
    else:
        _check_data("noise", noise)
        if noise.shape != x0.shape:
            raise ValueError(f"noise: expected x0's shape {tuple(x0.shape)}, got "
                             f"{tuple(noise.shape)}")
    return _q_sample(schedule, x0, t, noise)


def _q_sample(schedule, x0, t, noise):
    # x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
    return (_extract(schedule.sqrt_alphas_cumprod, t, x0) * x0
            + _extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * noise)


def q_posterior_mean_variance(schedule: NoiseSchedule, x0: torch.Tensor, xt: torch.Tensor,
                              t: torch.Tensor):
    r"""The forward posterior :math:`q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I)`.

    .. math::  \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0
               + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t, \qquad
               \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t

    Parameters
    ----------
    schedule : NoiseSchedule
    x0, xt : tensors (N, ...) of the same shape
        Clean data and its noised version at step ``t``.
    t : integer tensor (N,)
        **0-based** steps in ``[0, T-1]``: index ``t`` is the paper's step ``t+1``. At ``t = 0``
        the posterior is a point mass at ``x0`` (mean ``x0``, variance 0).

    Returns
    -------
    mean : tensor, x0's shape
        :math:`\tilde\mu_t(x_t, x_0)`.
    variance : tensor, x0's shape
        :math:`\tilde\beta_t` (exactly 0 at ``t = 0``).
    log_variance : tensor, x0's shape
        :math:`\log\tilde\beta_t`, clipped: at ``t = 0`` the value of index 1 (finite).

    Raises
    ------
    ValueError
        Bad ``t``; ``x0`` and ``xt`` of different shapes.

    References
    ----------
    Ho et al. (2020), Eqs. 6-7.
    """
    x0, xt, t = _check_pair(schedule, "x0", x0, "xt", xt, t)
    return _q_posterior(schedule, x0, xt, t)


def _posterior_mean(schedule, x0, xt, t):
    # mu~ = coef1 x0 + coef2 x_t
    mean = (_extract(schedule.posterior_mean_coef1, t, xt) * x0
            + _extract(schedule.posterior_mean_coef2, t, xt) * xt)
    return mean


def _q_posterior(schedule, x0, xt, t):
    mean = _posterior_mean(schedule, x0, xt, t)
    variance = _extract(schedule.posterior_variance, t, xt).expand(xt.shape).contiguous()
    log_variance = _extract(schedule.posterior_log_variance_clipped, t, xt).expand(xt.shape).contiguous()
    return mean, variance, log_variance


# ================================================================================================
# Conversions between parameterizations (REFERENCES.md C17)
# ================================================================================================
def _check_pair(schedule, name_a, a, name_b, b, t):
    """:func:`_check_batch` for two batches of the same shape; returns ``(a, b, t)``."""
    a, t = _check_batch(schedule, name_a, a, t)
    b = _check_data(name_b, b)
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b}: expected the same shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    return a, b, t


def predict_x0_from_eps(schedule: NoiseSchedule, xt: torch.Tensor, t: torch.Tensor,
                        eps: torch.Tensor) -> torch.Tensor:
    r""":math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon)/\sqrt{\bar\alpha_t}`.

    Parameters
    ----------
    schedule : NoiseSchedule
    xt, eps : tensors (N, ...) of the same shape
    t : integer tensor (N,)
        **0-based** steps in ``[0, T-1]`` (index ``t`` is the paper's step ``t+1``).

    Returns
    -------
    tensor, xt's shape

    Raises
    ------
    ValueError
        Bad ``t`` or mismatched shapes.

    References
    ----------
    Ho et al. (2020), Eq. 4 solved for :math:`x_0` (used in Eq. 11).
    """
    _check_pair(schedule, "xt", xt, "eps", eps, t)
    return _x0_from_eps(schedule, xt, t, eps)


def _x0_from_eps(schedule, xt, t, eps):
    # x0 = x_t / sqrt(abar) - sqrt(1/abar - 1) eps
    return (_extract(schedule.sqrt_recip_alphas_cumprod, t, xt) * xt
            - _extract(schedule.sqrt_recipm1_alphas_cumprod, t, xt) * eps)


def predict_eps_from_x0(schedule: NoiseSchedule, xt: torch.Tensor, t: torch.Tensor,
                        x0: torch.Tensor) -> torch.Tensor:
    r""":math:`\varepsilon = (x_t - \sqrt{\bar\alpha_t}\,x_0)/\sqrt{1-\bar\alpha_t}`.

    Parameters
    ----------
    schedule : NoiseSchedule
    xt, x0 : tensors (N, ...) of the same shape
    t : integer tensor (N,)
        **0-based** steps in ``[0, T-1]`` (index ``t`` is the paper's step ``t+1``).

    Returns
    -------
    tensor, xt's shape

    References
    ----------
    Ho et al. (2020), Eq. 4 solved for :math:`\varepsilon`.
    """
    _check_pair(schedule, "xt", xt, "x0", x0, t)
    return _eps_from_x0(schedule, xt, t, x0)


def _eps_from_x0(schedule, xt, t, x0):
    # eps = (x_t / sqrt(abar) - x0) / sqrt(1/abar - 1)
    return ((_extract(schedule.sqrt_recip_alphas_cumprod, t, xt) * xt - x0)
            / _extract(schedule.sqrt_recipm1_alphas_cumprod, t, xt))


def eps_to_score(schedule: NoiseSchedule, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    r"""Score of the noised marginal from a noise prediction:
    :math:`\nabla\log q_t(x_t) = -\varepsilon/\sqrt{1-\bar\alpha_t}`.

    Exact for the Bayes-optimal :math:`\varepsilon(x_t) = E[\varepsilon \mid x_t]` by Tweedie's
    formula; for a trained model it is the model's score estimate.

    Parameters
    ----------
    schedule : NoiseSchedule
    t : integer tensor (N,)
        **0-based** steps in ``[0, T-1]`` (index ``t`` is the paper's step ``t+1``).
    eps : tensor (N, ...)

    Returns
    -------
    tensor, eps's shape

    References
    ----------
    Song et al., "Score-based generative modeling through SDEs", ICLR 2021, Appendix;
    Efron (2011) (Tweedie's formula); REFERENCES.md C17.
    """
    eps, t = _check_batch(schedule, "eps", eps, t)
    return -eps / _extract(schedule.sqrt_one_minus_alphas_cumprod, t, eps)   # s = -eps / sqrt(1-abar)


def score_to_eps(schedule: NoiseSchedule, t: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    r"""Inverse of :func:`eps_to_score`: :math:`\varepsilon = -\sqrt{1-\bar\alpha_t}\,\nabla\log q_t(x_t)`.

    Parameters
    ----------
    schedule : NoiseSchedule
    t : integer tensor (N,)
        **0-based** steps in ``[0, T-1]`` (index ``t`` is the paper's step ``t+1``).
    score : tensor (N, ...)

    Returns
    -------
    tensor, score's shape
    """
    score, t = _check_batch(schedule, "score", score, t)
    return -_extract(schedule.sqrt_one_minus_alphas_cumprod, t, score) * score


def velocity(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor,
             eps: torch.Tensor) -> torch.Tensor:
    r"""The v-prediction target :math:`v = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1-\bar\alpha_t}\,x_0`.

    Parameters
    ----------
    schedule : NoiseSchedule
    x0, eps : tensors (N, ...) of the same shape
    t : integer tensor (N,)
        **0-based** steps in ``[0, T-1]`` (index ``t`` is the paper's step ``t+1``).

    Returns
    -------
    tensor, x0's shape

    References
    ----------
    Salimans & Ho (2022), Appendix D; diffusers ``get_velocity`` (REFERENCES.md A3).
    """
    _check_pair(schedule, "x0", x0, "eps", eps, t)
    return (_extract(schedule.sqrt_alphas_cumprod, t, x0) * eps
            - _extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * x0)


def predict_x0_from_v(schedule: NoiseSchedule, xt: torch.Tensor, t: torch.Tensor,
                      v: torch.Tensor) -> torch.Tensor:
    r""":math:`\hat x_0 = \sqrt{\bar\alpha_t}\,x_t - \sqrt{1-\bar\alpha_t}\,v`.

    Parameters
    ----------
    schedule : NoiseSchedule
    xt, v : tensors (N, ...) of the same shape
    t : integer tensor (N,)
        **0-based** steps in ``[0, T-1]`` (index ``t`` is the paper's step ``t+1``).

    Returns
    -------
    tensor, xt's shape

    References
    ----------
    Salimans & Ho (2022), Appendix D.
    """
    _check_pair(schedule, "xt", xt, "v", v, t)
    return _x0_from_v(schedule, xt, t, v)


def _x0_from_v(schedule, xt, t, v):
    return (_extract(schedule.sqrt_alphas_cumprod, t, xt) * xt
            - _extract(schedule.sqrt_one_minus_alphas_cumprod, t, xt) * v)


def predict_eps_from_v(schedule: NoiseSchedule, xt: torch.Tensor, t: torch.Tensor,
                       v: torch.Tensor) -> torch.Tensor:
    r""":math:`\hat\varepsilon = \sqrt{\bar\alpha_t}\,v + \sqrt{1-\bar\alpha_t}\,x_t`.

    Parameters
    ----------
    schedule : NoiseSchedule
    xt, v : tensors (N, ...) of the same shape
    t : integer tensor (N,)
        **0-based** steps in ``[0, T-1]`` (index ``t`` is the paper's step ``t+1``).

    Returns
    -------
    tensor, xt's shape

    References
    ----------
    Salimans & Ho (2022), Appendix D.
    """
    _check_pair(schedule, "xt", xt, "v", v, t)
    return (_extract(schedule.sqrt_alphas_cumprod, t, xt) * v
            + _extract(schedule.sqrt_one_minus_alphas_cumprod, t, xt) * xt)


# ================================================================================================
# Reverse process
# ================================================================================================
class PMeanVariance(NamedTuple):
    """The reverse-step Gaussian :math:`p_\\theta(x_{t-1} \\mid x_t)` (all of xt's shape)."""

    mean: torch.Tensor
    variance: torch.Tensor
    log_variance: torch.Tensor
    pred_x0: torch.Tensor


def p_mean_variance(schedule: NoiseSchedule, model: Model, xt: torch.Tensor, t: torch.Tensor,
                    prediction: str = "eps", variance: str = "small",
                    clip_x0: float | None = None) -> PMeanVariance:
    r"""The reverse step :math:`p_\theta(x_{t-1} \mid x_t) = \mathcal N(\mu_\theta(x_t, t), \sigma_t^2 I)`.

    The network predicts :math:`\varepsilon`, :math:`x_0` or :math:`v`; it is converted to
    :math:`\hat x_0` and the mean is the forward-posterior mean at :math:`\hat x_0`:

    .. math::  \mu_\theta(x_t, t) = \tilde\mu_t(x_t, \hat x_0)
               = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,
                 \varepsilon_\theta(x_t, t)\Big) \quad\text{(eps-prediction, Eq. 11)}

    Parameters
    ----------
    schedule : NoiseSchedule
    model : callable
        ``model(xt, t)`` returning a tensor of ``xt``'s shape: :math:`\varepsilon`, :math:`x_0` or
        :math:`v` according to ``prediction``.
    xt : tensor (N, ...)
    t : integer tensor (N,)
        **0-based** steps in ``[0, T-1]`` (index ``t`` is the paper's step ``t+1``; ``t = 0``
        gives the decoder :math:`p(x_0 \mid x_1)` of the paper).
    prediction : {"eps", "x0", "v"}
        What the model outputs.
    variance : {"small", "large"}
        :math:`\sigma_t^2`. ``"small"``: :math:`\tilde\beta_t`, the forward posterior variance
        (variance 0 at ``t = 0``; log-variance clipped there to index 1's value). ``"large"``:
        :math:`\beta_t`, except at ``t = 0`` where variance and log-variance are those of
        ``"small"``'s index 1, :math:`\tilde\beta` (improved-diffusion FIXED_LARGE "for a better
        decoder log-likelihood"). The two are the bounds of Ho et al. (2020), Section 3.2.
        At ``t = 0`` both give the decoder the variance ``exp(log_variance)`` = ``posterior_variance[1]``.
    clip_x0 : float, optional
        Clip :math:`\hat x_0` to ``[-clip_x0, clip_x0]`` before computing the mean. Default: no
        clipping (improved-diffusion and diffusers clip to ``[-1, 1]`` by default, which corrupts
        data outside that range; REFERENCES.md C6).

    Returns
    -------
    PMeanVariance
        Named fields ``mean``, ``variance``, ``log_variance``, ``pred_x0``, each of ``xt``'s shape.

    Raises
    ------
    ValueError
        Bad ``t``, unknown ``prediction``/``variance``, bad ``clip_x0``, a model output of the
        wrong shape.

    References
    ----------
    Ho et al. (2020), Eqs. 7, 11 and Section 3.2; Nichol & Dhariwal (2021), ``p_mean_variance``;
    Salimans & Ho (2022) for ``"v"``.
    """
    xt, t = _check_batch(schedule, "xt", xt, t)
    clip_x0 = _check_options(prediction, variance, clip_x0)
    return _p_mean_variance(schedule, model, xt, t, prediction, variance, clip_x0)


def _pred_x0(schedule, out, xt, t, prediction):
    if prediction == "eps":
        return _x0_from_eps(schedule, xt, t, out)
    if prediction == "x0":
        return out
    return _x0_from_v(schedule, xt, t, out)


def _p_mean(schedule, model, xt, t, prediction, clip_x0, at=None):
    """``(mu_theta(x_t, t), x0_hat)``: the model's output turned into x0_hat (optionally clipped)
    and put into the forward posterior's mean (Ho et al. Eq. 7). The coefficients are taken at
    ``at`` (a :class:`_SharedStep` while sampling) or else at ``t``."""
    at = t if at is None else at
    out = call_checked("model", model, xt, t, call="model(xt, t)")
    pred_x0 = _pred_x0(schedule, out, xt, at, prediction)
    if clip_x0 is not None:
        pred_x0 = pred_x0.clamp(-clip_x0, clip_x0)
    return _posterior_mean(schedule, pred_x0, xt, at), pred_x0


def _reverse_log_variance(schedule, variance):
    """The schedule array of log sigma_t^2: "small" beta-tilde_t (clipped at t = 0), "large" beta_t."""
    return schedule.posterior_log_variance_clipped if variance == "small" else schedule.large_log_variance


def _reverse_std(log_variance, adds_noise):
    """sigma_t = exp(log sigma_t^2 / 2), times 0 where no noise is added (t = 0)."""
    return adds_noise * torch.exp(0.5 * log_variance)


def _p_mean_variance(schedule, model, xt, t, prediction, variance, clip_x0) -> PMeanVariance:
    mean, pred_x0 = _p_mean(schedule, model, xt, t, prediction, clip_x0)
    logvar = _extract(_reverse_log_variance(schedule, variance), t, xt).expand(xt.shape).contiguous()
    if variance == "small":
        var = _extract(schedule.posterior_variance, t, xt).expand(xt.shape).contiguous()
    else:
        var = torch.exp(logvar)
    return PMeanVariance(mean, var, logvar, pred_x0)


def p_sample(schedule: NoiseSchedule, model: Model, xt: torch.Tensor, t: torch.Tensor,
             generator: torch.Generator | None = None, prediction: str = "eps",
             variance: str = "small", clip_x0: float | None = None) -> torch.Tensor:
    r"""One reverse step :math:`x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z`, :math:`z \sim \mathcal N(0, I)`,
    no noise at ``t = 0``.

    Parameters
    ----------
    schedule : NoiseSchedule
    model : callable
        ``model(xt, t) -> tensor`` of xt's shape (see :func:`p_mean_variance`).
    xt : tensor (N, ...)
    t : integer tensor (N,)
        **0-based** steps in ``[0, T-1]`` (index ``t`` is the paper's step ``t+1``). Examples with
        ``t = 0`` get the mean exactly (Algorithm 2 line 4: :math:`z = 0` for the last step).
    generator : torch.Generator, optional
        Drives :math:`z` (drawn on the generator's device, then moved to xt's).
    prediction, variance, clip_x0
        As in :func:`p_mean_variance`.

    Returns
    -------
    tensor, xt's shape
        :math:`x_{t-1}` (the paper's indexing: a sample at 0-based step ``t-1``, or the data
        estimate when ``t = 0``).

    Raises
    ------
    ValueError
        As in :func:`p_mean_variance`.

    References
    ----------
    Ho et al. (2020), Algorithm 2, line 4.
    """
    xt, t = _check_batch(schedule, "xt", xt, t)
    clip_x0 = _check_options(prediction, variance, clip_x0)
    return _p_sample(schedule, model, xt, t, generator, prediction, variance, clip_x0)[0]


def _adds_noise(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """1 where the reverse step from 0-based step ``t`` adds noise, 0 at ``t = 0`` (Algorithm 2,
    line 4: z = 0 for the last step). Shared by :func:`p_sample` and the samplers."""
    return (t != 0).to(dtype)


def _p_sample(schedule, model, xt, t, generator, prediction, variance, clip_x0):
    out = _p_mean_variance(schedule, model, xt, t, prediction, variance, clip_x0)
    z = randn(xt.shape, generator, xt.device, xt.dtype)
    nonzero = _adds_noise(t, xt.dtype).reshape(-1, *([1] * (xt.dim() - 1)))   # no noise at t = 0
    # x_{t-1} = mu + sigma z, sigma = exp(log sigma^2 / 2)
    return out.mean + _reverse_std(out.log_variance, nonzero) * z, out.pred_x0


class _SharedStep:
    """The step every example of a sampled batch is at, given to :func:`_extract` as ``t``.

    :func:`_extract` gathers a per-example column from a float64 schedule array and casts it at
    every call. In :func:`sample` and :func:`ddim_sample` every example is at the same step, so
    :func:`_extract` given a ``_SharedStep`` returns instead the entry at position :attr:`k` of
    the array cast once per sampling call to the samples' dtype on the sampling device (the same
    float64 -> dtype rounding), a 0-d tensor. A product or quotient with it rounds exactly as with
    the broadcast ``(N, 1, ..., 1)`` column, so the samplers call the very formulas of
    :func:`p_sample` (:func:`_p_mean`, :func:`_eps_from_x0`) and their samples are the same bit
    for bit, without a per-step gather, cast or ``expand().contiguous()`` copy (each a kernel
    launch on a GPU).

    ``steps`` (DDIM's timesteps) selects the entries kept, so that position ``k`` is the 0-based
    step ``steps[k]``; without it position ``k`` is step ``k``.
    """

    def __init__(self, dtype: torch.dtype, device: torch.device, steps: torch.Tensor | None = None):
        self.dtype, self.device = dtype, device
        self.index = None if steps is None else steps.to(device)
        self.k = 0
        self._tables: dict[int, torch.Tensor] = {}

    def table(self, arr: torch.Tensor) -> torch.Tensor:
        """``arr`` (float64, ``(T,)``) at the kept steps, cast once to the samples' dtype."""
        cast = self._tables.get(id(arr))
        if cast is None:
            kept = arr.to(self.device) if self.index is None else arr.to(self.device)[self.index]
            cast = self._tables[id(arr)] = kept.to(self.dtype)
        return cast

    def entry(self, arr: torch.Tensor) -> torch.Tensor:
        return self.table(arr)[self.k]


def _ddim_coefficients(schedule: NoiseSchedule, steps: torch.Tensor, eta: float):
    """Per DDIM step k (0-based step ``steps[k]``), in float64: sqrt(abar_prev),
    sqrt(1 - abar_prev - sigma^2) and sigma, with abar_prev = 1 after the last step."""
    ab = schedule.alphas_cumprod[steps.to(schedule.alphas_cumprod.device)]
    ab_prev = torch.cat([ab[1:], ab.new_ones(1)])
    # sigma = eta sqrt((1 - abar_prev)/(1 - abar)) sqrt(1 - abar/abar_prev)   (Eq. 16)
    sigma = eta * torch.sqrt((1 - ab_prev) / (1 - ab)) * torch.sqrt(1 - ab / ab_prev)
    c_dir = torch.sqrt((1 - ab_prev - sigma ** 2).clamp_min(0.0))
    return torch.sqrt(ab_prev), c_dir, sigma


def _default_dtype(dtype, noise):
    if dtype is not None:
        return dtype
    if isinstance(noise, torch.Tensor) and noise.is_floating_point():
        return noise.dtype
    return torch.get_default_dtype()


def _initial_noise(noise, shape, generator, device, dtype):
    if noise is None:
        return randn(shape, generator, device, dtype)
    noise = _check_data("noise", noise)
    if tuple(noise.shape) != shape:
        raise ValueError(f"noise: expected the initial x_T of shape {shape}, got "
                         f"{tuple(noise.shape)}")
    return noise.to(device=device, dtype=dtype)


def sample(schedule: NoiseSchedule, model: Model, shape, generator: torch.Generator | None = None,
           trajectory: bool = False, progress: bool = False, device=None,
           prediction: str = "eps", variance: str = "small", clip_x0: float | None = None,
           dtype: torch.dtype | None = None, noise: torch.Tensor | None = None):
    r"""Ancestral sampling, Algorithm 2 of Ho et al. (2020).

    :math:`x_T \sim \mathcal N(0, I)`; for the 0-based steps ``t = T-1, ..., 0``:
    :math:`x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z` with :math:`z = 0` at ``t = 0``
    (see :func:`p_sample`). The whole batch moves together (one model call per step, no per-example
    Python loop). Each schedule array the step uses is cast once per call to the samples' dtype on
    the sampling device, and since every example is at the same step its value is applied as a
    scalar: the same roundings as :func:`p_sample`'s, so chaining :func:`p_sample` gives the same
    samples bit for bit. The loop runs under ``torch.inference_mode``, and the returned tensors are
    ordinary (not inference) tensors.

    Parameters
    ----------
    schedule : NoiseSchedule
    model : callable
        ``model(xt, t) -> tensor`` of xt's shape, ``t`` a long tensor ``(N,)`` of **0-based** steps.
    shape : tuple of int
        ``(N, ...)``, the shape of the samples.
    generator : torch.Generator, optional
        Drives :math:`x_T` and every :math:`z` (drawn on the generator's device, then moved).
    trajectory : bool
        Also return every intermediate :math:`x`.
    progress : bool
        Show a ``tqdm.auto`` progress bar.
    device : torch.device or str, optional
        Where to sample. Default: the device of the model's first parameter (an ``nn.Module``),
        or ``model.device`` if it has one, else CPU.
    prediction, variance, clip_x0
        As in :func:`p_mean_variance` (defaults: eps-prediction, :math:`\sigma_t^2 = \tilde\beta_t`,
        no clipping).
    dtype : torch.dtype, optional
        dtype of the samples (default: ``noise``'s dtype if given, else torch's default dtype).
    noise : tensor ``shape``, optional
        The starting :math:`x_T` instead of a fresh draw.

    Returns
    -------
    x0 : tensor ``shape``
        The samples :math:`x_0`.
    trajectory : tensor ``(T+1, *shape)``
        Only when ``trajectory=True``: :math:`x_T` (the initial noise) first, then the state
        after each step, ending with ``x0``.

    Raises
    ------
    ValueError
        Bad ``shape``, ``prediction``, ``variance``, ``clip_x0``, ``noise``; a model output of the
        wrong shape.

    References
    ----------
    Ho et al. (2020), Algorithm 2.
    """
    _check_schedule(schedule)
    shape = _check_shape(shape)
    clip_x0 = _check_options(prediction, variance, clip_x0)
    device = torch.device(device) if device is not None else model_device(model)
    dtype = _default_dtype(dtype, noise)
    sched = schedule.to(device)
    T = sched.num_steps
    with torch.inference_mode():
        at = _SharedStep(dtype, device)
        # sigma_t per step in the samples' dtype, 0 at t = 0 (as p_sample's)
        noise_scale = _reverse_std(at.table(_reverse_log_variance(sched, variance)),
                                   _adds_noise(torch.arange(T, device=device), dtype))
        x = _initial_noise(noise, shape, generator, device, dtype)          # x_T ~ N(0, I)
        path = [x] if trajectory else None
        for i in progress_bar(reversed(range(T)), progress, "DDPM sampling", T):
            t = torch.full((shape[0],), i, dtype=torch.long, device=device)
            at.k = i
            mean, _ = _p_mean(sched, model, x, t, prediction, clip_x0, at)
            z = randn(x.shape, generator, device, dtype)       # drawn at t = 0 too, as p_sample
            x = mean + noise_scale[i] * z
            if trajectory:
                path.append(x)
        out = torch.stack(path) if trajectory else None
    x = x.clone()                                    # a normal tensor, usable with autograd
    return (x, out.clone()) if trajectory else x


def ddim_timesteps(num_train_steps: int, num_steps: int) -> torch.Tensor:
    """The "trailing" DDIM timesteps: ``round(arange(T, 0, -T/n)) - 1``, descending from ``T-1``.

    Evenly spaced by ``T/n`` and always including the last 0-based step ``T-1`` (Lin et al. 2023,
    "Common diffusion noise schedules and sample steps are flawed", Table 2; diffusers'
    ``timestep_spacing="trailing"``). With ``n = T`` it is every step ``T-1, ..., 0``.

    Parameters
    ----------
    num_train_steps : int
        ``T``, the schedule's number of steps.
    num_steps : int
        ``n``, the number of sampling steps, ``1 <= n <= T``.

    Returns
    -------
    long tensor (n,)
        Strictly decreasing **0-based** steps, first ``T-1``. E.g. ``T = 1000, n = 10``:
        ``[999, 899, ..., 99]``.
    """
    T = check_int("num_train_steps", num_train_steps, minimum=1)
    n = check_int("num_steps", num_steps, minimum=1)
    if n > T:
        raise ValueError(f"num_steps: expected at most the schedule's num_steps T = {T}, got {n}")
    steps = torch.round(torch.arange(T, 0, -T / n, dtype=torch.float64)[:n]).long() - 1
    return steps


def ddim_sample(schedule: NoiseSchedule, model: Model, shape, num_steps: int, eta: float = 0.0,
                generator: torch.Generator | None = None, trajectory: bool = False,
                progress: bool = False, device=None, prediction: str = "eps",
                clip_x0: float | None = None, dtype: torch.dtype | None = None,
                noise: torch.Tensor | None = None):
    r"""DDIM sampling in ``num_steps`` steps (Song et al. 2021, Eq. 12), deterministic for ``eta = 0``.

    On the "trailing" timesteps :math:`\tau_1 > \dots > \tau_n` of :func:`ddim_timesteps`
    (0-based, :math:`\tau_1 = T-1`), with :math:`\bar\alpha_\text{prev} = \bar\alpha_{\tau_{i+1}}`
    (and 1 after the last step):

    .. math::
        \hat x_0 = \frac{x_\tau - \sqrt{1-\bar\alpha_\tau}\,\hat\varepsilon}{\sqrt{\bar\alpha_\tau}},\qquad
        \sigma = \eta\sqrt{\frac{1-\bar\alpha_\text{prev}}{1-\bar\alpha_\tau}}
                 \sqrt{1-\frac{\bar\alpha_\tau}{\bar\alpha_\text{prev}}}\ \text{(Eq. 16)},\\
        x_\text{prev} = \sqrt{\bar\alpha_\text{prev}}\,\hat x_0
                 + \sqrt{1-\bar\alpha_\text{prev}-\sigma^2}\,\hat\varepsilon + \sigma z .

    :math:`\hat\varepsilon` is re-derived from :math:`\hat x_0` (so it agrees with a clipped
    :math:`\hat x_0` and with x0-/v-prediction models). ``eta = 1`` with ``num_steps = T`` is
    ancestral sampling with :math:`\sigma_t^2 = \tilde\beta_t` (:func:`sample`).

    Parameters
    ----------
    schedule : NoiseSchedule
    model : callable
        ``model(xt, t) -> tensor`` of xt's shape, ``t`` a long tensor ``(N,)`` of **0-based** steps.
    shape : tuple of int
        ``(N, ...)``.
    num_steps : int
        Number of sampling steps, ``1 <= num_steps <= T``.
    eta : float
        ``>= 0``; 0 = deterministic DDIM, 1 = DDPM-like noise.
    generator : torch.Generator, optional
        Drives :math:`x_T` and (for ``eta > 0``) every :math:`z`.
    trajectory, progress, device, prediction, clip_x0, dtype, noise
        As in :func:`sample`.

    Returns
    -------
    x0 : tensor ``shape``
    trajectory : tensor ``(num_steps+1, *shape)``
        Only when ``trajectory=True``.

    Raises
    ------
    ValueError
        ``num_steps`` outside ``[1, T]``, ``eta < 0``, and as in :func:`sample`.

    References
    ----------
    Song, Meng, Ermon (2021), Eqs. 12 and 16; Nichol & Dhariwal (2021) ``ddim_sample``;
    Lin et al. (2023) for the trailing spacing.
    """
    _check_schedule(schedule)
    shape = _check_shape(shape)
    steps = ddim_timesteps(schedule.num_steps, num_steps)
    eta = float(eta)
    if not (eta >= 0.0 and math.isfinite(eta)):
        raise ValueError(f"eta: expected a finite number >= 0, got {eta!r}")
    clip_x0 = _check_options(prediction, clip_x0=clip_x0)
    device = torch.device(device) if device is not None else model_device(model)
    dtype = _default_dtype(dtype, noise)
    sched = schedule.to(device)
    steps_list = steps.tolist()
    with torch.inference_mode():
        at = _SharedStep(dtype, device, steps)
        c_x0, c_dir, sigma = (c.to(device=device, dtype=dtype) for c in _ddim_coefficients(sched, steps, eta))
        x = _initial_noise(noise, shape, generator, device, dtype)
        path = [x] if trajectory else None
        for k in progress_bar(range(len(steps_list)), progress, "DDIM sampling", len(steps_list)):
            t = torch.full((shape[0],), steps_list[k], dtype=torch.long, device=device)
            at.k = k
            out = call_checked("model", model, x, t, call="model(xt, t)")
            pred_x0 = _pred_x0(sched, out, x, at, prediction)
            if clip_x0 is not None:
                pred_x0 = pred_x0.clamp(-clip_x0, clip_x0)
            eps = _eps_from_x0(sched, x, at, pred_x0)
            # x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps + sigma z  (Eq. 12)
            x = c_x0[k] * pred_x0 + c_dir[k] * eps
            if eta > 0:
                x = x + sigma[k] * randn(shape, generator, device, dtype)
            if trajectory:
                path.append(x)
        out = torch.stack(path) if trajectory else None
    x = x.clone()
    return (x, out.clone()) if trajectory else x


# ================================================================================================
# Training loss and variational bound
# ================================================================================================
def loss_simple(schedule: NoiseSchedule, model: Model, x0: torch.Tensor,
                generator: torch.Generator | None = None, prediction: str = "eps",
                weights: torch.Tensor | None = None) -> torch.Tensor:
    r""":math:`L_\text{simple}`, Algorithm 1 of Ho et al. (2020): noise-prediction mean squared error.

    .. math::  L_\text{simple} = E_{t, x_0, \varepsilon}\big\|\varepsilon
               - \varepsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\varepsilon, t)\big\|^2

    with ``t`` uniform on the **0-based** steps ``{0, ..., T-1}`` (index ``t`` is the paper's step
    ``t+1``), one ``t`` and one :math:`\varepsilon` per example; the squared error is averaged over
    every data dimension and the batch (improved-diffusion's ``mean_flat`` then batch mean).

    Parameters
    ----------
    schedule : NoiseSchedule
    model : callable
        ``model(xt, t) -> tensor`` of xt's shape.
    x0 : tensor (N, ...)
        A batch of clean data.
    generator : torch.Generator, optional
        Drives ``t`` and :math:`\varepsilon`.
    prediction : {"eps", "x0", "v"}
        The model's target: :math:`\varepsilon` (Algorithm 1, the default), :math:`x_0`, or
        :math:`v = \sqrt{\bar\alpha_t}\varepsilon - \sqrt{1-\bar\alpha_t}x_0`.
    weights : tensor (T,), optional
        A weight :math:`\lambda_t` per **0-based** step multiplying each example's mean squared
        error; None (the default) is :math:`L_\text{simple}`'s :math:`\lambda_t = 1`. With
        ``prediction="eps"`` and ``weights = D * vlb_weights(schedule)`` the loss is the
        model-dependent part of the variational bound per example divided by ``T`` (Ho et al. 2020,
        Eq. 12; :func:`vlb_weights`).

    Returns
    -------
    tensor ()
        Scalar loss, differentiable with respect to the model's parameters.

    Raises
    ------
    ValueError
        Bad ``prediction``; a model output of the wrong shape.

    References
    ----------
    Ho et al. (2020), Algorithm 1 and Eq. 14; Salimans & Ho (2022) for the v target.
    """
    x0, _ = _check_batch(schedule, "x0", x0)
    _check_options(prediction)
    T = schedule.num_steps
    if weights is not None:
        if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (T,):
            raise ValueError(f"weights: expected a tensor of shape ({T},), one weight per step, got "
                             f"{tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__}")
        if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
            raise ValueError("weights: expected finite non-negative weights")
    t = randint(T, (x0.shape[0],), generator, x0.device)        # t ~ Uniform({0, ..., T-1})
    eps = randn(x0.shape, generator, x0.device, x0.dtype)      # eps ~ N(0, I)
    xt = _q_sample(schedule, x0, t, eps)
    out = call_checked("model", model, xt, t, call="model(xt, t)")
    if prediction == "eps":
        target = eps
    elif prediction == "x0":
        target = x0
    else:
        target = (_extract(schedule.sqrt_alphas_cumprod, t, x0) * eps
                  - _extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * x0)
    if weights is None:
        return ((target - out) ** 2).mean()                      # mean over dims and batch
    per_example = ((target - out) ** 2).flatten(1).mean(1)
    return (_extract(weights, t, per_example) * per_example).mean()


class VLBTerms(NamedTuple):
    """Terms of the DDPM variational bound, nats per example (see :func:`vlb_terms`)."""

    prior: torch.Tensor
    terms: torch.Tensor
    total: torch.Tensor


def _sum_dims(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).sum(1)


def vlb_term(schedule: NoiseSchedule, model: Model, x0: torch.Tensor, xt: torch.Tensor,
             t: torch.Tensor, prediction: str = "eps", variance: str = "small",
             clip_x0: float | None = None) -> torch.Tensor:
    r"""One term of the bound at the **0-based** steps ``t`` (index ``t`` is the paper's step ``t+1``).

    .. math::
        L_t = \mathrm{KL}\big(q(x_{t-1} \mid x_t, x_0)\,\|\,p_\theta(x_{t-1} \mid x_t)\big)
        \quad (t \ge 1), \qquad
        L_0 = -\log\mathcal N\big(x_0;\ \mu_\theta(x_t, 0),\ \sigma_0^2 I\big) \quad (t = 0),

    summed over data dimensions; :math:`\sigma_0^2` = ``exp(log_variance)`` of
    :func:`p_mean_variance` at ``t = 0`` (= ``posterior_variance[1]`` for both variance choices).
    The decoder is a continuous Gaussian (REFERENCES.md C12), so :math:`L_0` is a density term
    and can be negative.

    Parameters
    ----------
    schedule : NoiseSchedule
    model : callable
    x0, xt : tensors (N, ...) of the same shape
        Data and a draw of :math:`q(x_t \mid x_0)` at the same ``t``.
    t : integer tensor (N,)
        **0-based** steps in ``[0, T-1]``; may differ between examples.
    prediction, variance, clip_x0
        As in :func:`p_mean_variance`.

    Returns
    -------
    tensor (N,)
        Nats per example.

    References
    ----------
    Ho et al. (2020), Eq. 5; Nichol & Dhariwal (2021), ``_vb_terms_bpd`` (in nats here).
    """
    x0, xt, t = _check_pair(schedule, "x0", x0, "xt", xt, t)
    clip_x0 = _check_options(prediction, variance, clip_x0)
    return _vlb_term(schedule, model, x0, xt, t, prediction, variance, clip_x0)


def _vlb_term(schedule, model, x0, xt, t, prediction, variance, clip_x0):
    true_mean, _, true_logvar = _q_posterior(schedule, x0, xt, t)
    out = _p_mean_variance(schedule, model, xt, t, prediction, variance, clip_x0)
    kl = _sum_dims(gaussian_kl(true_mean, true_logvar, out.mean, out.log_variance))
    decoder_nll = -gaussian_log_likelihood(x0, out.mean, out.log_variance)
    return torch.where(t == 0, decoder_nll, kl)


def prior_kl(schedule: NoiseSchedule, x0: torch.Tensor) -> torch.Tensor:
    r"""The prior term :math:`L_T = \mathrm{KL}(q(x_T \mid x_0)\,\|\,\mathcal N(0, I))` of the bound, in nats.

    Per dimension, with :math:`\bar\alpha_T` the schedule's last entry (0-based index ``T-1``):

    .. math::  \tfrac12\big(\bar\alpha_T x_0^2 + (1-\bar\alpha_T) - 1 - \log(1-\bar\alpha_T)\big),

    summed over the data dimensions. It has no parameters: it says how far the forward chain's end
    is from the prior, and bounds the information :math:`I(x_0; x_T)` that the top latent carries.

    Parameters
    ----------
    schedule : NoiseSchedule
    x0 : tensor (N, ...)
        Data.

    Returns
    -------
    tensor (N,)
        Nats per example, in ``x0``'s dtype and on its device.

    Raises
    ------
    TypeError, ValueError
        ``x0`` not a floating tensor with a batch dimension.

    References
    ----------
    Ho et al. (2020), Eq. 5 (the term :math:`L_T`); Nichol & Dhariwal (2021), ``_prior_bpd``.
    """
    x0, _ = _check_batch(schedule, "x0", x0)
    return _prior_kl(schedule, x0)


def _prior_kl(schedule, x0):
    last = torch.full((x0.shape[0],), schedule.num_steps - 1, dtype=torch.long, device=x0.device)
    # L_T = KL(N(sqrt(abar_{T-1}) x0, 1 - abar_{T-1}) || N(0, 1)), summed over dims
    prior_mean = _extract(schedule.sqrt_alphas_cumprod, last, x0) * x0
    prior_logvar = _extract(schedule.log_one_minus_alphas_cumprod, last, x0)
    return _sum_dims(gaussian_kl(prior_mean, prior_logvar.expand(x0.shape), 0.0, 0.0))


def vlb_terms(schedule: NoiseSchedule, model: Model, x0: torch.Tensor, variance: str = "small",
              generator: torch.Generator | None = None, prediction: str = "eps",
              clip_x0: float | None = None, progress: bool = False) -> VLBTerms:
    r"""Every term of the variational bound :math:`-\mathrm{ELBO} = L_T + \sum_{t} L_{t-1}`, in nats.

    .. math::
        -\log p_\theta(x_0) \le \underbrace{\mathrm{KL}(q(x_T \mid x_0)\,\|\,\mathcal N(0, I))}_{L_T}
        + \sum_{t>1} \underbrace{E_q\,\mathrm{KL}(q(x_{t-1}\mid x_t, x_0)\,\|\,p_\theta(x_{t-1}\mid x_t))}_{L_{t-1}}
        \underbrace{- E_q \log p_\theta(x_0 \mid x_1)}_{L_0}

    (paper indexing). With the **0-based** step index ``t`` (index ``t`` is the paper's step
    ``t+1``), column ``t`` of ``terms`` is the paper's :math:`L_t`: ``terms[:, 0]`` is the decoder
    term :math:`L_0` (a continuous Gaussian, see :func:`vlb_term`), ``terms[:, t]`` for ``t >= 1``
    is the KL of the step from the paper's :math:`x_{t+1}` to :math:`x_t`, and ``prior`` uses
    index ``T-1``. Each column uses a
    fresh :math:`x_t \sim q(x_t \mid x_0)` (one Monte Carlo sample per example and step), one
    batched model call per step, under ``torch.no_grad``.

    Parameters
    ----------
    schedule : NoiseSchedule
    model : callable
        ``model(xt, t) -> tensor`` of xt's shape.
    x0 : tensor (N, ...)
        Data.
    variance : {"small", "large"}
        As in :func:`p_mean_variance`.
    generator : torch.Generator, optional
        Drives the noise of every column.
    prediction, clip_x0
        As in :func:`p_mean_variance`.
    progress : bool
        Show a ``tqdm.auto`` progress bar over the ``T`` steps.

    Returns
    -------
    VLBTerms
        ``prior`` (N,): :math:`L_T`; ``terms`` (N, T): column ``t`` as above; ``total`` (N,):
        ``prior + terms.sum(1)`` = :math:`-\mathrm{ELBO}` (an upper bound on
        :math:`-\log p_\theta(x_0)`, in expectation over the noise). Nats per example, summed over
        data dimensions; divide by ``D log 2`` for bits per dimension.

    Raises
    ------
    ValueError
        Bad ``variance``/``prediction``/``clip_x0``; a model output of the wrong shape.

    Notes
    -----
    Averaged over data, ``total`` bounds the cross-entropy, hence the data's entropy
    :math:`H(p)`, for any model. With the Bayes-optimal mean (:func:`optimal_eps_model`) the gap
    that remains comes from the fixed variances (tested in ``tests/test_diffusion.py`` on a 1-D
    mixture):

    - ``"small"`` (:math:`\tilde\beta_t`) is the right reverse variance for a point mass, not for
      data with a smooth density: near the data the true reverse variance is close to
      :math:`\beta_t`, and the KL terms of the first few steps do not shrink as ``T`` grows
      (about 0.7 nats/dim left at ``T = 400``).
    - ``"large"`` (:math:`\beta_t`) is nearly tight for smooth densities, except for the decoder:
      its variance :math:`\tilde\beta` at index 1 is about half the true
      :math:`\mathrm{Var}[x_0 \mid x_1] \approx \beta_0` when ``T = 1000``, costing
      :math:`\tfrac12(r - 1 - \log r) \approx 0.11` nats/dim with :math:`r \approx 1.83`.
    - Which one is tighter depends on where the best fixed variance of each step,
      :func:`optimal_reverse_variance`, lies between them: near :math:`\tilde\beta_t` where
      :math:`x_t` pins :math:`x_0` down (sharp, well separated modes), near :math:`\beta_t` where
      :math:`x_0` given :math:`x_t` is as spread as a Gaussian's.

    References
    ----------
    Ho et al. (2020), Eq. 5; Sohl-Dickstein et al. (2015); Nichol & Dhariwal (2021),
    ``calc_bpd_loop`` and ``_prior_bpd``.
    """
    x0, _ = _check_batch(schedule, "x0", x0)
    clip_x0 = _check_options(prediction, variance, clip_x0)
    N, T = x0.shape[0], schedule.num_steps
    with torch.no_grad():
        prior = _prior_kl(schedule, x0)
        terms = x0.new_empty(N, T)
        for i in progress_bar(reversed(range(T)), progress, "variational bound", T):
            t = torch.full((N,), i, dtype=torch.long, device=x0.device)
            noise = randn(x0.shape, generator, x0.device, x0.dtype)     # fresh noise per t
            xt = _q_sample(schedule, x0, t, noise)
            terms[:, i] = _vlb_term(schedule, model, x0, xt, t, prediction, variance, clip_x0)
        total = prior + terms.sum(1)
    return VLBTerms(prior, terms, total)


class ReverseVariance(NamedTuple):
    """The ELBO-optimal fixed reverse variances per step (see :func:`optimal_reverse_variance`)."""

    variance: torch.Tensor
    standard_error: torch.Tensor


def optimal_reverse_variance(schedule: NoiseSchedule, model: Model, x0: torch.Tensor,
                             generator: torch.Generator | None = None, prediction: str = "eps",
                             clip_x0: float | None = None) -> ReverseVariance:
    r"""The variance :math:`\sigma_t^2` of :math:`p_\theta(x_{t-1} \mid x_t) = \mathcal N(\mu_\theta, \sigma_t^2 I)`
    that makes each term of the bound smallest, for this model's mean.

    For a fixed mean :math:`\mu_\theta(x_t, t) = \tilde\mu_t(x_t, \hat x_0)` the consistency term
    is :math:`E\,\mathrm{KL} = \frac D2\big(\tilde\beta_t/\sigma^2 - 1 - \log(\tilde\beta_t/\sigma^2)\big)
    + E\|\tilde\mu_t - \mu_\theta\|^2/(2\sigma^2)`, and since
    :math:`\tilde\mu_t - \mu_\theta = c_t (x_0 - \hat x_0)` with :math:`c_t` = ``posterior_mean_coef1``
    it is smallest at

    .. math::  \sigma_t^{*2} = \tilde\beta_t + c_t^2\,\frac{E\|x_0 - \hat x_0(x_t, t)\|^2}{D},

    the expected variance of the step per dimension. With the Bayes-optimal model,
    :math:`E\|x_0 - \hat x_0\|^2 = E\,\mathrm{tr}\,\mathrm{Cov}[x_0 \mid x_t]` and
    :math:`\sigma_t^{*2}` is :math:`E\,\mathrm{Var}[x_{t-1} \mid x_t]` (Bao et al. 2022): it equals
    :math:`\tilde\beta_t` when :math:`x_0` is a point mass and :math:`\beta_t` when
    :math:`x_0 \sim \mathcal N(0, I)`, the two choices of Ho et al. (2020), Section 3.2; for data
    with unit variance per coordinate it lies between them. At the **0-based** ``t = 0`` (the
    decoder, :math:`\tilde\beta = 0`, :math:`c = 1`) it is the decoder variance that maximizes
    :math:`E\log\mathcal N(x_0; \hat x_0, \sigma^2 I)`, the mean squared error per dimension.

    Parameters
    ----------
    schedule : NoiseSchedule
    model : callable
        ``model(xt, t) -> tensor`` of xt's shape (see :func:`p_mean_variance`).
    x0 : tensor (N, ...)
        Data; the expectation is a Monte Carlo average over these examples and one fresh
        :math:`x_t \sim q(x_t \mid x_0)` per example and step.
    generator : torch.Generator, optional
        Drives the noise (one draw of ``x0``'s shape per step, steps ``T-1, ..., 0``).
    prediction, clip_x0
        As in :func:`p_mean_variance`.

    Returns
    -------
    ReverseVariance
        ``variance`` (T,): :math:`\sigma_t^{*2}` per 0-based step ``t`` (index ``t`` is the paper's
        step ``t+1``), per dimension, in ``x0``'s dtype; ``standard_error`` (T,): its Monte Carlo
        standard error.

    Raises
    ------
    ValueError
        Bad ``prediction``/``clip_x0``; a model output of the wrong shape; fewer than 2 examples.

    References
    ----------
    Ho et al. (2020), Section 3.2; F. Bao, C. Li, J. Zhu, B. Zhang, "Analytic-DPM: an analytic
    estimate of the optimal reverse variance in diffusion probabilistic models", ICLR 2022,
    Theorem 1; Nichol & Dhariwal (2021), Section 3.1 (learned variances between the two).
    """
    _check_schedule(schedule)
    x0 = _check_data("x0", x0)
    _check_choice("prediction", prediction, _PREDICTIONS)
    clip_x0 = _check_clip(clip_x0)
    N, T = x0.shape[0], schedule.num_steps
    if N < 2:
        raise ValueError(f"x0: expected at least 2 examples for a standard error, got {N}")
    dim = x0[0].numel()
    variance, se = x0.new_empty(T), x0.new_empty(T)
    with torch.no_grad():
        for i in reversed(range(T)):
            t = torch.full((N,), i, dtype=torch.long, device=x0.device)
            noise = randn(x0.shape, generator, x0.device, x0.dtype)
            xt = _q_sample(schedule, x0, t, noise)
            out = _p_mean_variance(schedule, model, xt, t, prediction, "small", clip_x0)
            err = _sum_dims((x0 - out.pred_x0) ** 2) / dim                 # ||x0 - x0_hat||^2 / D
            c2 = schedule.posterior_mean_coef1[i].to(x0.dtype) ** 2
            variance[i] = schedule.posterior_variance[i].to(x0.dtype) + c2 * err.mean()
            se[i] = c2 * err.std() / math.sqrt(N)
    return ReverseVariance(variance, se)


# ================================================================================================
# Bayes-optimal noise prediction for a Gaussian mixture
# ================================================================================================
class OptimalEpsModel:
    r"""Exact :math:`E[\varepsilon \mid x_t]` for data from a diagonal Gaussian mixture
    (see :func:`optimal_eps_model`)."""

    def __init__(self, mixture, schedule: NoiseSchedule):
        for attr in ("means", "stds", "weights"):
            if not isinstance(getattr(mixture, attr, None), torch.Tensor):
                raise TypeError(f"mixture: expected a course_lib.toy.GaussianMixture (tensors "
                                f"means (K, D), stds (K, D), weights (K,)), got "
                                f"{type(mixture).__name__} without a tensor {attr!r}")
        means = mixture.means
        if means.dim() != 2:
            raise ValueError(f"mixture: expected means of shape (K, D), got {tuple(means.shape)}")
        stds = mixture.stds
        if stds.dim() == 1:
            stds = stds[:, None].expand_as(means)
        if tuple(stds.shape) != tuple(means.shape) or tuple(mixture.weights.shape) != (means.shape[0],):
            raise ValueError(f"mixture: expected stds {tuple(means.shape)} and weights "
                             f"({means.shape[0]},), got {tuple(stds.shape)} and "
                             f"{tuple(mixture.weights.shape)}")
        self.mixture = mixture
        self.schedule = _check_schedule(schedule)
        self.means, self.stds, self.weights = means, stds, mixture.weights

    @property
    def device(self) -> torch.device:
        """Device of the mixture's parameters; :func:`sample` samples there by default."""
        return self.means.device

    @property
    def dim(self) -> int:
        """Data dimension D of the mixture."""
        return int(self.means.shape[1])

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r"""Return :math:`E[\varepsilon \mid x_t]`, xt's shape (``(N, D)`` or ``(N, ...)`` with D elements).

        ``t``: integer tensor ``(N,)`` of **0-based** steps (index ``t`` is the paper's ``t+1``).
        """
        xt = _check_data("xt", xt)
        if xt[0].numel() != self.dim:
            raise ValueError(f"xt: expected shape (N, {self.dim}) to match the mixture's "
                             f"dimension, got {tuple(xt.shape)}")
        t = _check_t(t, self.schedule, xt.shape[0], "xt")
        x = xt.reshape(xt.shape[0], self.dim)
        ab = _extract(self.schedule.alphas_cumprod, t, x)                          # (N, 1)
        means, stds, weights = (p.to(device=x.device, dtype=x.dtype)
                                for p in (self.means, self.stds, self.weights))
        # law of x_t: sum_k w_k N(sqrt(abar) mu_k, abar s_k^2 + 1 - abar)
        m = torch.sqrt(ab)[:, None, :] * means[None]                               # (N, K, D)
        v = ab[:, None, :] * stds[None] ** 2 + (1.0 - ab)[:, None, :]              # (N, K, D)
        diff = x[:, None, :] - m
        log_joint = torch.log(weights)[None] + diag_gaussian_log_prob(x[:, None, :], m, var=v)
        resp = torch.softmax(log_joint, dim=1)                                     # (N, K)
        score = -(resp[:, :, None] * diff / v).sum(1)                              # grad log q_t
        eps = -torch.sqrt(1.0 - ab) * score                  # E[eps | x_t] = -sqrt(1-abar) score
        return eps.reshape(xt.shape)

    def __repr__(self) -> str:
        return f"OptimalEpsModel(mixture={self.mixture!r}, schedule={self.schedule!r})"


def optimal_eps_model(mixture, schedule: NoiseSchedule) -> OptimalEpsModel:
    r"""The Bayes-optimal noise predictor :math:`\varepsilon^*(x_t, t) = E[\varepsilon \mid x_t]` for mixture data.

    For :math:`x_0 \sim \sum_k w_k\mathcal N(\mu_k, \mathrm{diag}\,s_k^2)` and
    :math:`x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\varepsilon`, the law of :math:`x_t` is
    the mixture :math:`q_t = \sum_k w_k\mathcal N(\sqrt{\bar\alpha_t}\mu_k,\ \bar\alpha_t s_k^2 + 1-\bar\alpha_t)`
    and by Tweedie's formula

    .. math::  E[\varepsilon \mid x_t] = -\sqrt{1-\bar\alpha_t}\;\nabla_{x_t}\log q_t(x_t).

    It minimizes :math:`L_\text{simple}` exactly, so it is the target every trained network
    approaches; the samplers driven by it sample the mixture up to discretization error.

    Parameters
    ----------
    mixture : course_lib.toy.GaussianMixture
        Anything with tensors ``means (K, D)``, ``stds (K, D)`` (or ``(K,)``), ``weights (K,)``.
    schedule : NoiseSchedule

    Returns
    -------
    OptimalEpsModel
        A callable ``model(xt, t) -> eps`` (``xt`` of shape ``(N, D)``, ``t`` a long tensor ``(N,)``
        of **0-based** steps), computing in ``xt``'s dtype and on its device.

    Raises
    ------
    TypeError, ValueError
        A ``mixture`` without those tensors or with inconsistent shapes.

    References
    ----------
    Efron (2011), Tweedie's formula; Ho et al. (2020), Eq. 12 (eps-parameterization).
    """
    return OptimalEpsModel(mixture, schedule)


# ================================================================================================
# Notebook 04's first section: the scaled chain x_t = a x_{t-1} + b eps, and the exact marginals
# ================================================================================================
def variance_recursion(a: float, b: float, v0: float, num_steps: int):
    r"""Variance of the chain :math:`x_t = a\,x_{t-1} + b\,\varepsilon_t`: :math:`v_t = a^2 v_{t-1} + b^2`.

    Unrolled, :math:`v_t = a^{2t} v_0 + b^2 (1 - a^{2t})/(1 - a^2)`, with fixed point
    :math:`b^2/(1-a^2)` when :math:`|a| < 1`: 1 exactly when :math:`b = \sqrt{1-a^2}` (DDPM's
    :math:`a = \sqrt{\alpha}`, :math:`b = \sqrt{1-\alpha}`: variance preserving). ``a = 1`` is a
    random walk, :math:`v_t = v_0 + t b^2`.

    Parameters
    ----------
    a, b : float
        Mean scaling and noise standard deviation of one step.
    v0 : float
        :math:`\mathrm{Var}[x_0]` (>= 0).
    num_steps : int
        Number of steps (>= 0).

    Returns
    -------
    numpy.ndarray (num_steps + 1,), float64
        :math:`v_0, \dots, v_{\mathrm{num\_steps}}`.

    Raises
    ------
    ValueError
        ``v0 < 0`` or ``num_steps < 0``.

    References
    ----------
    Ho et al. (2020), Eq. 2 (:math:`a = \sqrt{1-\beta_t}`, :math:`b = \sqrt{\beta_t}`); Song et al.
    (2021), Section 3.4 (variance-preserving SDE).
    """
    import numpy as np

    num_steps = check_int("num_steps", num_steps, minimum=0)
    if not float(v0) >= 0:
        raise ValueError(f"v0: expected a variance >= 0, got {v0!r}")
    v = np.empty(num_steps + 1)
    v[0] = v0
    for i in range(num_steps):
        v[i + 1] = a * a * v[i] + b * b
    return v


def scaled_chain(x0: torch.Tensor, a: float, b: float, num_steps: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Simulate :math:`x_t = a\,x_{t-1} + b\,\varepsilon_t`, :math:`\varepsilon_t \sim \mathcal N(0, I)`, from ``x0``.

    The forward chain of DDPM with one constant step (:math:`a = \sqrt{\alpha}`,
    :math:`b = \sqrt{1-\alpha}`) when :math:`a^2 + b^2 = 1`; any other pair shows why the scalars
    must be tied (:func:`variance_recursion` gives the variance of every state).

    Parameters
    ----------
    x0 : tensor (N, ...)
        Starting states (floating point).
    a, b : float
        Mean scaling and noise standard deviation.
    num_steps : int
        Number of steps (>= 0).
    generator : torch.Generator, optional
        Drives every :math:`\varepsilon_t` (drawn on the generator's device, then moved).

    Returns
    -------
    tensor (num_steps + 1, N, ...)
        The path :math:`x_0, \dots, x_{\mathrm{num\_steps}}`; ``path[0]`` is ``x0``.

    Raises
    ------
    TypeError, ValueError
        ``x0`` not a floating-point tensor with a batch dimension; ``num_steps < 0``.

    References
    ----------
    Ho et al. (2020), Eq. 2.
    """
    x = _check_data("x0", x0)
    num_steps = check_int("num_steps", num_steps, minimum=0)
    path = [x]
    for _ in range(num_steps):
        x = a * x + b * randn(x.shape, generator, x.device, x.dtype)   # x_t = a x_{t-1} + b eps
        path.append(x)
    return torch.stack(path)


def noised_mixture(mixture, schedule: NoiseSchedule, t: int):
    r"""The exact marginal :math:`q(x_t)` of data from a Gaussian mixture, itself a Gaussian mixture.

    With :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon` and
    :math:`x_0 \sim \sum_k w_k\mathcal N(\mu_k, \mathrm{diag}\,s_k^2)`:

    .. math::  q(x_t) = \sum_k w_k\, \mathcal N\big(\sqrt{\bar\alpha_t}\,\mu_k,\
               \mathrm{diag}(\bar\alpha_t s_k^2 + 1 - \bar\alpha_t)\big)

    Parameters
    ----------
    mixture : course_lib.toy.GaussianMixture
        The data distribution.
    schedule : NoiseSchedule
    t : int
        **0-based** step in ``[0, T-1]`` (index ``t`` is the paper's step ``t+1``).

    Returns
    -------
    course_lib.toy.GaussianMixture
        ``mixture.scale(sqrt(abar_t)).convolve(sqrt(1 - abar_t))``.

    Raises
    ------
    ValueError
        ``t`` not an int in ``[0, T-1]``.

    References
    ----------
    Ho et al. (2020), Eq. 4, applied to each component.
    """
    _check_schedule(schedule)
    T = schedule.num_steps
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < T:
        raise ValueError(f"t: expected a 0-based step in [0, {T - 1}], got {t!r}")
    ab = float(schedule.alphas_cumprod[t])
    return mixture.scale(math.sqrt(ab)).convolve(math.sqrt(1 - ab))


__all__ += ["variance_recursion", "scaled_chain", "noised_mixture"]


# ================================================================================================
# Notebook 05: the ELBO's own weights on the eps error (L_simple vs the true bound)
# ================================================================================================
def vlb_weights(schedule: NoiseSchedule, variance: str = "small") -> torch.Tensor:
    r"""The variational bound's weight :math:`\lambda_t` on the squared noise error at each step.

    With the eps-parameterization, every term of the bound is, up to a constant that does not
    depend on the model,

    .. math::  L_{t-1} = \lambda_t\, \|\varepsilon - \varepsilon_\theta(x_t, t)\|^2,\qquad
               \lambda_t = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}

    (Ho et al. 2020, Eq. 12), the decoder term :math:`L_0` included (at index 0, where
    :math:`1-\bar\alpha_1 = \beta_1` gives :math:`\beta_1/(2\sigma_1^2\alpha_1)`). :math:`L_\text{simple}`
    replaces every :math:`\lambda_t` by 1; ``loss_simple(..., weights=D * vlb_weights(schedule))``
    is the model-dependent part of the bound per example, averaged over the steps (a constant
    factor ``T``).

    Parameters
    ----------
    schedule : NoiseSchedule
    variance : {"small", "large"}
        The reverse variance :math:`\sigma_t^2` of :func:`p_mean_variance` (``"small"``:
        :math:`\tilde\beta_t`, clipped at index 0 as there; ``"large"``: :math:`\beta_t`).

    Returns
    -------
    tensor (T,)
        :math:`\lambda_t` for the **0-based** steps, in the schedule's dtype (float64 unless on MPS);
        nats per unit squared error summed over the data dimensions.

    Raises
    ------
    ValueError
        Bad ``variance``.

    References
    ----------
    Ho et al. (2020), Eq. 12 and §3.4 (L_simple drops these weights).
    """
    _check_schedule(schedule)
    _check_options(variance=variance)
    var = torch.exp(_reverse_log_variance(schedule, variance))
    return schedule.betas**2 / (2 * var * schedule.alphas * (1 - schedule.alphas_cumprod))


# ================================================================================================
# Notebook 05: InDI, inversion by direct denoising (Delbracio & Milanfar 2023)
# ================================================================================================
ForwardStd = Callable[[torch.Tensor], torch.Tensor]


def _indi_t(name: str, t, like: torch.Tensor) -> torch.Tensor:
    """``t`` as a tensor broadcastable against ``like`` (N, ...): a number, 0-d or (N,), in [0, 1]."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.dim() == 1 and t.shape[0] == like.shape[0]:
        t = t.reshape(-1, *([1] * (like.dim() - 1)))
    elif t.dim() != 0:
        raise ValueError(f"{name}: expected a number or a tensor of shape ({like.shape[0]},), "
                         f"got shape {tuple(t.shape)}")
    if not bool(((t >= 0) & (t <= 1)).all()):
        raise ValueError(f"{name}: expected times in [0, 1], got values in "
                         f"[{float(t.min())}, {float(t.max())}]")
    return t


def _forward_std(forward_std, t: torch.Tensor) -> torch.Tensor:
    if forward_std is None:
        return torch.zeros_like(t)
    return torch.as_tensor(forward_std(t), dtype=t.dtype, device=t.device)


def indi_interpolate(x0: torch.Tensor, y: torch.Tensor, t, forward_std: ForwardStd | None = None,
                     noise: torch.Tensor | None = None) -> torch.Tensor:
    r"""InDI's degradation path :math:`x_t = (1-t)\,x_0 + t\,y + s_t\,\varepsilon`.

    Parameters
    ----------
    x0, y : tensor (N, ...)
        Clean data and its degraded version (for generation, pure noise :math:`y \sim \mathcal N(0, I)`).
    t : float or tensor (N,)
        Time in ``[0, 1]``: ``t = 0`` is the data, ``t = 1`` the degraded ``y``.
    forward_std : callable, optional
        :math:`s_t` = ``forward_std(t)`` (tensor in, tensor out), the std of the extra noise of the
        stochastic version; Delbracio & Milanfar (2023) take :math:`s_t = t\,\sigma_t` in their stochastic version.
        None: no extra noise (``noise`` is then ignored).
    noise : tensor (N, ...), optional
        :math:`\varepsilon`; required when ``forward_std`` is given.

    Returns
    -------
    tensor (N, ...)

    Raises
    ------
    ValueError
        Shapes that differ; ``t`` outside ``[0, 1]`` or of the wrong shape; ``noise`` missing.

    References
    ----------
    Delbracio & Milanfar (2023): the degradation path and its stochastic version.
    """
    x0, y = _check_data("x0", x0), _check_data("y", y)
    if x0.shape != y.shape:
        raise ValueError(f"y: expected the shape of x0 {tuple(x0.shape)}, got {tuple(y.shape)}")
    t = _indi_t("t", t, x0)
    xt = (1 - t) * x0 + t * y
    if forward_std is not None:
        if noise is None or noise.shape != x0.shape:
            raise ValueError(f"noise: expected a tensor of shape {tuple(x0.shape)} with forward_std, "
                             f"got {None if noise is None else tuple(noise.shape)}")
        xt = xt + _forward_std(forward_std, t) * noise
    return xt


def indi_loss(model, x0: torch.Tensor, generator: torch.Generator | None = None,
              forward_std: ForwardStd | None = None) -> torch.Tensor:
    r"""InDI's training loss: one denoiser for all times, :math:`E_{t, x_0, y}\|D_\theta(x_t, t) - x_0\|^2`.

    :math:`t \sim \mathrm{Uniform}[0, 1]`, :math:`y \sim \mathcal N(0, I)` (generation from noise)
    and, with ``forward_std``, :math:`\varepsilon \sim \mathcal N(0, I)`, one of each per example;
    :math:`x_t` from :func:`indi_interpolate`. The minimizer is the MMSE denoiser
    :math:`D^*(x_t, t) = E[x_0 \mid x_t]`. The squared error is averaged over the data dimensions
    and the batch (as :func:`loss_simple`).

    Parameters
    ----------
    model : callable
        ``model(xt, t) -> x0_hat``, ``t`` a float tensor ``(N,)`` in ``[0, 1]``.
    x0 : tensor (N, ...)
    generator : torch.Generator, optional
    forward_std : callable, optional
        As in :func:`indi_interpolate`.

    Returns
    -------
    tensor ()

    Raises
    ------
    ValueError
        A model output of the wrong shape.

    References
    ----------
    Delbracio & Milanfar (2023): the training objective (one denoiser for all t).
    """
    x0 = _check_data("x0", x0)
    n = x0.shape[0]
    t = torch.rand(n, generator=generator, device=draw_device(generator, x0.device),
                   dtype=x0.dtype).to(x0.device)
    y = randn(x0.shape, generator, x0.device, x0.dtype)
    noise = randn(x0.shape, generator, x0.device, x0.dtype) if forward_std is not None else None
    xt = indi_interpolate(x0, y, t, forward_std, noise)
    out = call_checked("model", model, xt, t, call="model(xt, t)")
    if out.shape != x0.shape:
        raise ValueError(f"model: expected an output of shape {tuple(x0.shape)}, got {tuple(out.shape)}")
    return ((out - x0) ** 2).mean()


def indi_update_std(t: float, t_next: float, forward_std: ForwardStd | None = None) -> float:
    r"""The noise std of the stochastic InDI step from ``t`` to ``t_next`` that keeps the marginals.

    The step :math:`x_{t'} = (1-\tfrac{\tau}{t})x_t + \tfrac{\tau}{t}x_0 + c\,\varepsilon'`, with
    :math:`t' = t-\tau`, maps :math:`x_t = (1-t)x_0 + t y + s_t\varepsilon` to
    :math:`(1-t')x_0 + t'y + \sqrt{(t'/t)^2 s_t^2 + c^2}\,\varepsilon''`, so it reproduces the path at
    :math:`t'` exactly when

    .. math::  c^2 = s_{t'}^2 - \Big(\frac{t'}{t}\Big)^2 s_t^2 .

    For :math:`s_t = t\sigma_t` (Delbracio & Milanfar 2023) this is
    :math:`c = t'\sqrt{\sigma_{t'}^2 - \sigma_t^2}`; for :math:`s_t = \sqrt t\,\sigma_t` it is
    :math:`c = \sqrt{t'}\sqrt{\sigma_{t'}^2 - (t'/t)\sigma_t^2}`, not :math:`t'\sqrt{\sigma_{t'}^2-\sigma_t^2}`.

    Parameters
    ----------
    t, t_next : float
        ``0 <= t_next < t <= 1``.
    forward_std : callable, optional
        :math:`s_t`; None gives 0 (the deterministic iteration).

    Returns
    -------
    float
        :math:`c \ge 0`.

    Raises
    ------
    ValueError
        Times out of order or outside ``[0, 1]``; :math:`c^2 < 0` beyond rounding (the path's noise
        shrinks faster than the step can remove it: :math:`s_{t'} < (t'/t)s_t`).

    References
    ----------
    Delbracio & Milanfar (2023), the stochastic version (:math:`s_t = t\sigma_t`).
    """
    t, t_next = float(t), float(t_next)
    if not 0 <= t_next < t <= 1:
        raise ValueError(f"t, t_next: expected 0 <= t_next < t <= 1, got t = {t}, t_next = {t_next}")
    if forward_std is None:
        return 0.0
    s = float(forward_std(torch.tensor(t, dtype=torch.float64)))
    s_next = float(forward_std(torch.tensor(t_next, dtype=torch.float64)))
    c2 = s_next**2 - (t_next / t) ** 2 * s**2
    if c2 < -1e-12 * max(s_next**2, 1e-300):
        raise ValueError(f"forward_std: the step from t = {t} to {t_next} needs s(t_next) >= "
                         f"(t_next / t) s(t), got s(t_next) = {s_next}, s(t) = {s}")
    return math.sqrt(max(c2, 0.0))


def indi_sample(denoiser, x1: torch.Tensor, num_steps: int, forward_std: ForwardStd | None = None,
                update_std: Callable[[float, float], float] | None = None,
                generator: torch.Generator | None = None, trajectory: bool = False):
    r"""InDI's incremental denoising from ``t = 1`` to ``t = 0`` in ``num_steps`` equal steps.

    .. math::  \hat x_{t-\tau} = \Big(1-\frac\tau t\Big)\hat x_t + \frac\tau t\,D(\hat x_t, t)
               + c_{t,\tau}\,\varepsilon

    with :math:`D(x_t, t) \approx E[x_0 \mid x_t]`. Without noise it is Euler's method for the ODE
    :math:`dx_t/dt = (x_t - D(x_t, t))/t`, whose exact solution carries the marginals of the path
    (with :math:`D = E[x_0 \mid x_t]`, :math:`(x_t - D)/t = E[y - x_0 \mid x_t]` is the path's mean
    velocity). The last step (``t = tau``) returns :math:`D(\hat x_\tau, \tau)`.

    Parameters
    ----------
    denoiser : callable
        ``denoiser(x, t) -> x0_hat`` with ``t`` a float tensor ``(N,)`` (all equal) in ``(0, 1]``.
    x1 : tensor (N, ...)
        The start, a draw of :math:`x_1 = y + s_1\varepsilon`.
    num_steps : int
        >= 1.
    forward_std : callable, optional
        :math:`s_t` of the path the denoiser was trained on; the step noise is then
        :func:`indi_update_std` (the consistent one) unless ``update_std`` is given.
    update_std : callable, optional
        ``update_std(t, t_next) -> c``: overrides the step noise (to try inconsistent choices).
    generator : torch.Generator, optional
        Drives the step noise.
    trajectory : bool
        Also return the states ``(num_steps + 1, N, ...)``, ``[0]`` = ``x1``, ``[-1]`` = the output.

    Returns
    -------
    tensor (N, ...), or (tensor, tensor) with ``trajectory``

    Raises
    ------
    ValueError
        ``num_steps < 1``; a denoiser output of the wrong shape; see :func:`indi_update_std`.

    References
    ----------
    Delbracio & Milanfar (2023): the incremental reconstruction (deterministic and stochastic).
    """
    x = _check_data("x1", x1)
    num_steps = check_int("num_steps", num_steps, minimum=1)
    ts = torch.linspace(1, 0, num_steps + 1, dtype=torch.float64).tolist()
    path = [x] if trajectory else None
    for t, t_next in zip(ts[:-1], ts[1:]):
        tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        den = call_checked("denoiser", denoiser, x, tt, call="denoiser(x, t)")
        if den.shape != x.shape:
            raise ValueError(f"denoiser: expected an output of shape {tuple(x.shape)}, got {tuple(den.shape)}")
        r = (t - t_next) / t
        x = (1 - r) * x + r * den
        c = update_std(t, t_next) if update_std is not None else indi_update_std(t, t_next, forward_std)
        if c > 0:
            x = x + c * randn(x.shape, generator, x.device, x.dtype)
        if trajectory:
            path.append(x)
    return (x, torch.stack(path)) if trajectory else x


def indi_mixture_marginal(mixture, t: float, forward_std: ForwardStd | None = None):
    r"""The exact law of InDI's :math:`x_t = (1-t)x_0 + t y + s_t\varepsilon` for mixture data, y ~ N(0, I).

    .. math::  p_t = \sum_k w_k\,\mathcal N\big((1-t)\mu_k,\ \mathrm{diag}((1-t)^2 s_k^2 + t^2 + s_t^2)\big)

    Parameters
    ----------
    mixture : course_lib.toy.GaussianMixture
    t : float
        In ``[0, 1]``.
    forward_std : callable, optional

    Returns
    -------
    course_lib.toy.GaussianMixture
        At ``t = 1``, the single Gaussian :math:`\mathcal N(0, (1 + s_1^2) I)`.

    Raises
    ------
    ValueError
        ``t`` outside ``[0, 1]``.
    """
    t = float(t)
    if not 0 <= t <= 1:
        raise ValueError(f"t: expected a time in [0, 1], got {t}")
    s = float(_forward_std(forward_std, torch.tensor(t, dtype=torch.float64)))
    noise_std = math.sqrt(t * t + s * s)
    if t == 1:
        return type(mixture)(torch.zeros_like(mixture.means[:1]), noise_std)
    out = mixture.scale(1 - t)
    return out.convolve(noise_std) if noise_std > 0 else out


class IndiMixtureDenoiser:
    """The MMSE denoiser E[x_0 | x_t] of InDI's path for mixture data (see :func:`indi_mixture_denoiser`)."""

    def __init__(self, mixture, forward_std: ForwardStd | None = None):
        self.mixture, self.forward_std = mixture, forward_std

    def __call__(self, xt: torch.Tensor, t) -> torch.Tensor:
        xt = self.mixture._check_points("xt", xt)
        t = _indi_t("t", t, xt)
        t = t.expand(xt.shape[0]) if t.dim() == 0 else t[:, 0]
        noise_std = torch.sqrt(t * t + _forward_std(self.forward_std, t) ** 2)
        one_minus = (1 - t).clamp_min(torch.finfo(xt.dtype).tiny)
        den = self.mixture.posterior_mean(xt / one_minus[:, None], noise_std / one_minus)
        prior_mean = self.mixture.weights.to(xt) @ self.mixture.means.to(xt)
        return torch.where((t == 1)[:, None], prior_mean.expand_as(xt), den)

    def __repr__(self) -> str:
        return f"IndiMixtureDenoiser(K={self.mixture.num_components}, D={self.mixture.dim})"


def indi_mixture_denoiser(mixture, forward_std: ForwardStd | None = None) -> IndiMixtureDenoiser:
    r"""The exact InDI denoiser :math:`D^*(x_t, t) = E[x_0 \mid x_t]` for mixture data, :math:`y \sim \mathcal N(0, I)`.

    :math:`x_t/(1-t) = x_0 + \frac{\sqrt{t^2 + s_t^2}}{1-t}\,\varepsilon` is a Gaussian observation of
    :math:`x_0`, so :math:`D^*` is the mixture's ``posterior_mean`` at that noise level; at ``t = 1``
    it is the mean of the data. By Tweedie's formula (Efron 2011), with :math:`v_t = t^2 + s_t^2`,

    .. math::  (1-t)\,E[x_0 \mid x_t] = x_t + v_t\,\nabla\log p_t(x_t),

    which links InDI's denoiser to the score of :func:`indi_mixture_marginal`.

    Parameters
    ----------
    mixture : course_lib.toy.GaussianMixture
    forward_std : callable, optional
        :math:`s_t`, as in :func:`indi_interpolate`.

    Returns
    -------
    IndiMixtureDenoiser
        ``denoiser(xt, t) -> (N, D)``; ``xt`` ``(N, D)``, ``t`` a float or a tensor ``(N,)`` in
        ``[0, 1]``; computes in ``xt``'s dtype.

    References
    ----------
    Delbracio & Milanfar (2023); Efron (2011).
    """
    return IndiMixtureDenoiser(mixture, forward_std)


# ================================================================================================
# Notebook 05: the MMSE denoiser against a posterior sample
# ================================================================================================
def mixture_posterior_sample(mixture, y: torch.Tensor, sigma, generator: torch.Generator | None = None):
    r"""One exact draw of :math:`x \sim p(x \mid y)` for :math:`y = x + \sigma\varepsilon`, mixture prior.

    The posterior is the mixture :math:`\sum_k r_k(y)\,\mathcal N(m_k, \mathrm{diag}\,v_k)` with
    responsibilities :math:`r_k \propto w_k\mathcal N(y; \mu_k, s_k^2 + \sigma^2)`,
    :math:`m_k = (s_k^2 y + \sigma^2\mu_k)/(s_k^2 + \sigma^2)` and
    :math:`v_k = s_k^2\sigma^2/(s_k^2+\sigma^2)`: draw :math:`k \sim r(y)`, then the Gaussian. Its mean
    is ``mixture.posterior_mean(y, sigma)``, the MMSE denoiser.

    Parameters
    ----------
    mixture : course_lib.toy.GaussianMixture
    y : tensor (N, D)
        Noisy observations.
    sigma : float or tensor (N,)
        Noise std (>= 0).
    generator : torch.Generator, optional

    Returns
    -------
    tensor (N, D)

    Raises
    ------
    ValueError, TypeError
        As ``mixture.posterior_mean``.

    Notes
    -----
    Memory: the responsibilities need an ``(N, K, D)`` intermediate; chunk ``y`` for large ``K``.
    """
    resp, _, _ = mixture._posterior_components(y, sigma)               # checks y and sigma
    g_dev = draw_device(generator, y.device)
    k = torch.multinomial(resp.to(g_dev), 1, generator=generator).to(y.device)[:, 0]   # (N,)
    s = mixture._check_sigma(sigma, y).reshape(-1, 1)                   # (N|1, 1)
    means, stds, _ = mixture._params(y)
    var = stds[k] ** 2                                                  # (N, D)
    total = var + s * s
    mean = (var * y + s * s * means[k]) / total
    z = randn(y.shape, generator, y.device, y.dtype)
    return mean + torch.sqrt(var * s * s / total) * z


__all__ += ["vlb_weights", "indi_interpolate", "indi_loss", "indi_update_std", "indi_sample",
            "indi_mixture_marginal", "indi_mixture_denoiser", "IndiMixtureDenoiser",
            "mixture_posterior_sample"]


def reverse_conditional(mixture, schedule: NoiseSchedule, t: int, xt: torch.Tensor):
    r"""The true reverse step :math:`q(x_{t-1} \mid x_t)` of data from a Gaussian mixture, in closed form.

    Unlike the forward posterior :math:`q(x_{t-1} \mid x_t, x_0)`, the reverse conditional without
    :math:`x_0` depends on the data distribution. By Bayes' rule
    :math:`q(x_{t-1} \mid x_t) \propto q(x_{t-1})\,q(x_t \mid x_{t-1})`, where :math:`q(x_{t-1})` is
    the noised mixture :math:`\sum_k w_k \mathcal N(m_k, \mathrm{diag}\,v_k)` (:func:`noised_mixture`;
    at the paper's :math:`t = 1` the data itself) and
    :math:`q(x_t \mid x_{t-1}) = \mathcal N(x_t; \sqrt{\alpha_t}\,x_{t-1}, \beta_t I)`. Each component
    times this Gaussian likelihood is again Gaussian, so the result is a mixture with

    .. math::  \frac{1}{v'_k} = \frac{1}{v_k} + \frac{\alpha_t}{\beta_t},\quad
               m'_k = v'_k\Big(\frac{m_k}{v_k} + \frac{\sqrt{\alpha_t}\,x_t}{\beta_t}\Big),\quad
               w'_k \propto w_k\,\mathcal N\big(x_t;\ \sqrt{\alpha_t}\,m_k,\ \mathrm{diag}(\alpha_t v_k + \beta_t)\big).

    It is multimodal when the step is large (the likelihood is broad, so the modes of
    :math:`q(x_{t-1})` survive) and close to a Gaussian when :math:`\beta_t` is small, which is why
    Gaussian reverse steps :math:`p_\theta(x_{t-1} \mid x_t)` can work (Sohl-Dickstein et al. 2015).

    Parameters
    ----------
    mixture : course_lib.toy.GaussianMixture
        The data distribution :math:`q(x_0)`, dimension ``D``.
    schedule : NoiseSchedule
    t : int
        **0-based** step in ``[0, T-1]``: index ``t`` is the paper's step ``t+1``, and the result is
        the law of the paper's :math:`x_t` (index ``t-1``; the data at ``t = 0``) given the paper's
        :math:`x_{t+1}`.
    xt : tensor (D,) or (1, D)
        The conditioning state (floating point); the result is in its dtype and on its device.

    Returns
    -------
    course_lib.toy.GaussianMixture
        ``K`` components with diagonal covariances (``stds`` ``(K, D)``), weights summing to one.

    Raises
    ------
    TypeError
        ``mixture`` not a GaussianMixture; ``schedule`` not a NoiseSchedule; ``xt`` not a
        floating-point tensor.
    ValueError
        ``t`` not an int in ``[0, T-1]``; ``xt`` not of shape ``(D,)`` or ``(1, D)``.

    References
    ----------
    Sohl-Dickstein et al. (2015), Section 2.2 (the reverse of a diffusion with small steps has the
    same functional form); Ho et al. (2020), Eqs. 2 and 4; Bishop (2006), Eqs. 2.115-2.116 (the
    product of Gaussians).
    """
    from course_lib.toy import GaussianMixture

    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture: expected a course_lib.toy.GaussianMixture, got {type(mixture).__name__}")
    _check_schedule(schedule)
    T = schedule.num_steps
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < T:
        raise ValueError(f"t: expected a 0-based step in [0, {T - 1}] (an int), got {t!r}")
    if not isinstance(xt, torch.Tensor) or not xt.is_floating_point():
        raise TypeError(f"xt: expected a floating-point torch.Tensor of shape ({mixture.dim},) or "
                        f"(1, {mixture.dim}), got {type(xt).__name__}"
                        + (f" of dtype {xt.dtype}" if isinstance(xt, torch.Tensor) else ""))
    if tuple(xt.shape) not in ((mixture.dim,), (1, mixture.dim)):
        raise ValueError(f"xt: expected shape ({mixture.dim},) or (1, {mixture.dim}) (one state of the "
                         f"mixture's dimension), got {tuple(xt.shape)}")
    x = xt.reshape(1, -1)
    prev = mixture if t == 0 else noised_mixture(mixture, schedule, t - 1)     # q(x_{t-1}), paper's index
    prev = prev.to(device=x.device, dtype=x.dtype)
    a = float(schedule.alphas[t])
    b = float(schedule.betas[t])
    m, v = prev.means, prev.stds ** 2                                           # (K, D)
    precision = 1 / v + a / b
    var = 1 / precision
    mean = var * (m / v + math.sqrt(a) * x / b)
    like_var = a * v + b                                                        # law of x_t given component k
    log_w = torch.log(prev.weights) - 0.5 * (((x - math.sqrt(a) * m) ** 2 / like_var)
                                              + torch.log(2 * math.pi * like_var)).sum(1)
    weights = torch.softmax(log_w, dim=0)
    return GaussianMixture(mean, var.sqrt(), weights)


__all__ += ["reverse_conditional"]
