"""Exercise checks with readable feedback: ``check(exercise_name, fn)``.

Each exercise is registered once (in ``course_lib/exercises/<topic>.py``) with a reference
implementation and a generator of randomized inputs; the registry is :mod:`course_lib.exercises`,
whose ``Exercise``, ``register``, ``exercises`` and ``cases`` are re-exported here. ``check`` calls
the student's function and the reference on the same inputs and reports what passed and, for a
failure, the first mismatch (shape, dtype, max abs difference and where, or the exception), never
the reference's code.

Notebooks call it from nbgrader's autograded test cells (DESIGN.md §5), e.g.::

    from course_lib import grading
    grading.check("kl_univariate_gaussians", kl_univariate_gaussians)
"""

from __future__ import annotations

import copy
import inspect
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from course_lib.exercises import Exercise, cases, exercises, register

__all__ = ["Exercise", "register", "check", "check_prediction", "exercises", "cases"]


# ---------------------------------------------------------------------------------------------
# check_prediction: the visible check of a "predict, then run" question
# ---------------------------------------------------------------------------------------------


def check_prediction(prediction: Any, choices: str) -> str:
    """Validate a predict-then-run answer before the run, without saying whether it is right.

    The visible check of every "predict, then run" exercise: the student sets ``prediction`` to one
    letter before running the cells that compute the answer. This accepts any valid letter and
    prints that it was recorded; whether it is *correct* is a hidden test in the notebook, so the
    visible check gives nothing away.

    Parameters
    ----------
    prediction : str or None
        The student's answer; ``None`` (the student version's placeholder) means not attempted.
    choices : str
        The valid letters, e.g. ``"abc"``.

    Returns
    -------
    str
        ``prediction``, unchanged.

    Raises
    ------
    NotImplementedError
        ``prediction`` is ``None`` (nbgrader and ``course.py lab --student --headless`` report the
        exercise as not attempted).
    ValueError
        ``prediction`` is not one of ``choices`` (the message lists them and what came), or
        ``choices`` is empty or not made of distinct single letters.
    """
    if not isinstance(choices, str) or not choices or len(set(choices)) != len(choices):
        raise ValueError(f"choices: expected a string of distinct letters such as 'abc', got {choices!r}")
    options = ", ".join(repr(c) for c in choices)
    if prediction is None:
        raise NotImplementedError(f"set prediction to one of {options}")
    if not isinstance(prediction, str) or len(prediction) != 1 or prediction not in choices:
        raise ValueError(f"prediction: expected one of {options}, got {prediction!r}")
    print(f"prediction recorded: {prediction!r} (graded after the run)")
    return prediction


# ---------------------------------------------------------------------------------------------
# check: run the student's function and the reference on the same randomized inputs
# ---------------------------------------------------------------------------------------------


