"""Primitives every topic module uses, written once: random draws on the generator's device, the
device of a model, and progress bars. (Input checks are in ``_checks``; the diagonal Gaussian
log-density is :func:`course_lib.gaussians.diag_gaussian_log_prob`.)

Internal helpers; not part of the public contract. This module imports nothing from the package.

Random draws
------------
A ``torch.Generator`` lives on one device, and a CPU generator cannot drive ``randn`` on CUDA.
Every random function of the course therefore draws **on the generator's device** (or, without a
generator, directly on the target device) and moves the result to the target device. The values
depend only on the generator's state, so a seeded CPU generator gives the same numbers whether
the computation runs on CPU, CUDA or MPS.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch


def draw_device(generator: torch.Generator | None, device) -> torch.device:
    """Where random numbers are drawn: the generator's own device when one is given, else ``device``."""
    return torch.device(device) if generator is None else generator.device


def randn(shape: Sequence[int] | torch.Size, generator: torch.Generator | None, device,
          dtype: torch.dtype | None = None) -> torch.Tensor:
    """Standard normal draws of ``shape`` on ``device`` (drawn on the generator's device, then moved)."""
    return torch.randn(shape, generator=generator, device=draw_device(generator, device),
                       dtype=dtype).to(device)


def rand(shape: Sequence[int] | torch.Size, generator: torch.Generator | None, device,
         dtype: torch.dtype | None = None) -> torch.Tensor:
    """Uniform draws on [0, 1) of ``shape`` on ``device`` (drawn on the generator's device, then moved)."""
    return torch.rand(shape, generator=generator, device=draw_device(generator, device),
                      dtype=dtype).to(device)


def randint(high: int, shape: Sequence[int] | torch.Size, generator: torch.Generator | None,
            device) -> torch.Tensor:
    """Uniform integers in ``{0, ..., high - 1}`` (long) on ``device``, drawn on the generator's device."""
    return torch.randint(0, high, tuple(shape), generator=generator,
                         device=draw_device(generator, device)).to(device)


def randperm(n: int, generator: torch.Generator | None, device) -> torch.Tensor:
    """A random permutation of ``range(n)`` (long) on ``device``, drawn on the generator's device."""
    return torch.randperm(n, generator=generator, device=draw_device(generator, device)).to(device)


def model_device(model, default=None) -> torch.device:
    """The device of a model: its first parameter's (or buffer's) for an ``nn.Module``, else
    ``model.device`` if it has one, else ``default`` (CPU when None)."""
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
        for b in model.buffers():
            return b.device
    dev = getattr(model, "device", None)
    if dev is not None:
        return torch.device(dev)
    return torch.device(default) if default is not None else torch.device("cpu")


def progress(iterable: Iterable | None = None, show: bool = True, desc: str | None = None,
             total: int | None = None, leave: bool = False):
    """A ``tqdm.auto`` progress bar over ``iterable`` (a widget in Jupyter, text in a terminal).

    With ``show=False`` the iterable itself is returned (or, without one, a disabled bar that
    accepts ``update``), and tqdm is not imported.
    """
    if not show and iterable is not None:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=leave, disable=not show)
