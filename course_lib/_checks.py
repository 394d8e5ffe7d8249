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
