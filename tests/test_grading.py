"""Tests of course_lib.grading: check() passes correct code, reports the first mismatch readably,
and never shows the reference implementation's source."""

from __future__ import annotations

import inspect
from collections import namedtuple

import numpy as np
import pytest
import torch

from course_lib import exercises, grading
from course_lib.grading import Exercise, register

PREFIX = "_test_grading_"


@pytest.fixture(autouse=True)
def _clean_registry():
    """Each test registers its own exercises; remove them afterwards."""
    yield
    for name in [n for n in exercises.exercises() if n.startswith(PREFIX)]:
        exercises.unregister(name)


def _secret_reference(mean, logvar):
    """SECRET-DOCSTRING: closed-form KL(N(mean, exp(logvar)) || N(0, 1)), summed over dims."""
    secret_variance = torch.exp(logvar)  # SECRET-COMMENT
    return 0.5 * (mean.pow(2) + secret_variance - 1.0 - logvar).sum(dim=-1)


def _kl_inputs(g):
    mean = torch.randn(4, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(4, 3, generator=g, dtype=torch.float64)
    return (mean, logvar), {}


def _register_kl(name="kl", **kw):
    return register(Exercise(PREFIX + name, _secret_reference, _kl_inputs,
                             description="KL per example, nats", **kw))


def _source_lines(fn):
    return [ln.strip() for ln in inspect.getsource(fn).splitlines() if len(ln.strip()) > 3]


def _run_failing(name, fn, capsys):
    with pytest.raises(AssertionError) as info:
        grading.check(name, fn)
    printed = capsys.readouterr().out
    return str(info.value), printed


def _assert_no_leak(*texts):
    for text in texts:
        for line in _source_lines(_secret_reference):
            assert line not in text, f"reference source leaked: {line!r}"
        assert "SECRET" not in text


# --- passing -----------------------------------------------------------------------------------


def test_correct_function_passes_and_prints_summary(capsys):
    _register_kl()

    def student(mean, logvar):
        var = logvar.exp()
        return (0.5 * (var + mean**2 - 1 - logvar)).sum(-1)

    assert grading.check(PREFIX + "kl", student) is None
    out = capsys.readouterr().out
    assert "\u2713" in out and "5/5" in out and "KL per example, nats" in out
    _assert_no_leak(out)


def test_verbose_false_prints_nothing(capsys):
    _register_kl()
    grading.check(PREFIX + "kl", _secret_reference, verbose=False)
    assert capsys.readouterr().out == ""


def test_num_cases_and_seeds_drive_make_inputs():
    seeds = []

    def make_inputs(g):
        seeds.append(g.initial_seed())
        return (torch.randn(3, generator=g),), {}

    register(Exercise(PREFIX + "seeds", lambda x: x * 2, make_inputs, num_cases=4))
    grading.check(PREFIX + "seeds", lambda x: 2 * x, verbose=False)
    assert seeds == [0, 1, 2, 3]
    seeds.clear()
    grading.check(PREFIX + "seeds", lambda x: 2 * x, num_cases=2, seed=10, verbose=False)
    assert seeds == [10, 11]


def test_student_and_reference_get_separate_copies():
    def mutating_reference(x):
        x.mul_(2.0)  # mutates its input in place
        return x

    register(Exercise(PREFIX + "mutate", mutating_reference,
                      lambda g: ((torch.randn(5, generator=g, dtype=torch.float64),), {})))
    # Correct only if the student sees the original (unmutated) input.
    grading.check(PREFIX + "mutate", lambda x: x * 2.0, verbose=False)

    def mutating_student(x):
        out = x * 2.0
        x.zero_()
        return out

    grading.check(PREFIX + "mutate", mutating_student, verbose=False)


def test_generator_inputs_are_copied_with_their_state():
    def ref(n, generator):
        return torch.randn(n, generator=generator, dtype=torch.float64)

    def make_inputs(g):
        h = torch.Generator()
        h.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
        return (3,), {"generator": h}

    register(Exercise(PREFIX + "gen", ref, make_inputs))
    grading.check(PREFIX + "gen", ref, verbose=False)


# --- failing -----------------------------------------------------------------------------------


def test_wrong_value_reports_max_abs_difference_and_index(capsys):
    _register_kl()

    def student(mean, logvar):
        out = _secret_reference(mean, logvar).clone()
        out[2] += 0.5
        return out

    msg, printed = _run_failing(PREFIX + "kl", student, capsys)
    assert "max abs difference 0.5" in msg
    assert "index (2,)" in msg
    assert "case 1 of 5" in msg and "shape=(4, 3)" in msg and "mean=" in msg
    assert "\u2717" in printed and msg in printed
    _assert_no_leak(msg, printed)


def test_worst_index_is_reported_for_matrices(capsys):
    register(Exercise(PREFIX + "mat", lambda a: a.clone(),
                      lambda g: ((torch.randn(3, 4, generator=g, dtype=torch.float64),), {})))

    def student(a):
        out = a.clone()
        out[0, 0] += 0.01
        out[1, 3] -= 0.3
        return out

    msg, _ = _run_failing(PREFIX + "mat", student, capsys)
    assert "max abs difference 0.3" in msg and "index (1, 3)" in msg
    assert "2 of 12 elements" in msg


def test_wrong_shape_reports_both_shapes(capsys):
    register(Exercise(PREFIX + "shape", lambda a: a.clone(),
                      lambda g: ((torch.randn(3, 2, generator=g),), {})))
    msg, printed = _run_failing(PREFIX + "shape", lambda a: a.T.clone(), capsys)
    assert "shape: expected (3, 2), got (2, 3)" in msg


def test_wrong_dtype_category_and_type(capsys):
    register(Exercise(PREFIX + "dtype", lambda a: a * 1.5,
                      lambda g: ((torch.randn(4, generator=g),), {})))
    msg, _ = _run_failing(PREFIX + "dtype", lambda a: (a * 1.5).long(), capsys)
    assert "dtype" in msg and "floating" in msg and "int64" in msg
    msg, _ = _run_failing(PREFIX + "dtype", lambda a: (a * 1.5).numpy(), capsys)
    assert "expected a torch.Tensor, got numpy.ndarray" in msg


def test_nan_is_reported_as_non_finite(capsys):
    _register_kl()

    def student(mean, logvar):
        out = _secret_reference(mean, logvar).clone()
        out[1] = float("nan")
        return out

    msg, _ = _run_failing(PREFIX + "kl", student, capsys)
    assert "non-finite" in msg and "index (1,)" in msg and "got nan" in msg


def test_not_implemented_is_reported_as_not_attempted(capsys):
    _register_kl()

    def student(mean, logvar):
        raise NotImplementedError()

    msg, printed = _run_failing(PREFIX + "kl", student, capsys)
    assert "raised NotImplementedError" in msg and "not attempted" in msg
    _assert_no_leak(msg, printed)


def test_other_exception_is_reported_with_type_message_and_line(capsys):
    _register_kl()

    def student(mean, logvar):
        return mean @ logvar  # (4, 3) @ (4, 3) cannot be multiplied

    msg, printed = _run_failing(PREFIX + "kl", student, capsys)
    assert "raised RuntimeError" in msg and "cannot be multiplied" in msg
    assert "mean @ logvar" in msg  # points at the student's own line
    _assert_no_leak(msg, printed)


def test_reference_failure_is_a_runtime_error_without_its_source():
    def failing_reference(x):
        secret_line_of_the_reference = x.sum() / 0  # noqa: F841
        raise KeyError("boom")

    register(Exercise(PREFIX + "broken", failing_reference, lambda g: ((torch.ones(2),), {})))
    with pytest.raises(RuntimeError, match="reference failed") as info:
        grading.check(PREFIX + "broken", lambda x: x)
    assert "secret_line" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


# --- structured outputs and custom comparators --------------------------------------------------


def test_tuple_outputs(capsys):
    def ref(x):
        return x.mean(0), x.var(0)

    register(Exercise(PREFIX + "tuple", ref,
                      lambda g: ((torch.randn(6, 2, generator=g, dtype=torch.float64),), {})))
    grading.check(PREFIX + "tuple", lambda x: (x.sum(0) / 6, x.var(0, correction=1)), verbose=False)
    msg, _ = _run_failing(PREFIX + "tuple", lambda x: (x.mean(0), x.var(0, correction=0)), capsys)
    assert msg.count("output[1]") == 1 and "max abs difference" in msg
    msg, _ = _run_failing(PREFIX + "tuple", lambda x: x.mean(0), capsys)
    assert "expected a tuple of 2 items, got torch.Tensor" in msg
    msg, _ = _run_failing(PREFIX + "tuple", lambda x: (x.mean(0),), capsys)
    assert "expected 2 items, got 1" in msg


def test_namedtuple_and_dict_outputs(capsys):
    Stats = namedtuple("Stats", ["mean", "variance"])
    register(Exercise(PREFIX + "named", lambda x: Stats(x.mean(0), x.var(0)),
                      lambda g: ((torch.randn(6, 2, generator=g, dtype=torch.float64),), {})))
    grading.check(PREFIX + "named", lambda x: Stats(x.mean(0), x.var(0)), verbose=False)
    grading.check(PREFIX + "named", lambda x: (x.mean(0), x.var(0)), verbose=False)  # plain tuple ok
    msg, _ = _run_failing(PREFIX + "named", lambda x: Stats(x.mean(0), 2 * x.var(0)), capsys)
    assert "output.variance" in msg

    register(Exercise(PREFIX + "dict", lambda x: {"a": x + 1, "b": 2.0},
                      lambda g: ((torch.randn(3, generator=g),), {})))
    grading.check(PREFIX + "dict", lambda x: {"b": torch.tensor(2.0), "a": 1 + x}, verbose=False)
    msg, _ = _run_failing(PREFIX + "dict", lambda x: {"a": x + 1, "c": 2.0}, capsys)
    assert "missing: 'b'" in msg and "unexpected: 'c'" in msg
    msg, _ = _run_failing(PREFIX + "dict", lambda x: {"a": x + 1, "b": 2.5}, capsys)
    assert "output['b']" in msg and "max abs difference 0.5" in msg


def test_number_and_numpy_outputs(capsys):
    register(Exercise(PREFIX + "num", lambda a, b: a * b,
                      lambda g: ((float(torch.rand(1, generator=g)), 3.0), {})))
    grading.check(PREFIX + "num", lambda a, b: torch.tensor(a * b, dtype=torch.float64), verbose=False)
    msg, _ = _run_failing(PREFIX + "num", lambda a, b: a * b + 1e-3, capsys)
    assert "max abs difference 0.001" in msg
    register(Exercise(PREFIX + "np", lambda a: np.cumsum(a),
                      lambda g: ((torch.randn(5, generator=g).numpy(),), {})))
    grading.check(PREFIX + "np", lambda a: np.cumsum(a), verbose=False)
    msg, _ = _run_failing(PREFIX + "np", lambda a: np.cumsum(a)[::-1].copy(), capsys)
    assert "max abs difference" in msg


def test_tolerances_are_used(capsys):
    register(Exercise(PREFIX + "tol", lambda a: a.clone(),
                      lambda g: ((torch.ones(3, dtype=torch.float64),), {}), rtol=0.0, atol=1e-3))
    grading.check(PREFIX + "tol", lambda a: a + 5e-4, verbose=False)
    msg, _ = _run_failing(PREFIX + "tol", lambda a: a + 2e-3, capsys)
    assert "atol=0.001" in msg


def test_custom_comparator_up_to_sign(capsys):
    def compare(got, expected, args, kwargs):
        assert isinstance(args, tuple) and isinstance(kwargs, dict)
        if got.shape != expected.shape:
            return f"shape {tuple(got.shape)}"
        ok = torch.allclose(got, expected) or torch.allclose(got, -expected)
        return None if ok else "not equal up to sign"

    register(Exercise(PREFIX + "sign", lambda v: v / v.norm(),
                      lambda g: ((torch.randn(4, generator=g, dtype=torch.float64),), {}),
                      compare=compare))
    grading.check(PREFIX + "sign", lambda v: -v / v.norm(), verbose=False)
    msg, _ = _run_failing(PREFIX + "sign", lambda v: v, capsys)
    assert "not equal up to sign" in msg and "case 1 of 5" in msg
    # a comparator that cannot handle the student's output is reported as a mismatch
    msg, _ = _run_failing(PREFIX + "sign", lambda v: None, capsys)
    assert "could not be compared" in msg and msg.endswith("got None")


# --- registry ----------------------------------------------------------------------------------


def test_unknown_exercise_lists_known_names():
    _register_kl()
    with pytest.raises(ValueError, match="exercise_name") as info:
        grading.check(PREFIX + "does_not_exist", _secret_reference)
    assert PREFIX + "kl" in str(info.value)


def test_register_duplicate_name_raises():
    _register_kl()
    with pytest.raises(ValueError, match="registered twice"):
        _register_kl()


def test_bad_arguments():
    _register_kl()
    with pytest.raises(TypeError, match="fn"):
        grading.check(PREFIX + "kl", 3)
    with pytest.raises(ValueError, match="num_cases"):
        grading.check(PREFIX + "kl", _secret_reference, num_cases=0)
    with pytest.raises(ValueError, match="seed"):
        grading.check(PREFIX + "kl", _secret_reference, seed=-1)


def test_no_expected_helper_that_would_leak_solutions():
    assert not hasattr(grading, "expected")


def test_check_prediction_accepts_any_valid_letter_and_gives_nothing_away(capsys):
    for letter in "abcd":
        assert grading.check_prediction(letter, "abcd") == letter
        out = capsys.readouterr().out
        assert out == f"prediction recorded: {letter!r} (graded after the run)\n"


def test_check_prediction_placeholder_is_not_attempted():
    with pytest.raises(NotImplementedError, match="set prediction to one of 'a', 'b', 'c'"):
        grading.check_prediction(None, "abc")


@pytest.mark.parametrize("bad", ["d", "A", "ab", "", 1, ["a"]])
def test_check_prediction_rejects_other_answers_with_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"prediction: expected one of 'a', 'b', 'c', got"):
        grading.check_prediction(bad, "abc")


@pytest.mark.parametrize("choices", ["", "aa", None, ["a", "b"]])
def test_check_prediction_bad_choices(choices):
    with pytest.raises(ValueError, match="choices"):
        grading.check_prediction("a", choices)