def check(exercise_name: str, fn: Callable[..., Any], num_cases: int | None = None, seed: int = 0,
          verbose: bool = True) -> None:
    """Compare a student's function with the registered reference on randomized inputs.

    For each case ``i`` a CPU ``torch.Generator`` seeded with ``seed + i`` is passed to the
    exercise's ``make_inputs``; the student and the reference each get their own deep copy of the
    inputs (so mutating an input cannot affect the other call). Outputs are compared recursively
    (tensors, NumPy arrays, numbers, and tuples/lists/dicts/NamedTuples of them): type, shape,
    dtype category (bool/integer/floating/complex), device, non-finite values, then
    ``allclose(rtol, atol)``; an exercise's own ``compare`` replaces the elementwise comparison.
    The reference's source code is never shown.

    Parameters
    ----------
    exercise_name : str
        Name of a registered exercise (see :func:`exercises`).
    fn : callable
        The student's implementation, called like the reference.
    num_cases : int, optional
        Number of randomized cases; defaults to the exercise's ``num_cases``.
    seed : int
        Seed of the first case; case ``i`` uses ``seed + i``.
    verbose : bool
        Print a one-line summary on success and the report on failure.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        If ``exercise_name`` is not registered (the message lists the known names).
    TypeError
        If ``fn`` is not callable.
    AssertionError
        If any case does not match; the message is the first mismatch (which case, the inputs'
        shapes, and what differs: shape, dtype, max abs difference and where, or the exception).
    """
    known = exercises()
    if exercise_name not in known:
        names = ", ".join(sorted(known)) or "(none registered)"
        raise ValueError(f"exercise_name: unknown exercise {exercise_name!r}; known exercises: {names}")
    if not callable(fn):
        raise TypeError(f"fn: expected a function, got {type(fn).__name__}")
    ex = known[exercise_name]
    n = ex.num_cases if num_cases is None else num_cases
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"num_cases: expected an int >= 1, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
    what = ex.description or "outputs compared elementwise"
    if ex.compare is None:
        what += f"; rtol={ex.rtol:g}, atol={ex.atol:g}"

    failures: list[tuple[int, str]] = []
    not_attempted = False
    for case, (args, kwargs) in enumerate(cases(exercise_name, n, seed)):
        pristine = copy.deepcopy((tuple(args), dict(kwargs)))
        ref_args, ref_kwargs = copy.deepcopy(pristine)
        try:
            expected_out = ex.reference(*ref_args, **ref_kwargs)
        except Exception as exc:
            # ``from None`` and no traceback text: a traceback would show the reference's lines.
            raise RuntimeError(f"exercise {ex.name!r}: the reference failed on case {case + 1} "
                               f"({type(exc).__name__}: {exc}); please report this") from None
        stu_args, stu_kwargs = copy.deepcopy(pristine)
        where = f"case {case + 1} of {n} (inputs: {_describe_inputs(*pristine, ex.reference)})"
        try:
            out = fn(*stu_args, **stu_kwargs)
        except NotImplementedError as exc:
            msg = _describe_exception(exc, fn)
            failures.append((case, f"{ex.name}: your function {msg}: the exercise is not attempted "
                                   f"yet (replace `raise NotImplementedError()` with your code)"))
            not_attempted = True
            break  # every other case would say the same
        except Exception as exc:
            failures.append((case, f"{ex.name}, {where}: your function {_describe_exception(exc, fn)}"))
            continue
        if ex.compare is not None:
            try:
                mismatch = ex.compare(out, expected_out, *copy.deepcopy(pristine))
            except Exception as exc:  # e.g. the student returned None where a tensor was expected
                mismatch = (f"output: could not be compared ({type(exc).__name__}: {exc}); expected "
                            f"{_describe_value(expected_out)}, got {_describe_value(out)}")
        else:
            mismatch = _compare(out, expected_out, "output", ex.rtol, ex.atol)
        if mismatch:
            failures.append((case, f"{ex.name}, {where}: {mismatch}"))

    if not failures:
        if verbose:
            print(f"\u2713 {ex.name}: {n}/{n} randomized cases match ({what})")
        return
    first = failures[0][1]
    if verbose:
        tried = failures[0][0] + 1 if not_attempted else n
        passed = tried - len(failures)
        lines = [f"\u2717 {ex.name}: {passed}/{tried} randomized cases match ({what})",
                 f"  first mismatch: {first}"]
        if len(failures) > 1:
            lines.append("  failing cases: " + ", ".join(str(c + 1) for c, _ in failures))
        print("\n".join(lines))
    raise AssertionError(first)


# --- describing inputs and exceptions ---------------------------------------------------------


def _describe_value(x: Any, depth: int = 0) -> str:
    if isinstance(x, torch.Tensor):
        dev = "" if x.device.type == "cpu" else f", device={x.device}"
        if x.dim() == 0:
            return f"tensor({x.item():.4g}, dtype={str(x.dtype).replace('torch.', '')}{dev})"
        return f"Tensor(shape={tuple(x.shape)}, dtype={str(x.dtype).replace('torch.', '')}{dev})"
    if isinstance(x, np.ndarray):
        return f"ndarray(shape={x.shape}, dtype={x.dtype})"
    if isinstance(x, torch.Generator):
        return "torch.Generator"
    if isinstance(x, (bool, int, float, complex, str, type(None), np.generic)):
        r = repr(x)
        return r if len(r) <= 40 else r[:37] + "..."
    if isinstance(x, (list, tuple)) and depth < 2:
        inner = ", ".join(_describe_value(v, depth + 1) for v in x[:6])
        if len(x) > 6:
            inner += f", ... ({len(x)} items)"
        return f"[{inner}]" if isinstance(x, list) else f"({inner})"
    if isinstance(x, dict) and depth < 2:
        return "{" + ", ".join(f"{k!r}: {_describe_value(v, depth + 1)}" for k, v in list(x.items())[:6]) + "}"
    if isinstance(x, torch.nn.Module):
        return f"{type(x).__name__} module"
    if callable(x):
        return f"function {getattr(x, '__name__', type(x).__name__)}"
    return type(x).__name__


