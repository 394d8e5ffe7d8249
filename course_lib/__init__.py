"""course_lib: the verified implementations behind "Deep Generative Models, derived and verified".

Every notebook imports its mathematics from here; every function is tested against something
independent of its own implementation (closed forms in float64, quadrature, Monte Carlo,
``torch.distributions`` / ``scipy.stats``). Conventions (DESIGN.md §4): batch first, vector data
``(N, D)``, images ``(N, C, H, W)`` in ``[-1, 1]``, Gaussians as ``mean`` and ``logvar``, per-example
quantities ``(N,)`` in nats, every random function takes ``generator``.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "__version__"]
__version__ = "0.1.0"


def get_device(prefer: str | None = None) -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then CPU.

    Parameters
    ----------
    prefer : str, optional
        Force a device (``"cpu"``, ``"cuda"``, ``"mps"``). The environment variable
        ``COURSE_DEVICE`` does the same without editing a notebook.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If ``prefer`` names a device that is not available on this machine.
    """
    prefer = prefer or os.environ.get("COURSE_DEVICE") or None
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()}
    if prefer is not None:
        kind = str(prefer).split(":")[0]
        if kind not in available:
            raise ValueError(f"prefer: expected one of 'cpu', 'cuda', 'mps', got {prefer!r}")
        if not available[kind]:
            raise ValueError(f"prefer: device {prefer!r} is not available on this machine")
        return torch.device(prefer)
    for kind in ("cuda", "mps"):
        if available[kind]:
            return torch.device(kind)
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and PyTorch's (CPU and CUDA) global random number generators.

    Parameters
    ----------
    seed : int
        Non-negative integer seed.

    Returns
    -------
    torch.Generator
        A fresh CPU generator seeded with ``seed``, for functions that take ``generator=``.

    Raises
    ------
    ValueError
        If ``seed`` is not a non-negative integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g
