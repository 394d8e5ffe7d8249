"""Exercises of notebook 01, "Autoencoders".

Each exercise is checked against a ``course_lib.autoencoders`` reference on randomized float64
inputs. The masking-noise exercise is random, and a correct solution need not draw its random
numbers in the same order as the reference, so its check compares what must hold for any correct
implementation: every entry is either kept or replaced by ``mask_value``, the fraction masked is
``mask_prob`` within 5 binomial standard errors, masks differ between examples and between
pixels, and ``mask_prob`` 0 and 1 give exactly the clean and the fully masked input.

================================  ================================================================
exercise                          reference
================================  ================================================================
``pca_reconstruction``            ``mean + (x - mean) V V^T`` with ``V, mean = pca(x, k)``
``principal_angles``              ``course_lib.autoencoders.principal_angles``
``masking_noise``                 ``course_lib.autoencoders.corrupt(x, mask_prob=..., ...)``
``sigmoid_contractive_penalty``   ``contractive_penalty(lambda x: sigmoid(x W^T + b), x)``
``linear_ae_gradient_step``       one gradient-descent step of a linear autoencoder, by autograd
                                  (multi-step: the student backpropagates by hand)
================================  ================================================================
"""

from __future__ import annotations

import math

import torch

from course_lib.exercises import Exercise, register

__all__ = ["pca_reconstruction_reference", "principal_angles_reference",
           "masking_noise_reference", "sigmoid_contractive_penalty_reference",
           "linear_ae_gradient_step_reference"]

_F64 = torch.float64


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """One integer uniform on ``{low, ..., high}``."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


# ------------------------------------------------------------------------------------------------
# pca_reconstruction
# ------------------------------------------------------------------------------------------------
def pca_reconstruction_reference(x: torch.Tensor, k: int) -> torch.Tensor:
    """Project ``x`` ``(N, D)`` onto its top-``k`` principal subspace and map back: ``(N, D)``.

    ``x_hat = mean + (x - mean) V V^T`` with ``V`` ``(D, k)`` the top-``k`` principal directions
    (:func:`course_lib.autoencoders.pca`); the optimal rank-``k`` linear autoencoder
    (Baldi & Hornik 1989).
    """
    from course_lib.autoencoders import pca

    components, mean = pca(x, k)
    return mean + (x - mean) @ components @ components.mT     # mean + (x - mean) V V^T


def _pca_inputs(generator: torch.Generator):
    n, d = _randint(40, 80, generator), _randint(5, 10, generator)
    k = _randint(1, d - 1, generator)
    # Well separated variances so the top-k subspace is well defined, plus a random rotation
    # and a non-zero mean (forgetting to centre must fail).
    scales = torch.linspace(3.0, 0.3, d, dtype=_F64)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=_F64))
    x = (torch.randn(n, d, generator=generator, dtype=_F64) * scales) @ q.mT
    x = x + 2.0 + torch.randn(d, generator=generator, dtype=_F64)
    return (x, k), {}


register(Exercise(
    name="pca_reconstruction",
    reference=pca_reconstruction_reference,
    make_inputs=_pca_inputs,
    description="rank-k PCA reconstruction of (N, D) float64 data with a non-zero mean",
    num_cases=5, rtol=1e-6, atol=1e-8,
))


# ------------------------------------------------------------------------------------------------
# principal_angles
# ------------------------------------------------------------------------------------------------
def principal_angles_reference(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, ascending, ``(min(k_A, k_B),)``) between the column spaces of
    ``A`` ``(D, k_A)`` and ``B`` ``(D, k_B)`` (Björck & Golub 1973)."""
    from course_lib.autoencoders import principal_angles

    return principal_angles(A, B)


