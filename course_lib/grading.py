"""Exercise checks with readable feedback: ``check(exercise_name, fn)``.

Each exercise is registered once (in ``course_lib/exercises/<topic>.py``) with a reference
implementation and a generator of randomized inputs. ``check`` calls the student's function and the
reference on the same inputs and reports what passed and, for a failure, the first mismatch (shape,
dtype, max abs difference and where, or the exception), never the reference's code.

Notebooks call it from nbgrader's autograded test cells (DESIGN.md §5), e.g.::

    from course_lib import grading
    grading.check("kl_univariate_gaussians", kl_univariate_gaussians)
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Exercise", "register", "check", "exercises"]

Inputs = tuple[tuple, dict]


@dataclass
class Exercise:
    """One gradable exercise.

    Parameters
    ----------
    name : str
        The name notebooks pass to :func:`check` (usually the function the student writes).
    reference : callable
        The reference implementation (typically the ``course_lib`` function).
    make_inputs : callable
        ``make_inputs(generator) -> (args, kwargs)``: one randomized test case.
    description : str
        One line saying what the check compares.
    num_cases : int
        Randomized cases per check.
    rtol, atol : float
        Tolerances of the elementwise comparison (``torch.allclose`` semantics).
    compare : callable, optional
        ``compare(student_output, reference_output, args, kwargs) -> str | None``: a custom
        comparison returning a mismatch message, or None when the outputs agree.
    """

    name: str
    reference: Callable[..., Any]
    make_inputs: Callable[[torch.Generator], Inputs]
    description: str = ""
    num_cases: int = 5
    rtol: float = 1e-5
    atol: float = 1e-6
    compare: Callable[[Any, Any, tuple, dict], str | None] | None = field(default=None, repr=False)


_REGISTRY: dict[str, Exercise] = {}
_LOADED = False


def register(exercise: Exercise) -> Exercise:
    """Add an exercise to the registry (names are unique)."""
    if exercise.name in _REGISTRY and _REGISTRY[exercise.name] is not exercise:
        raise ValueError(f"exercise name {exercise.name!r} is registered twice")
    _REGISTRY[exercise.name] = exercise
    return exercise


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    import course_lib.exercises as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{mod.name}")
    _LOADED = True


def exercises() -> dict[str, Exercise]:
    """All registered exercises, by name."""
    _load_all()
    return dict(_REGISTRY)
