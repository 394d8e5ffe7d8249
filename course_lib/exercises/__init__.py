"""The exercise registry, and the registered exercises: one module per notebook topic.

Each module here (``course_lib/exercises/<topic>.py``) registers its exercises once with
``register(Exercise(...))``: a reference implementation (usually the ``course_lib`` function) and a
generator of randomized inputs. Every module of this package is loaded by :func:`exercises`, so a new
exercise needs nothing else. :func:`course_lib.grading.check` compares a student's function with the
reference on those inputs; :mod:`course_lib.grading` imports this registry, never the other way.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Exercise", "register", "unregister", "exercises", "cases"]

Inputs = tuple[tuple, dict]


@dataclass
class Exercise:
    """One gradable exercise.

    Parameters
    ----------
    name : str
        The name notebooks pass to :func:`course_lib.grading.check` (usually the function the
        student writes).
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
    """Add an exercise to the registry (names are unique); returns it."""
    if exercise.name in _REGISTRY and _REGISTRY[exercise.name] is not exercise:
        raise ValueError(f"exercise name {exercise.name!r} is registered twice")
    _REGISTRY[exercise.name] = exercise
    return exercise


def unregister(name: str) -> Exercise:
    """Remove an exercise from the registry (e.g. one a test registered) and return it.

    Raises
    ------
    KeyError
        If no exercise of that name is registered.
    """
    if name not in _REGISTRY:
        raise KeyError(f"name: no exercise {name!r} is registered")
    return _REGISTRY.pop(name)


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    _LOADED = True


def exercises() -> dict[str, Exercise]:
    """All registered exercises, by name."""
    _load_all()
    return dict(_REGISTRY)


def _make_cases(ex: Exercise, num_cases: int, seed: int):
    """Case ``i`` draws its inputs with a CPU generator seeded with ``seed + i``."""
    for case in range(num_cases):
        g = torch.Generator()
        g.manual_seed(seed + case)
        try:
            yield ex.make_inputs(g)
        except Exception as exc:  # a defect of the exercise, not of the student's code
            raise RuntimeError(f"exercise {ex.name!r}: making the inputs of case {case + 1} failed "
                               f"({type(exc).__name__}: {exc}); please report this") from None


def cases(exercise_name: str, num_cases: int | None = None, seed: int = 0) -> list[Inputs]:
    """The randomized inputs :func:`course_lib.grading.check` uses, to call and inspect a function on them.

    Parameters
    ----------
    exercise_name : str
        A registered exercise.
    num_cases : int, optional
        Default: the exercise's own ``num_cases``.
    seed : int
        Seed of the first case, as in :func:`course_lib.grading.check`.

    Returns
    -------
    list of (args, kwargs)
        Case ``i`` is exactly the input of ``check``'s case ``i + 1`` with the same seed.

    Raises
    ------
    ValueError
        Unknown exercise name, or ``num_cases < 1``.
    """
    known = exercises()
    if exercise_name not in known:
        raise ValueError(f"exercise_name: unknown exercise {exercise_name!r}; known exercises: "
                         f"{', '.join(sorted(known))}")
    ex = known[exercise_name]
    n = ex.num_cases if num_cases is None else num_cases
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"num_cases: expected an int >= 1, got {n!r}")
    return list(_make_cases(ex, n, seed))
