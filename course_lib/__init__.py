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

__all__ = ["get_device", "seed_everything", "course_seed", "set_num_threads", "__version__"]
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


def _env_int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}: expected an integer >= {minimum} in the environment, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum} in the environment, got {raw!r}")
    return value


def course_seed(default: int = 0) -> int:
    """The seed a notebook runs under: ``COURSE_SEED`` from the environment, else ``default``.

    Every notebook reads its seed through this function in its first cell, so that anyone can rerun
    it under another seed without editing it (``COURSE_SEED=3 jupyter lab``, or
    ``python3 course.py robustness``). Every claim a notebook asserts must hold for any seed
    (DESIGN.md §3, claims rule 4).

    Parameters
    ----------
    default : int
        The seed when ``COURSE_SEED`` is unset or empty (the course's outputs are shown for 0).

    Returns
    -------
    int
        A non-negative integer seed.

    Raises
    ------
    ValueError
        If ``COURSE_SEED`` is set to anything but a non-negative integer, or ``default`` is negative.
    """
    if isinstance(default, bool) or not isinstance(default, (int, np.integer)) or default < 0:
        raise ValueError(f"default: expected a non-negative int, got {default!r}")
    return _env_int("COURSE_SEED", int(default), 0)


def set_num_threads(default: int = 1) -> int:
    """Set PyTorch's CPU thread count: ``COURSE_THREADS`` from the environment, else ``default``.

    The course's networks are tiny, so one CPU thread is fastest and never oversubscribes a laptop;
    ``COURSE_THREADS=2`` reruns a notebook with two threads, which changes the order of floating
    point reductions (a claim must not depend on it; ``python3 course.py robustness`` checks).

    Parameters
    ----------
    default : int
        Threads when ``COURSE_THREADS`` is unset or empty.

    Returns
    -------
    int
        The number of threads now in use (``torch.get_num_threads()``).

    Raises
    ------
    ValueError
        If ``COURSE_THREADS`` is set to anything but a positive integer, or ``default`` < 1.
    """
    if isinstance(default, bool) or not isinstance(default, (int, np.integer)) or default < 1:
        raise ValueError(f"default: expected a positive int, got {default!r}")
    threads = _env_int("COURSE_THREADS", int(default), 1)
    torch.set_num_threads(threads)
    return torch.get_num_threads()
