r"""Score-based modelling: Langevin sampling, score matching, Tweedie's formulas and SURE.

Notebook 06 derives each of these and checks it on exact Gaussian mixtures
(:class:`course_lib.toy.GaussianMixture`); ``tests/test_score.py`` checks each against an
independent reference (closed forms, Monte Carlo with standard errors).

Notation (after Song & Ermon 2019): data :math:`x \sim p`, score :math:`s(x) \approx \nabla_x \log p(x)`, noisy
observation :math:`y = \tilde x = x + \sigma\varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I)`,
whose law is :math:`p_\sigma = p * \mathcal N(0, \sigma^2 I)`.

Conventions
-----------
- A ``score_fn`` maps points ``(N, D)`` to scores ``(N, D)``; a noise-conditional one
  (:func:`annealed_langevin_dynamics`, :func:`annealed_denoising_score_matching_loss`) is called
  ``score_fn(x, sigma)``. An output of another shape raises ``ValueError`` naming ``score_fn``.
- Per-example quantities are ``(N,)``; losses are scalars (mean over the batch) unless
  ``reduction="none"``. Sums run over data dimensions.
- Functions that differentiate ``score_fn`` / ``denoiser`` (score matching, :func:`divergence`,
  :func:`sure`) use autograd with ``create_graph`` when gradients are enabled by the caller, so the
  result can be back-propagated into a network's parameters (training by score matching or SURE).
  Rows must not interact (no batch norm): the Jacobian of a row's output is taken w.r.t. that row.
- Random draws use ``generator`` (drawn on its device, then moved to the data's device).

Langevin step size (REFERENCES.md C13, A5)
------------------------------------------
Everywhere here the update is :math:`x \leftarrow x + \eta\, s(x) + \sqrt{2\eta}\, z`, as in the
NCSN/NCSNv2/score_sde code (``step_lr``). Song & Ermon (2019), Algorithm 1, write
:math:`x \leftarrow x + \tfrac{\alpha}{2} s(x) + \sqrt{\alpha}\, z`, i.e. :math:`\alpha = 2\eta`;
NCSN's toy runner uses the same :math:`\tfrac{\mathrm{lr}}{2}, \sqrt{\mathrm{lr}}` form with
``lr = 0.1`` (so :math:`\eta = 0.05`). In both forms the noise variance is twice the drift
coefficient, which makes :math:`p` the stationary law as :math:`\eta \to 0`.

References
----------
- A. Hyvärinen, "Estimation of non-normalized statistical models by score matching", JMLR 2005.
- P. Vincent, "A connection between score matching and denoising autoencoders", Neural Comput. 2011.
- Y. Song, S. Garg, J. Shi, S. Ermon, "Sliced score matching", UAI 2019.
- Y. Song, S. Ermon, "Generative modeling by estimating gradients of the data distribution",
  NeurIPS 2019 (NCSN, Algorithm 1).
- B. Efron, "Tweedie's formula and selection bias", JASA 2011; C. Meng, Y. Song, W. Li, S. Ermon,
  "Estimating high order gradients of the data distribution by denoising", NeurIPS 2021.
- C. Stein, "Estimation of the mean of a multivariate normal distribution", Ann. Stat. 1981 (SURE);
  M. Hutchinson, "A stochastic estimator of the trace...", 1990.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from course_lib._checks import call_checked, check_int, check_positive, check_tensor
from course_lib._primitives import randint, randn

__all__ = [
    "langevin_dynamics", "annealed_langevin_dynamics", "geometric_sigmas",
    "score_matching_loss", "sliced_score_matching_loss", "denoising_score_matching_loss",
    "annealed_denoising_score_matching_loss", "explicit_score_matching_loss",
    "tweedie_denoise", "tweedie_covariance", "tweedie_cumulants", "divergence", "sure",
    "sliced_score_matching_variance",
    "NoiseConditionalScoreNet", "score_error",
]

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
_REDUCTIONS = ("mean", "none")
_PROBES = ("rademacher", "gaussian")


# ------------------------------------------------------------------------------------------------
# validation helpers
# ------------------------------------------------------------------------------------------------
def _check_points(name: str, x) -> torch.Tensor:
    check_tensor(name, x, ndim=2, floating=True)
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name}: expected shape (N, D) with N >= 1 and D >= 1, got {tuple(x.shape)}")
    return x


def _check_callable(name: str, fn) -> None:
    if not callable(fn):
        raise TypeError(f"{name}: expected a callable, got {type(fn).__name__}")


def _check_reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _reduce(per_example: torch.Tensor, reduction: str) -> torch.Tensor:
    return per_example.mean() if reduction == "mean" else per_example


def _sigma_column(sigma, x: torch.Tensor, name: str = "sigma") -> torch.Tensor:
    """``sigma`` (> 0: a number, 0-d tensor or (N,)) as a tensor of shape (N|1, 1) like ``x``."""
    if isinstance(sigma, torch.Tensor):
        if sigma.dim() == 0:
            s = sigma.reshape(1, 1)
        elif sigma.dim() == 1 and sigma.shape[0] == x.shape[0]:
            s = sigma[:, None]
        else:
            raise ValueError(f"{name}: expected a number, a 0-d tensor or shape ({x.shape[0]},), "
                             f"got shape {tuple(sigma.shape)}")
        check_positive(name, s)
        if not bool(torch.isfinite(s).all()):
            raise ValueError(f"{name}: expected finite values, got {s.flatten().tolist()[:4]}")
        return s.to(device=x.device, dtype=x.dtype)
    check_positive(name, sigma)
    if not math.isfinite(float(sigma)):
        raise ValueError(f"{name}: expected a finite number, got {sigma!r}")
    return torch.full((1, 1), float(sigma), device=x.device, dtype=x.dtype)


def _check_sigmas(sigmas) -> torch.Tensor:
    """Strictly decreasing positive noise levels as a float64 CPU tensor (L,)."""
    s = torch.as_tensor(sigmas, dtype=torch.float64).detach().cpu() \
        if not isinstance(sigmas, torch.Tensor) else sigmas.detach().to("cpu", torch.float64)
    if s.dim() != 1 or s.numel() < 1:
        raise ValueError(f"sigmas: expected a 1-D sequence of at least one noise level, got shape "
                         f"{tuple(s.shape)}")
    if not bool((s > 0).all()) or not bool(torch.isfinite(s).all()):
        raise ValueError(f"sigmas: expected finite values > 0, got {s.tolist()}")
    if s.numel() > 1 and not bool((s[1:] < s[:-1]).all()):
        raise ValueError(f"sigmas: expected strictly decreasing noise levels (sigma_1 > ... > "
                         f"sigma_L), got {s.tolist()}")
    return s


def _probes(shape, kind: str, generator, like: torch.Tensor) -> torch.Tensor:
    """Probe vectors with E[v v^T] = I: Rademacher (+-1) or standard Gaussian."""
    if kind == "gaussian":
        return randn(shape, generator, like.device, like.dtype)
    signs = randint(2, shape, generator, like.device)
    return (2 * signs - 1).to(dtype=like.dtype)


def _check_probe_kind(name: str, kind: str) -> str:
    if kind not in _PROBES:
        raise ValueError(f"{name}: expected one of {_PROBES}, got {kind!r}")
    return kind


# ------------------------------------------------------------------------------------------------
# Langevin dynamics
# ------------------------------------------------------------------------------------------------
def langevin_dynamics(score_fn: ScoreFn, x: torch.Tensor, step_size: float, num_steps: int,
                      generator: torch.Generator | None = None, trajectory: bool = False):
    r"""Unadjusted Langevin dynamics driven by a score: :math:`x \leftarrow x + \eta s(x) + \sqrt{2\eta} z`.

    The discretization of :math:`dx = \nabla\log p(x)\,dt + \sqrt 2\, dW` (Roberts & Tweedie 1996), whose
    stationary law is :math:`p`; the discrete chain samples :math:`p` up to an :math:`O(\eta)` bias.
    Only the score is needed, never the partition function. See the module docstring for how
    :math:`\eta` relates to the paper's :math:`\alpha/2` form (REFERENCES.md C13).

    Parameters
    ----------
    score_fn : callable
        ``score_fn(x) -> (N, D)``, e.g. ``GaussianMixture.score``.
    x : tensor (N, D)
        Initial points (not modified).
    step_size : float
        :math:`\eta > 0`.
    num_steps : int
        Number of updates (>= 0).
    generator : torch.Generator, optional
        Drives the noise :math:`z`.
    trajectory : bool
        Also return every state.

    Returns
    -------
    x : tensor (N, D)
        The final states, detached.
    path : tensor (num_steps + 1, N, D)
        Only when ``trajectory=True``: the initial points first.

    Raises
    ------
    ValueError
        ``step_size <= 0``, ``num_steps < 0``, ``x`` not 2-D, or ``score_fn`` returning another
        shape.

    References
    ----------
    Song & Ermon (2019), Sec. 2.2; NCSN code ``anneal_Langevin_dynamics`` (REFERENCES.md A5).
    """
    _check_callable("score_fn", score_fn)
    x = _check_points("x", x)
    check_positive("step_size", step_size)
    num_steps = check_int("num_steps", num_steps, minimum=0)
    eta = float(step_size)
    noise_scale = math.sqrt(2.0 * eta)
    x = x.detach().clone()
    path = [x] if trajectory else None
    for _ in range(num_steps):
        s = call_checked("score_fn", score_fn, x).detach()
        x = x + eta * s + noise_scale * randn(x.shape, generator, x.device, x.dtype)   # x + eta s + sqrt(2 eta) z
        if trajectory:
            path.append(x)
    return (x, torch.stack(path)) if trajectory else x


def geometric_sigmas(sigma_max: float, sigma_min: float, num_levels: int,
                     dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    r"""Noise levels :math:`\sigma_1 > \dots > \sigma_L` in geometric progression (NCSN).

    :math:`\sigma_i = \exp(\mathrm{linspace}(\log\sigma_{\max}, \log\sigma_{\min}, L))_i`, as
    ``np.exp(np.linspace(np.log(sigma_begin), np.log(sigma_end), L))`` in the NCSN code.

    Parameters
    ----------
    sigma_max, sigma_min : float
        ``sigma_max > sigma_min > 0`` (equal only when ``num_levels == 1``).
    num_levels : int
        L >= 1.
    dtype, device : optional

    Returns
    -------
    tensor (L,)
        Strictly decreasing.
    """
    check_positive("sigma_max", sigma_max)
    check_positive("sigma_min", sigma_min)
    num_levels = check_int("num_levels", num_levels, minimum=1)
    if num_levels > 1 and not float(sigma_max) > float(sigma_min):
        raise ValueError(f"sigma_max, sigma_min: expected sigma_max > sigma_min, got {sigma_max!r} "
                         f"and {sigma_min!r}")
    s = torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), num_levels,
                                 dtype=torch.float64))
    return s.to(dtype=dtype, device=device)


def annealed_langevin_dynamics(score_fn: Callable[[torch.Tensor, float], torch.Tensor],
                               x: torch.Tensor, sigmas, step_size: float, steps_per_level: int,
                               generator: torch.Generator | None = None, final_denoise: bool = False,
                               trajectory: bool = False):
    r"""Annealed Langevin dynamics (NCSN, Song & Ermon 2019, Algorithm 1).

    For each noise level :math:`\sigma_1 > \dots > \sigma_L`, run ``steps_per_level`` Langevin
    steps with the score of the :math:`\sigma_i`-noised data and step

    .. math::  \eta_i = \eta\, \sigma_i^2 / \sigma_L^2, \qquad
               x \leftarrow x + \eta_i\, s(x, \sigma_i) + \sqrt{2\eta_i}\, z .

    Large :math:`\sigma` blur the modes together, so the chain mixes between them and the mass
    lands in proportion to the weights; the later levels sharpen the samples.

    **Step-size convention** (REFERENCES.md C13, A5): ``step_size`` :math:`= \eta` is the NCSN
    code's ``step_lr`` (``x + step_lr * s + sqrt(2 step_lr) z``, e.g. 2e-5 for CIFAR-10). The
    paper's Algorithm 1 writes :math:`\alpha_i = \epsilon\sigma_i^2/\sigma_L^2` and
    :math:`x + \tfrac{\alpha_i}{2}s + \sqrt{\alpha_i}z`, so paper-:math:`\epsilon = 2\eta`. NCSN's
    2-D toy (``lr = 0.1`` in the ``lr/2, sqrt(lr)`` form) is ``step_size = 0.05`` here.

    Parameters
    ----------
    score_fn : callable
        ``score_fn(x, sigma) -> (N, D)``, ``sigma`` a Python float: the score of the data
        convolved with :math:`\mathcal N(0, \sigma^2 I)`.
    x : tensor (N, D)
        Initial points (NCSN's toy: uniform on :math:`[-8, 8]^2`).
    sigmas : sequence of float or tensor (L,)
        Strictly decreasing, positive.
    step_size : float
        :math:`\eta > 0`, the step at the last (smallest) level.
    steps_per_level : int
        >= 1.
    generator : torch.Generator, optional
    final_denoise : bool
        NCSNv2's last step: :math:`x \leftarrow x + \sigma_L^2 s(x, \sigma_L)`, Tweedie's
        denoiser, removing the remaining :math:`\sigma_L` noise (Song & Ermon 2020).
    trajectory : bool
        Also return the state after each level, ``(L + 1, N, D)`` (initial points first).

    Returns
    -------
    x : tensor (N, D)
    path : tensor (L + 1, N, D), only when ``trajectory=True``

    Raises
    ------
    ValueError
        ``sigmas`` empty, not positive or not strictly decreasing; ``step_size <= 0``;
        ``steps_per_level < 1``; ``score_fn`` returning another shape.

    References
    ----------
    Song & Ermon, NeurIPS 2019, Algorithm 1; ermongroup/ncsn ``anneal_Langevin_dynamics``;
    Song & Ermon, NeurIPS 2020 (NCSNv2, final denoising step).
    """
    _check_callable("score_fn", score_fn)
    x = _check_points("x", x)
    s = _check_sigmas(sigmas)
    check_positive("step_size", step_size)
    steps_per_level = check_int("steps_per_level", steps_per_level, minimum=1)
    sigma_last = float(s[-1])
    x = x.detach().clone()
    path = [x] if trajectory else None
    for sigma in s.tolist():
        eta_i = float(step_size) * sigma ** 2 / sigma_last ** 2          # eta_i = eta sigma_i^2 / sigma_L^2
        noise_scale = math.sqrt(2.0 * eta_i)
        for _ in range(steps_per_level):
            score = call_checked("score_fn", score_fn, x, sigma).detach()
            x = x + eta_i * score + noise_scale * randn(x.shape, generator, x.device, x.dtype)
        if trajectory:
            path.append(x)
    if final_denoise:
        x = x + sigma_last ** 2 * call_checked("score_fn", score_fn, x, sigma_last).detach()
    return (x, torch.stack(path)) if trajectory else x


# ------------------------------------------------------------------------------------------------
# divergence (exact / Hutchinson)
# ------------------------------------------------------------------------------------------------
def _exact_trace(out: torch.Tensor, x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    r"""Row-wise :math:`\mathrm{tr}\,\partial \mathrm{out}_n / \partial x_n` by D backward passes."""
    d = x.shape[1]
    tr = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for i in range(d):
        (g,) = torch.autograd.grad(out[:, i].sum(), x, create_graph=create_graph, retain_graph=True)
        tr = tr + g[:, i]                                     # d out_i / d x_i
    return tr


def divergence(f: ScoreFn, y: torch.Tensor, num_probes: int | None = None,
               generator: torch.Generator | None = None, probe: str = "rademacher") -> torch.Tensor:
    r"""Divergence :math:`\nabla\cdot f(y) = \mathrm{tr}\, J_f(y)`, exact or by Hutchinson's estimator.

    Exact (``num_probes=None``): D backward passes, one per diagonal entry of the Jacobian.
    Hutchinson: :math:`\frac1M\sum_{m=1}^M v_m^\top J_f(y)\, v_m` with i.i.d. probes,
    :math:`E[vv^\top] = I`, so each term is unbiased; one vector-Jacobian product per probe
    (cost independent of D). Rademacher probes have the smaller variance,
    :math:`2\sum_{i\ne j} J_{ij}^2` (symmetrized), vs :math:`2\|J\|_F^2` for Gaussian ones.

    Parameters
    ----------
    f : callable
        ``f(y) -> (N, D)``, row ``n`` depending only on ``y[n]``.
    y : tensor (N, D)
    num_probes : int, optional
        None for the exact trace; else M >= 1.
    generator : torch.Generator, optional
        Drives the probes.
    probe : {"rademacher", "gaussian"}

    Returns
    -------
    tensor (N,)
        Differentiable w.r.t. ``f``'s parameters when gradients are enabled.

    Raises
    ------
    ValueError
        ``num_probes < 1``; bad ``probe``; ``f`` returning another shape.

    References
    ----------
    Hutchinson (1990); Ramani, Blu, Unser (2008), Monte-Carlo SURE (REFERENCES.md A8).
    """
    _check_callable("f", f)
    y = _check_points("y", y)
    _check_probe_kind("probe", probe)
    if num_probes is not None:
        num_probes = check_int("num_probes", num_probes, minimum=1)
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        yy = y.detach().requires_grad_(True)
        out = call_checked("f", f, yy)
        if num_probes is None:
            return _exact_trace(out, yy, create_graph)
        total = torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)
        for _ in range(num_probes):
            v = _probes(y.shape, probe, generator, y)
            (vjp,) = torch.autograd.grad(out, yy, grad_outputs=v, create_graph=create_graph,
                                         retain_graph=True)       # v^T J
            total = total + (vjp * v).sum(1)                       # v^T J v
        return total / num_probes


# ------------------------------------------------------------------------------------------------
# score matching losses
# ------------------------------------------------------------------------------------------------
def explicit_score_matching_loss(score_fn: ScoreFn, target_score_fn: ScoreFn, x: torch.Tensor,
                                 reduction: str = "mean") -> torch.Tensor:
    r"""Explicit (Fisher-divergence) score matching, :math:`\tfrac12 E\|s(x) - \nabla\log p(x)\|^2`.

    Needs the true score, so it is only available on toys; the implicit, sliced and denoising
    losses below equal it up to a constant that does not depend on :math:`s`.

    Parameters
    ----------
    score_fn, target_score_fn : callable
        ``(N, D) -> (N, D)``: the model and the true score.
    x : tensor (N, D)
        Samples of :math:`p`.
    reduction : {"mean", "none"}

    Returns
    -------
    tensor () or (N,)
    """
    _check_callable("score_fn", score_fn)
    _check_callable("target_score_fn", target_score_fn)
    x = _check_points("x", x)
    _check_reduction(reduction)
    diff = call_checked("score_fn", score_fn, x) - call_checked("target_score_fn", target_score_fn, x)
    return _reduce(0.5 * (diff ** 2).sum(1), reduction)       # 1/2 ||s - grad log p||^2


def score_matching_loss(score_fn: ScoreFn, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""Hyvärinen's implicit score matching loss, with the exact Jacobian trace.

    .. math::  J(s) = E_{x\sim p}\Big[\tfrac12\|s(x)\|^2 + \mathrm{tr}\,\nabla_x s(x)\Big]
               = \tfrac12 E\|s(x) - \nabla\log p(x)\|^2 - \tfrac12 E\|\nabla \log p(x)\|^2,

    the second form by integration by parts (boundary terms vanish when :math:`p\,s \to 0` at
    infinity). The trace costs D backward passes (Song et al. 2019,
    "Sliced Score Matching": :math:`O(D)` times a gradient).

    Parameters
    ----------
    score_fn : callable
        ``score_fn(x) -> (N, D)``, rows independent.
    x : tensor (N, D)
        Samples of :math:`p`.
    reduction : {"mean", "none"}
        Scalar mean over the batch, or the ``(N,)`` per-example values.

    Returns
    -------
    tensor () or (N,)
        Differentiable w.r.t. ``score_fn``'s parameters when gradients are enabled.

    References
    ----------
    Hyvärinen (2005), Theorem 1 and Eq. 4; ermongroup/sliced_score_matching
    ``exact_score_matching`` (REFERENCES.md A5).
    """
    _check_callable("score_fn", score_fn)
    x = _check_points("x", x)
    _check_reduction(reduction)
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        s = call_checked("score_fn", score_fn, xx)
        per = 0.5 * (s ** 2).sum(1) + _exact_trace(s, xx, create_graph)   # 1/2||s||^2 + tr(grad s)
    return _reduce(per if create_graph else per.detach(), reduction)


def sliced_score_matching_loss(score_fn: ScoreFn, x: torch.Tensor, num_projections: int = 1,
                               generator: torch.Generator | None = None,
                               probe: str = "gaussian", variance_reduction: bool = False,
                               reduction: str = "mean") -> torch.Tensor:
    r"""Sliced score matching (Song et al. 2019) with unnormalized projections, :math:`E[vv^\top] = I`.

    .. math::  J_{\mathrm{SSM}}(s) = E_{x}E_{v}\Big[v^\top \nabla_x s(x)\, v + \tfrac12 (v^\top s(x))^2\Big],

    and with ``variance_reduction`` the second term is replaced by its expectation
    :math:`\tfrac12\|s(x)\|^2` (SSM-VR). Since :math:`E[v^\top A v] = \mathrm{tr} A` and
    :math:`E[(v^\top s)^2] = \|s\|^2`, both equal Hyvärinen's :func:`score_matching_loss` in
    expectation over :math:`v`. :math:`v^\top\nabla s\, v` needs one Jacobian-vector product per
    projection (here a vector-Jacobian product), so the cost does not grow with D.

    Unlike ermongroup's ``sliced_score_estimation``, the probes are **not** normalized to the unit
    sphere (that version equals Hyvärinen's loss divided by D, REFERENCES.md C14).

    Parameters
    ----------
    score_fn : callable
        ``score_fn(x) -> (N, D)``, rows independent.
    x : tensor (N, D)
    num_projections : int
        Probes per example (>= 1); their terms are averaged.
    generator : torch.Generator, optional
    probe : {"gaussian", "rademacher"}
    variance_reduction : bool
    reduction : {"mean", "none"}

    Returns
    -------
    tensor () or (N,)

    Raises
    ------
    ValueError
        ``num_projections < 1``, bad ``probe`` or ``reduction``, wrong output shape.

    References
    ----------
    Song, Garg, Shi, Ermon, "Sliced score matching", UAI 2019, Eq. 7 (and SSM-VR, Eq. 8).
    """
    _check_callable("score_fn", score_fn)
    x = _check_points("x", x)
    num_projections = check_int("num_projections", num_projections, minimum=1)
    _check_probe_kind("probe", probe)
    _check_reduction(reduction)
    create_graph = torch.is_grad_enabled()
    n = x.shape[0]
    with torch.enable_grad():
        xx = x.detach().repeat(num_projections, 1).requires_grad_(True)       # (M N, D)
        s = call_checked("score_fn", score_fn, xx)
        v = _probes(xx.shape, probe, generator, x)
        (vjp,) = torch.autograd.grad((s * v).sum(), xx, create_graph=create_graph)  # v^T grad s
        first = (vjp * v).sum(1)                                                 # v^T grad s v
        second = 0.5 * (s ** 2).sum(1) if variance_reduction else 0.5 * (s * v).sum(1) ** 2
        per = (first + second).reshape(num_projections, n).mean(0)
    return _reduce(per if create_graph else per.detach(), reduction)


def _jacobian(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""Row-wise Jacobians :math:`J_n = \partial \mathrm{out}_n / \partial x_n`, (N, D, D), by D backward passes."""
    rows = [torch.autograd.grad(out[:, i].sum(), x, retain_graph=True)[0] for i in range(x.shape[1])]
    return torch.stack(rows, 1)                                   # J[n, i, j] = d out_i / d x_j


def sliced_score_matching_variance(score_fn: ScoreFn, x: torch.Tensor, num_projections: int = 1,
                                   probe: str = "gaussian",
                                   variance_reduction: bool = False) -> torch.Tensor:
    r"""Exact variance, over the probes, of the per-example sliced score matching estimate.

    For one example the sliced term is a quadratic form in the probe,
    :math:`q(v) = v^\top J v + \tfrac12 (v^\top s)^2 = v^\top B v` with
    :math:`B = \tfrac12 (J + J^\top) + \tfrac12 s s^\top` (:math:`J = \nabla_x s(x)`,
    :math:`s = s(x)`; with ``variance_reduction`` the second term is the constant
    :math:`\tfrac12\|s\|^2` and :math:`B = \tfrac12(J + J^\top)`). For a standard Gaussian
    probe :math:`\mathrm{Var}[v^\top B v] = 2\,\mathrm{tr}(B^2)`; for a Rademacher probe
    (:math:`v_i^2 = 1`) the diagonal does not vary and :math:`\mathrm{Var} = 2\sum_{i\ne j} B_{ij}^2`.
    The estimate of :func:`sliced_score_matching_loss` averages ``num_projections`` = M
    independent terms, so its variance is that divided by M, and its mean is Hyvärinen's
    :func:`score_matching_loss` for every M.

    Parameters
    ----------
    score_fn : callable
        ``score_fn(x) -> (N, D)``, rows independent.
    x : tensor (N, D)
    num_projections : int
        M >= 1.
    probe : {"gaussian", "rademacher"}
    variance_reduction : bool
        As in :func:`sliced_score_matching_loss` (SSM-VR).

    Returns
    -------
    tensor (N,)
        Per-example variance of ``sliced_score_matching_loss(score_fn, x, M, reduction="none")``
        over the probe draws, the network fixed; detached. Costs D backward passes (the Jacobian).

    Raises
    ------
    ValueError
        ``num_projections < 1``, bad ``probe``, wrong output shape.

    References
    ----------
    Song, Garg, Shi, Ermon, "Sliced score matching", UAI 2019, Eqs. 7-8; the variances of
    quadratic forms in Gaussian and Rademacher vectors: Hutchinson (1990); Avron & Toledo,
    "Randomized algorithms for estimating the trace of an implicit symmetric positive
    semi-definite matrix", J. ACM 2011.
    """
    _check_callable("score_fn", score_fn)
    x = _check_points("x", x)
    num_projections = check_int("num_projections", num_projections, minimum=1)
    _check_probe_kind("probe", probe)
    with torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        s = call_checked("score_fn", score_fn, xx)
        jac = _jacobian(s, xx)
    s = s.detach()
    b = 0.5 * (jac + jac.transpose(1, 2))                         # symmetric part of J
    if not variance_reduction:
        b = b + 0.5 * s[:, :, None] * s[:, None, :]               # + 1/2 s s^T
    var = 2 * (b ** 2).sum((1, 2))                                # 2 tr(B^2) = 2 ||B||_F^2
    if probe == "rademacher":
        var = var - 2 * (b.diagonal(dim1=1, dim2=2) ** 2).sum(1)  # v_i^2 = 1: no diagonal term
    return var / num_projections


def denoising_score_matching_loss(score_fn: ScoreFn, x: torch.Tensor, sigma,
                                  generator: torch.Generator | None = None,
                                  reduction: str = "mean") -> torch.Tensor:
    r"""Denoising score matching (Vincent 2011) at one noise level.

    .. math::  J_{\mathrm{DSM}}(s) = E_{x, \varepsilon}\ \tfrac12\Big\|s(\tilde x)
               + \frac{\tilde x - x}{\sigma^2}\Big\|^2,\qquad \tilde x = x + \sigma\varepsilon,

    summed over dimensions. :math:`-(\tilde x - x)/\sigma^2 = \nabla_{\tilde x}\log q(\tilde x\mid x)`,
    and :math:`J_{\mathrm{DSM}}` equals the explicit loss on the noised density
    :math:`\tfrac12 E\|s(\tilde x) - \nabla\log p_\sigma(\tilde x)\|^2` plus a constant independent
    of :math:`s`; its minimizer is :math:`\nabla\log p_\sigma` (= :math:`(E[x\mid\tilde x]-\tilde x)/\sigma^2`).

    Parameters
    ----------
    score_fn : callable
        ``score_fn(x_tilde) -> (N, D)``.
    x : tensor (N, D)
        Clean samples.
    sigma : float, 0-d tensor or tensor (N,)
        Noise standard deviation(s), > 0.
    generator : torch.Generator, optional
        Drives :math:`\varepsilon`.
    reduction : {"mean", "none"}

    Returns
    -------
    tensor () or (N,)

    Raises
    ------
    ValueError
        ``sigma <= 0``; wrong output shape.

    References
    ----------
    Vincent (2011), Eq. 11; ermongroup/ncsn ``dsm_score_estimation`` (REFERENCES.md A5, C15).
    """
    _check_callable("score_fn", score_fn)
    x = _check_points("x", x)
    _check_reduction(reduction)
    s_col = _sigma_column(sigma, x)
    eps = randn(x.shape, generator, x.device, x.dtype)
    x_tilde = x + s_col * eps                                    # x~ = x + sigma eps
    target = -(x_tilde - x) / s_col ** 2                         # grad log q(x~|x) = -eps / sigma
    out = call_checked("score_fn", score_fn, x_tilde)
    return _reduce(0.5 * ((out - target) ** 2).sum(1), reduction)


def annealed_denoising_score_matching_loss(score_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                                           x: torch.Tensor, sigmas,
                                           generator: torch.Generator | None = None,
                                           reduction: str = "mean") -> torch.Tensor:
    r"""NCSN's training loss: DSM at a random level per example, weighted by :math:`\sigma^2`.

    .. math::  \mathcal L = E_{i\sim U\{1..L\}}\ \sigma_i^2\ E\,\tfrac12
               \Big\|s(\tilde x, \sigma_i) + \frac{\tilde x - x}{\sigma_i^2}\Big\|^2
               = E\,\tfrac12\big\|\sigma_i s(\tilde x,\sigma_i) + \varepsilon\big\|^2,

    the weight :math:`\lambda(\sigma) = \sigma^2` making every level's term :math:`O(1)`
    (``anneal_power = 2``).

    Parameters
    ----------
    score_fn : callable
        ``score_fn(x_tilde, sigma) -> (N, D)`` with ``sigma`` a tensor ``(N,)`` of levels.
    x : tensor (N, D)
    sigmas : sequence or tensor (L,)
        Strictly decreasing, positive.
    generator : torch.Generator, optional
        Drives the levels and the noise.
    reduction : {"mean", "none"}

    Returns
    -------
    tensor () or (N,)

    References
    ----------
    Song & Ermon (2019), Eqs. 5-6; ermongroup/ncsn ``anneal_dsm_score_estimation``.
    """
    _check_callable("score_fn", score_fn)
    x = _check_points("x", x)
    _check_reduction(reduction)
    levels = _check_sigmas(sigmas).to(device=x.device, dtype=x.dtype)
    idx = randint(levels.numel(), (x.shape[0],), generator, x.device)
    sigma = levels[idx]                                                      # (N,)
    eps = randn(x.shape, generator, x.device, x.dtype)
    x_tilde = x + sigma[:, None] * eps
    out = call_checked("score_fn", score_fn, x_tilde, sigma)
    per = 0.5 * ((sigma[:, None] * out + eps) ** 2).sum(1)   # sigma^2 * 1/2||s + eps/sigma||^2
    return _reduce(per, reduction)


# ------------------------------------------------------------------------------------------------
# Tweedie and SURE
# ------------------------------------------------------------------------------------------------
def tweedie_denoise(y: torch.Tensor, score: torch.Tensor, sigma) -> torch.Tensor:
    r"""First-order Tweedie: :math:`E[x \mid y] = y + \sigma^2 \nabla\log p_\sigma(y)`.

    Parameters
    ----------
    y : tensor (N, D)
        Noisy observations :math:`y = x + \sigma\varepsilon`.
    score : tensor (N, D)
        :math:`\nabla\log p_\sigma(y)`, the score of the **noisy** law.
    sigma : float, 0-d tensor or tensor (N,)
        > 0.

    Returns
    -------
    tensor (N, D)

    Raises
    ------
    ValueError
        Shapes differ; ``sigma <= 0``.

    References
    ----------
    Efron (2011), "Tweedie's formula and selection bias", Eq. 2.8.
    """
    y = _check_points("y", y)
    check_tensor("score", score, floating=True)
    if score.shape != y.shape:
        raise ValueError(f"score: expected shape {tuple(y.shape)} (y's), got {tuple(score.shape)}")
    s = _sigma_column(sigma, y)
    return y + s ** 2 * score                                  # y + sigma^2 grad log p_sigma(y)


def tweedie_covariance(hessian: torch.Tensor, sigma) -> torch.Tensor:
    r"""Second-order Tweedie: :math:`\mathrm{Cov}[x\mid y] = \sigma^2\big(I + \sigma^2 \nabla^2\log p_\sigma(y)\big)`.

    Parameters
    ----------
    hessian : tensor (N, D, D)
        :math:`\nabla^2 \log p_\sigma(y)`, e.g. ``mixture.convolve(sigma).hessian_log_prob(y)``.
    sigma : float, 0-d tensor or tensor (N,)
        > 0.

    Returns
    -------
    tensor (N, D, D)

    References
    ----------
    Meng, Song, Li, Ermon, NeurIPS 2021, Eq. 4 (higher-order
    Tweedie's formula).
    """
    check_tensor("hessian", hessian, ndim=3, floating=True)
    n, d, d2 = hessian.shape
    if d != d2:
        raise ValueError(f"hessian: expected shape (N, D, D), got {tuple(hessian.shape)}")
    s2 = _sigma_column(sigma, hessian[:, :, 0]) ** 2                              # (N|1, 1)
    eye = torch.eye(d, dtype=hessian.dtype, device=hessian.device)
    return s2[:, :, None] * (eye + s2[:, :, None] * hessian)   # sigma^2 (I + sigma^2 H)


def _grad_or_zero(out: torch.Tensor, x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """d out / d x, or zeros where ``out`` no longer depends on ``x`` (a polynomial differentiated past its degree)."""
    if not out.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(out, x, create_graph=create_graph, retain_graph=True, allow_unused=True,
                               materialize_grads=True)
    return g


def tweedie_cumulants(log_prob_fn: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, sigma,
                      order: int = 3) -> torch.Tensor:
    r"""Posterior cumulants of :math:`x` given :math:`y = x + \sigma\varepsilon`, from :math:`\log p_\sigma`.

    The posterior :math:`p(x\mid y) \propto p(x)\,e^{-\|x\|^2/(2\sigma^2)}\,e^{x^\top y/\sigma^2}`
    is an exponential family in :math:`x` with natural parameter :math:`\eta = y/\sigma^2` and
    log-partition function
    :math:`A(\eta) = \log p_\sigma(y) + \|y\|^2/(2\sigma^2) + \tfrac D2\log(2\pi\sigma^2)`.
    The k-th derivative of a log-partition function in :math:`\eta` is the k-th cumulant, and
    :math:`\partial/\partial\eta = \sigma^2\,\partial/\partial y`, so

    .. math::  \kappa_k[x_i \mid y] = \sigma^{2k}\,\frac{\partial^k}{\partial y_i^k}
               \Big[\log p_\sigma(y) + \frac{\|y\|^2}{2\sigma^2}\Big]:

    k = 1 is Tweedie's :math:`E[x\mid y] = y + \sigma^2\nabla\log p_\sigma`, k = 2 the diagonal
    of :func:`tweedie_covariance`, k = 3 the third central moment
    :math:`\sigma^6\,\partial^3\log p_\sigma/\partial y_i^3` (the quadratic term no longer
    contributes from k = 3 on). In D dimensions the k-th cumulant is a tensor with D^k entries;
    this returns its **diagonal** :math:`\kappa_{i\cdots i}` (all of it for D = 1), by repeated
    autograd: ``order * D`` backward passes.

    Parameters
    ----------
    log_prob_fn : callable
        ``log_prob_fn(y) -> (N,)``: :math:`\log p_\sigma` of the **noisy** law (any additive
        constant, e.g. an unknown normalizer, drops out), ``order`` times differentiable, rows
        independent. E.g. ``mixture.convolve(sigma).log_prob``.
    y : tensor (N, D)
    sigma : float, 0-d tensor or tensor (N,)
        Noise standard deviation, > 0.
    order : int
        Highest cumulant, >= 1.

    Returns
    -------
    tensor (order, N, D)
        ``[k - 1, n, i]`` = :math:`\kappa_k[x_i\mid y_n]`; detached.

    Raises
    ------
    ValueError
        ``order < 1``, ``sigma <= 0``, ``log_prob_fn`` not returning shape (N,).

    References
    ----------
    Efron, "Tweedie's formula and selection bias", JASA 2011, Sec. 2 (the posterior as an
    exponential family, its cumulants as derivatives of :math:`\log p_\sigma + y^2/(2\sigma^2)`);
    Meng, Song, Li, Ermon, "Estimating high order gradients of the data distribution by
    denoising", NeurIPS 2021 (the higher-order Tweedie formulas in D dimensions).
    """
    _check_callable("log_prob_fn", log_prob_fn)
    y = _check_points("y", y)
    s2 = _sigma_column(sigma, y) ** 2                                            # (N|1, 1)
    order = check_int("order", order, minimum=1)
    with torch.enable_grad():
        yy = y.detach().requires_grad_(True)
        lp = log_prob_fn(yy)
        if not isinstance(lp, torch.Tensor) or lp.shape != (y.shape[0],):
            got = tuple(lp.shape) if isinstance(lp, torch.Tensor) else type(lp).__name__
            raise ValueError(f"log_prob_fn: expected log_prob_fn(y) to return shape ({y.shape[0]},), "
                             f"got {got}")
        lam = lp + 0.5 * (yy ** 2).sum(1) / s2[:, 0]                              # log-partition in y
        (deriv,) = torch.autograd.grad(lam.sum(), yy, create_graph=order > 1)    # (N, D), k = 1
        out = [deriv.detach()]
        for k in range(2, order + 1):
            cols = [_grad_or_zero(deriv[:, i].sum(), yy, k < order)[:, i] for i in range(y.shape[1])]
            deriv = torch.stack(cols, 1)                                         # d^k lam / dy_i^k
            out.append(deriv.detach())
    powers = s2 ** torch.arange(1, order + 1, dtype=y.dtype, device=y.device)[:, None, None]
    return powers * torch.stack(out)                                             # sigma^{2k} d^k lam


def sure(denoiser: ScoreFn, y: torch.Tensor, sigma, num_probes: int | None = None,
         generator: torch.Generator | None = None, probe: str = "rademacher") -> torch.Tensor:
    r"""Stein's unbiased risk estimate of a denoiser's squared error, from the noisy data alone.

    For :math:`y = x + \sigma\varepsilon` and a weakly differentiable :math:`f`,

    .. math::  \mathrm{SURE}(f; y) = \|f(y) - y\|^2 - D\sigma^2 + 2\sigma^2\, \nabla\cdot f(y),
               \qquad E\big[\mathrm{SURE}(f; y)\big] = E\|f(y) - x\|^2 .

    The divergence is exact (``num_probes=None``) or Hutchinson's estimate (Monte-Carlo SURE,
    still unbiased), see :func:`divergence`.

    Parameters
    ----------
    denoiser : callable
        ``f(y) -> (N, D)``.
    y : tensor (N, D)
    sigma : float, 0-d tensor or tensor (N,)
        Noise standard deviation, > 0.
    num_probes : int, optional
    generator : torch.Generator, optional
    probe : {"rademacher", "gaussian"}

    Returns
    -------
    tensor (N,)
        Per-example SURE (can be negative), in squared data units; differentiable w.r.t. the
        denoiser's parameters when gradients are enabled.

    Raises
    ------
    ValueError
        ``sigma <= 0``, ``num_probes < 1``, wrong output shape.

    References
    ----------
    Stein (1981), Theorem 1; Ramani, Blu, Unser (2008) for Monte-Carlo SURE (REFERENCES.md A8);
    Stein (1981), "Estimation of the mean of a multivariate normal distribution"; Raphan & Simoncelli (2011).
    """
    _check_callable("denoiser", denoiser)
    y = _check_points("y", y)
    s_col = _sigma_column(sigma, y)
    s2 = (s_col ** 2)[:, 0]
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        yy = y.detach().requires_grad_(True)
        fy = call_checked("denoiser", denoiser, yy)
        residual = ((fy - yy) ** 2).sum(1)
    if not create_graph:
        residual = residual.detach()
    div = divergence(denoiser, y, num_probes=num_probes, generator=generator, probe=probe)
    d = y.shape[1]
    return residual - d * s2 + 2 * s2 * div    # ||f(y) - y||^2 - D sigma^2 + 2 sigma^2 div f(y)


# ------------------------------------------------------------------------------------------------
# a noise-conditional score network and its error against an exact score
# ------------------------------------------------------------------------------------------------
class NoiseConditionalScoreNet(nn.Module):
    r"""Noise-conditional score model :math:`s_\theta(x, \sigma) = \mathrm{net}(x, \log\sigma) / \sigma`.

    A :class:`course_lib.nets.TimeConditionedMLP` conditioned on :math:`\log\sigma`, its output
    divided by :math:`\sigma` (NCSNv2's parameterization, Song & Ermon 2020, Sec. 3.3): the true
    score of :math:`p_\sigma` has magnitude :math:`\approx \|\varepsilon\|/\sigma`, so the network
    only predicts an :math:`O(1)` quantity (:math:`-E[\varepsilon\mid\tilde x]`) at every level.

    Parameters
    ----------
    data_dim : int
    hidden, num_layers, embed_dim : int
        Passed to ``TimeConditionedMLP``.
    time_scale : float
        Scale of the sinusoidal embedding of :math:`\log\sigma` (default 4).
    max_period : float
        Of the embedding (default 100: :math:`\log\sigma` spans only a few units).

    Shapes
    ------
    ``forward(x, sigma)``: ``x`` ``(N, D)``; ``sigma`` a positive number or tensor ``()``/``(N,)``.
    Returns ``(N, D)``.
    """

    def __init__(self, data_dim: int, hidden: int = 128, num_layers: int = 3, embed_dim: int = 32,
                 time_scale: float = 4.0, max_period: float = 100.0):
        super().__init__()
        from course_lib.nets import TimeConditionedMLP

        self.net = TimeConditionedMLP(data_dim, hidden=hidden, num_layers=num_layers,
                                      embed_dim=embed_dim, time_scale=time_scale,
                                      max_period=max_period)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        s = _sigma_column(sigma, x)                              # (N|1, 1)
        log_sigma = torch.log(s[:, 0]).expand(x.shape[0])
        return self.net(x, log_sigma) / s                         # net(x, log sigma) / sigma


def score_error(score_fn: ScoreFn, mixture, sigma: float, num_samples: int = 2000,
                generator: torch.Generator | None = None, device=None) -> float:
    r"""Relative squared error of a score at one noise level, against a mixture's exact score.

    .. math::  \frac{E_{\tilde x\sim p_\sigma}\|s(\tilde x) - \nabla\log p_\sigma(\tilde x)\|^2}
                    {E_{\tilde x\sim p_\sigma}\|\nabla\log p_\sigma(\tilde x)\|^2}

    with :math:`p_\sigma` = ``mixture.convolve(sigma)``, estimated on ``num_samples`` draws.

    Parameters
    ----------
    score_fn : callable
        ``score_fn(x) -> (N, D)`` (wrap a conditional model: ``lambda x: net(x, sigma)``).
    mixture : course_lib.toy.GaussianMixture
    sigma : float
        >= 0.
    num_samples : int
    generator : torch.Generator, optional
        Drives the samples (drawn on the mixture's device).
    device : torch.device or str, optional
        Where ``score_fn`` is evaluated (default: the mixture's device).

    Returns
    -------
    float
        0 for the exact score; 1 for the zero function.
    """
    _check_callable("score_fn", score_fn)
    num_samples = check_int("num_samples", num_samples, minimum=1)
    noisy = mixture.convolve(float(sigma))
    y = noisy.sample(num_samples, generator=generator)
    if device is not None:
        y = y.to(device)
    with torch.no_grad():
        true = noisy.score(y)
    out = call_checked("score_fn", score_fn, y).detach()
    return float(((out - true) ** 2).sum() / (true ** 2).sum())