def _describe_inputs(args: tuple, kwargs: dict, names: Callable | None = None) -> str:
    """Shapes and small values of the inputs, named after ``names``' parameters when possible."""
    if names is not None:
        try:  # only the parameter names of the signature are used, never the body
            bound = inspect.signature(names).bind(*args, **kwargs)
            args, kwargs = (), dict(bound.arguments)
        except (TypeError, ValueError):
            pass
    parts = [_describe_value(a) for a in args] + [f"{k}={_describe_value(v)}" for k, v in kwargs.items()]
    return ", ".join(parts) if parts else "no arguments"


def _describe_exception(exc: BaseException, fn: Callable) -> str:
    """``raised Type: message (line N: `code`)``, pointing into the student's own code only."""
    text = f"raised {type(exc).__name__}"
    if str(exc):
        text += f": {exc}"
    code = getattr(fn, "__code__", None)
    if code is not None:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == code.co_filename]
        if frames:
            f = frames[-1]
            text += f" (at line {f.lineno}" + (f": `{f.line.strip()}`)" if f.line else ")")
    return text


# --- comparing outputs ------------------------------------------------------------------------


def _category(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    if dtype.is_complex:
        return "complex"
    if dtype.is_floating_point:
        return "floating"
    return "integer"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _type_name(x: Any) -> str:
    t = type(x)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__.split('.')[0]}.{t.__name__}"


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _fmt_index(idx: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(i) for i in idx) + ("," if len(idx) == 1 else "") + ")"


def _compare(got: Any, expected: Any, path: str, rtol: float, atol: float) -> str | None:
    """First mismatch between ``got`` and ``expected`` as a sentence, or None when they agree."""
    # Structures first.
    if _is_namedtuple(expected) or isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)):
            return (f"{path}: expected a {_type_name(expected)} of {len(expected)} items, "
                    f"got {_type_name(got)}")
        if len(got) != len(expected):
            return f"{path}: expected {len(expected)} items, got {len(got)}"
        names = type(expected)._fields if _is_namedtuple(expected) else None
        for i, (g, e) in enumerate(zip(got, expected)):
            sub = f"{path}.{names[i]}" if names else f"{path}[{i}]"
            msg = _compare(g, e, sub, rtol, atol)
            if msg:
                return msg
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{path}: expected a dict, got {_type_name(got)}"
        if set(got) != set(expected):
            missing = sorted(map(repr, set(expected) - set(got)))
            extra = sorted(map(repr, set(got) - set(expected)))
            return (f"{path}: keys differ (missing: {', '.join(missing) or 'none'}; "
                    f"unexpected: {', '.join(extra) or 'none'})")
        for k in expected:
            msg = _compare(got[k], expected[k], f"{path}[{k!r}]", rtol, atol)
            if msg:
                return msg
        return None
    if expected is None:
        return None if got is None else f"{path}: expected None, got {_type_name(got)}"
    if isinstance(expected, (bool, np.bool_)):
        g = got.item() if isinstance(got, torch.Tensor) and got.numel() == 1 else got
        if not isinstance(g, (bool, np.bool_)):
            return f"{path}: expected a bool, got {_type_name(got)}"
        return None if bool(g) == bool(expected) else f"{path}: expected {bool(expected)}, got {bool(g)}"

    # Arrays and numbers.
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"{path}: expected a torch.Tensor, got {_type_name(got)}"
        if got.device != expected.device:
            return f"{path}: device: expected {expected.device}, got {got.device}"
        return _compare_arrays(got.detach(), expected.detach(), path, rtol, atol)
    if isinstance(expected, np.ndarray):
        if not isinstance(got, np.ndarray):
            return f"{path}: expected a numpy.ndarray, got {_type_name(got)}"
        return _compare_arrays(torch.from_numpy(np.asarray(got)), torch.from_numpy(expected), path,
                               rtol, atol)
    if _is_number(expected) or isinstance(expected, complex):
        if isinstance(got, torch.Tensor) and got.numel() == 1 and got.dim() == 0:
            got = got.detach().cpu().item()
        elif isinstance(got, np.ndarray) and got.shape == ():
            got = got.item()
        if not (_is_number(got) or isinstance(got, complex)):
            return f"{path}: expected a number, got {_type_name(got)}"
        if isinstance(expected, (int, np.integer)) and not isinstance(got, (int, np.integer)):
            if not float(got).is_integer():
                return f"{path}: expected the integer {expected}, got {got!r}"
        dt = torch.complex128 if isinstance(got, complex) or isinstance(expected, complex) else torch.float64
        return _compare_arrays(torch.tensor(got, dtype=dt), torch.tensor(expected, dtype=dt), path,
                               rtol, atol)

    # Anything else: equality.
    try:
        equal = bool(got == expected)
    except Exception:
        equal = False
    return None if equal else f"{path}: expected {_describe_value(expected)}, got {_describe_value(got)}"