def _angles_inputs(generator: torch.Generator):
    d = _randint(6, 12, generator)
    ka, kb = _randint(1, d // 2, generator), _randint(1, d // 2, generator)
    A = torch.randn(d, ka, generator=generator, dtype=_F64)
    B = torch.randn(d, kb, generator=generator, dtype=_F64)
    # B shares a direction with A (one angle is 0) and has another close to one of A's,
    # and neither matrix has orthonormal columns (the student must orthonormalize).
    B[:, 0] = A @ torch.randn(ka, generator=generator, dtype=_F64)
    if kb > 1:
        B[:, 1] = A[:, -1] + 0.05 * torch.randn(d, generator=generator, dtype=_F64)
    return (A, B), {}


register(Exercise(
    name="principal_angles",
    reference=principal_angles_reference,
    make_inputs=_angles_inputs,
    description="principal angles in radians, ascending, between column spaces of random "
                "non-orthonormal (D, k) float64 matrices that share a direction",
    num_cases=6, rtol=1e-5, atol=1e-6,
))


# ------------------------------------------------------------------------------------------------
# masking_noise
# ------------------------------------------------------------------------------------------------
def masking_noise_reference(x: torch.Tensor, mask_prob: float, mask_value: float,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """Masking corruption of Vincent et al. (2008, Sec. 2.3): each entry of ``x`` ``(N, ...)``
    is independently replaced by ``mask_value`` with probability ``mask_prob``; same shape."""
    from course_lib.autoencoders import corrupt

    return corrupt(x, mask_prob=mask_prob, mask_value=mask_value, generator=generator)


_MASK_PROBS = (0.0, 0.1, 0.25, 0.5, 0.8, 1.0)


def _masking_inputs(generator: torch.Generator):
    # check() seeds case i with seed + i: cycle through the probabilities, edges included.
    mask_prob = _MASK_PROBS[generator.initial_seed() % len(_MASK_PROBS)]
    x = torch.rand(300, 1, 8, 8, generator=generator, dtype=_F64) * 1.8 - 0.9  # never +-1 or 0
    mask_value = (-1.0, 0.0)[_randint(0, 1, generator)]
    g = torch.Generator().manual_seed(_randint(0, 2**31 - 1, generator))
    return (x, mask_prob, mask_value), {"generator": g}


def _masking_compare(out, expected, args, kwargs) -> str | None:
    x, mask_prob, mask_value = args
    if not isinstance(out, torch.Tensor):
        return f"expected a torch.Tensor, got {type(out).__name__}"
    if out.shape != x.shape:
        return f"shape: expected {tuple(x.shape)} (the input's), got {tuple(out.shape)}"
    if out.dtype != x.dtype:
        return f"dtype: expected {x.dtype} (the input's), got {out.dtype}"
    masked = out == mask_value
    kept = out == x
    bad = ~(masked | kept)
    if bool(bad.any()):
        idx = tuple(int(i) for i in bad.nonzero()[0])
        return (f"every entry must be either kept (= x) or masked (= mask_value {mask_value}); at "
                f"index {idx} got {out[idx].item():.6g} where x is {x[idx].item():.6g}")
    n = masked.numel()
    frac = masked.double().mean().item()
    if mask_prob in (0.0, 1.0):
        if frac != mask_prob:
            return f"with mask_prob={mask_prob} expected a masked fraction of {mask_prob}, got {frac:.4f}"
        return None
    flat = masked.reshape(masked.shape[0], -1)
    if bool((flat == flat[:1]).all()):
        return "every example got the same mask: draw an independent mask for each example"
    if bool((flat == flat[:, :1]).all()):
        return "all pixels of an example are masked together: mask each entry independently"
    se = math.sqrt(mask_prob * (1 - mask_prob) / n)
    if abs(frac - mask_prob) > 5 * se:
        return (f"masked fraction {frac:.4f} is not mask_prob={mask_prob} (tolerance 5 standard "
                f"errors = {5 * se:.4f} over {n} entries)")
    return None


register(Exercise(
    name="masking_noise",
    reference=masking_noise_reference,
    make_inputs=_masking_inputs,
    description="(300, 1, 8, 8) float64 inputs: entries kept or set to mask_value, masked "
                "fraction = mask_prob within 5 standard errors, independent masks; mask_prob "
                "0.0 / 1.0 exact",
    num_cases=6, compare=_masking_compare,
))


# ------------------------------------------------------------------------------------------------
# sigmoid_contractive_penalty
# ------------------------------------------------------------------------------------------------
def sigmoid_contractive_penalty_reference(W: torch.Tensor, b: torch.Tensor,
                                          x: torch.Tensor) -> torch.Tensor:
    """``||J_f(x)||_F^2`` ``(N,)`` of the encoder ``h = sigmoid(x W^T + b)``, ``W`` ``(K, D)``,
    ``b`` ``(K,)``, ``x`` ``(N, D)``, by automatic differentiation
    (:func:`course_lib.autoencoders.contractive_penalty`; Rifai et al. 2011)."""
    from course_lib.autoencoders import contractive_penalty

    return contractive_penalty(lambda v: torch.sigmoid(v @ W.mT + b), x, create_graph=False)


def _sigmoid_cae_inputs(generator: torch.Generator):
    n, d, k = _randint(5, 40, generator), _randint(3, 12, generator), _randint(1, 6, generator)
    W = torch.randn(k, d, generator=generator, dtype=_F64)
    b = torch.randn(k, generator=generator, dtype=_F64)
    x = torch.randn(n, d, generator=generator, dtype=_F64)
    x[0] = 50.0 * x[0]                     # saturated units: the penalty is (nearly) 0 there
    return (W, b, x), {}


register(Exercise(
    name="sigmoid_contractive_penalty",
    reference=sigmoid_contractive_penalty_reference,
    make_inputs=_sigmoid_cae_inputs,
    description="squared Frobenius norm of the sigmoid encoder's Jacobian, (N,) float64, "
                "against automatic differentiation",
    num_cases=5, rtol=1e-7, atol=1e-10,
))


# ------------------------------------------------------------------------------------------------
# linear_ae_gradient_step (multi-step): backpropagation by hand through a linear autoencoder
# ------------------------------------------------------------------------------------------------
def linear_ae_gradient_step_reference(W_e: torch.Tensor, b_e: torch.Tensor, W_d: torch.Tensor,
                                      b_d: torch.Tensor, x: torch.Tensor, lr: float):
    """One full-batch gradient-descent step of a linear autoencoder, gradients by autograd.

    Loss ``L = (1/N) sum_n ||x_n - (W_d (W_e x_n + b_e) + b_d)||^2`` for ``x`` ``(N, D)``,
    ``W_e`` ``(k, D)``, ``b_e`` ``(k,)``, ``W_d`` ``(D, k)``, ``b_d`` ``(D,)``; every parameter
    ``theta`` becomes ``theta - lr * dL/dtheta``. Returns ``(loss, W_e, b_e, W_d, b_d)``: the loss
    (0-dim) at the parameters given and the parameters after the step (the inputs are not
    modified). Its minimum is the PCA reconstruction error (Baldi & Hornik 1989).
    """
    params = [t.detach().clone().requires_grad_(True) for t in (W_e, b_e, W_d, b_d)]
    we, be, wd, bd = params
    x_hat = (x @ we.mT + be) @ wd.mT + bd
    loss = (x - x_hat).pow(2).sum(1).mean()
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        new = tuple(p - lr * g for p, g in zip(params, grads))
    return (loss.detach(), *(t.detach() for t in new))


def _linear_ae_inputs(generator: torch.Generator):
    # check() seeds case i with seed + i; the kind of case cycles with it, edges included.
    kind = generator.initial_seed() % 5
    n, d = _randint(20, 60, generator), _randint(4, 9, generator)
    k = 1 if kind == 3 else _randint(2, d - 1, generator)
    x = torch.randn(n, d, generator=generator, dtype=_F64) * torch.linspace(2.0, 0.3, d, dtype=_F64)
    x = x + 1.5 + torch.randn(d, generator=generator, dtype=_F64)     # a non-zero mean: b_d matters
    W_e = torch.randn(k, d, generator=generator, dtype=_F64) / math.sqrt(d)
    b_e = 0.1 * torch.randn(k, generator=generator, dtype=_F64)
    W_d = torch.randn(d, k, generator=generator, dtype=_F64) / math.sqrt(k)
    b_d = 0.1 * torch.randn(d, generator=generator, dtype=_F64)
    lr = float(torch.empty(1, dtype=_F64).uniform_(1e-3, 5e-2, generator=generator))
    if kind == 1:          # the saddle at W_d = 0: W_e gets no gradient, b_d does
        W_d = torch.zeros_like(W_d)
    elif kind == 2:        # lr = 0: only the loss, parameters unchanged
        lr = 0.0
    return (W_e, b_e, W_d, b_d, x, lr), {}


register(Exercise(
    name="linear_ae_gradient_step",
    reference=linear_ae_gradient_step_reference,
    make_inputs=_linear_ae_inputs,
    description="(loss, W_e, b_e, W_d, b_d) after one gradient step, against autograd, on (N, D) "
                "float64 data with a non-zero mean, k from 1 to D - 1, W_d = 0 (a saddle) and lr = 0",
    num_cases=5, rtol=1e-9, atol=1e-11,
))
