"""Input validation shared by every module: errors name the argument, what was expected and what came.

Internal helpers; not part of the public contract.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def as_tensor(name: str, x, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert array-likes to a tensor, keeping an existing tensor's dtype/device unless ``dtype``."""
    if isinstance(x, torch.Tensor):
        return x if dtype is None else x.to(dtype)
    try:
        t = torch.as_tensor(x)
    except Exception as exc:  # pragma: no cover - message path
        raise TypeError(f"{name}: expected a tensor or array-like, got {type(x).__name__}") from exc
    if dtype is not None:
        return t.to(dtype)
    return t.to(torch.get_default_dtype()) if t.is_floating_point() or t.dtype in (torch.int64, torch.int32) else t


def check_tensor(name: str, x, ndim: int | Sequence[int] | None = None,
                 shape: Sequence[int | None] | None = None, floating: bool = False) -> torch.Tensor:
    """Require a tensor with the given number of dims and/or shape (None = any size in that dim)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.dim() not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name}: expected a {want}-D tensor, got shape {tuple(x.shape)}")
    if shape is not None:
        if x.dim() != len(shape) or any(s is not None and s != xs for s, xs in zip(shape, x.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name}: expected shape {want}, got {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    return x


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Require two tensors of exactly the same shape (no silent broadcasting)."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b}: expected the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")


def check_positive(name: str, value, strict: bool = True) -> None:
    """Require a positive number (or a tensor of positive numbers); NaN is rejected."""
    if isinstance(value, torch.Tensor):
        bad = ~(value > 0) if strict else ~(value >= 0)
        if bool(bad.any()):
            worst = value[bad].flatten()[0].item()
            raise ValueError(f"{name}: expected values {'>' if strict else '>='} 0, got {worst!r}")
        return
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}") from exc
    if not (v > 0 if strict else v >= 0):
        raise ValueError(f"{name}: expected a number {'>' if strict else '>='} 0, got {value!r}")


def check_int(name: str, value, minimum: int | None = None) -> int:
    """Require an integer (not bool) no smaller than ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np
            if isinstance(value, np.integer):
                value = int(value)
            else:
                raise TypeError
        except TypeError:
            raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


def check_log_densities_on_grid(x, **log_densities) -> tuple[torch.Tensor, ...]:
    """For 1-D quadrature: a strictly increasing float64 grid ``x`` (N >= 2) and, by name, one
    log-density value per grid point (finite or ``-inf``). Returns ``(x, *log_densities)`` in float64."""
    x = torch.as_tensor(x, dtype=torch.float64)
    check_tensor("x", x, ndim=1)
    if x.shape[0] < 2:
        raise ValueError(f"x: expected a grid of at least 2 points, got {x.shape[0]}")
    if not bool((x[1:] > x[:-1]).all()):
        raise ValueError("x: expected strictly increasing grid points, got a step <= 0")
    out = [x]
    for name, v in log_densities.items():
        v = torch.as_tensor(v, dtype=torch.float64).to(x.device)
        if tuple(v.shape) != tuple(x.shape):
            raise ValueError(f"{name}: expected one log-density value per grid point, shape "
                             f"{tuple(x.shape)}, got {tuple(v.shape)}")
        if bool(torch.isnan(v).any()) or bool(torch.isposinf(v).any()):
            raise ValueError(f"{name}: expected log-densities (finite or -inf), got NaN or +inf")
        out.append(v)
    return tuple(out)


def call_checked(name: str, fn, x: torch.Tensor, *args, call: str | None = None) -> torch.Tensor:
    """Call ``fn(x, *args)`` (a model, a score function, a denoiser) and require a tensor of x's shape.

    ``name`` is the argument that holds ``fn``; ``call`` how the message writes the call (default
    ``name(x)``). A non-tensor output raises ``TypeError``, a tensor of another shape ``ValueError``.
    """
    out = fn(x, *args)
    call = call or (f"{name}(x, ...)" if args else f"{name}(x)")
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name}: expected {call} to return a torch.Tensor of its input's shape "
                        f"{tuple(x.shape)}, got {type(out).__name__}")
    if out.shape != x.shape:
        raise ValueError(f"{name}: expected {call} to return a tensor of its input's shape "
                         f"{tuple(x.shape)}, got shape {tuple(out.shape)}")
    return out