def _compare_arrays(got: torch.Tensor, expected: torch.Tensor, path: str, rtol: float,
                    atol: float) -> str | None:
    if tuple(got.shape) != tuple(expected.shape):
        return f"{path}: shape: expected {tuple(expected.shape)}, got {tuple(got.shape)}"
    cg, ce = _category(got.dtype), _category(expected.dtype)
    if cg != ce:
        return f"{path}: dtype: expected a {ce} tensor ({expected.dtype}), got {got.dtype}"
    if got.numel() == 0:
        return None
    got = got.cpu()
    expected = expected.cpu()
    if ce in ("bool", "integer"):
        bad = got != expected
        if bool(bad.any()):
            idx = tuple(int(i) for i in np.unravel_index(int(bad.flatten().nonzero()[0]), got.shape))
            at = f" at index {_fmt_index(idx)}" if got.dim() else ""
            return (f"{path}: {int(bad.sum())} of {got.numel()} values differ; first{at}: "
                    f"got {got[idx].item()}, expected {expected[idx].item()}")
        return None
    g = got.to(torch.complex128 if ce == "complex" else torch.float64)
    e = expected.to(g.dtype)

    def at(idx: tuple[int, ...]) -> str:
        return f" at index {_fmt_index(idx)}" if g.dim() else ""

    # Non-finite values where the reference has finite ones (or a different non-finite value).
    g_nan, e_nan = torch.isnan(g), torch.isnan(e)
    bad_nan = g_nan != e_nan
    bad_inf = (~g_nan & ~e_nan) & (torch.isinf(g) | torch.isinf(e)) & (g != e)
    bad_nonfinite = bad_nan | bad_inf
    if bool(bad_nonfinite.any()):
        flat = int(bad_nonfinite.flatten().nonzero()[0])
        idx = tuple(int(i) for i in np.unravel_index(flat, g.shape))
        return (f"{path}: non-finite values: {int(bad_nonfinite.sum())} of {g.numel()} elements "
                f"differ in being NaN/inf; first{at(idx)}: got {_fmt(g[idx])}, "
                f"expected {_fmt(e[idx])}")
    finite = torch.isfinite(g) & torch.isfinite(e)
    diff = torch.where(finite, (g - e).abs(), torch.zeros((), dtype=torch.float64))
    tol = atol + rtol * torch.where(finite, e.abs(), torch.zeros((), dtype=torch.float64))
    bad = diff > tol
    if not bool(bad.any()):
        return None
    flat = int(diff.flatten().argmax())
    idx = tuple(int(i) for i in np.unravel_index(flat, g.shape))
    return (f"{path}: max abs difference {diff.flatten()[flat].item():.3g}{at(idx)}: "
            f"got {_fmt(g[idx])}, expected {_fmt(e[idx])} "
            f"({int(bad.sum())} of {g.numel()} elements outside rtol={rtol:g}, atol={atol:g})")


def _fmt(x: torch.Tensor) -> str:
    return f"{x.item():.6g}"
