"""Every registered exercise, automatically: its reference passes its own check and a stub fails.

A new exercise (``register(Exercise(...))`` in ``course_lib/exercises/<topic>.py``) is covered here
without touching this file; its topic's test file checks the reference against an independent
oracle and shows typical mistakes failing with a readable message.
"""

from __future__ import annotations

import pytest
import torch

from course_lib import grading

EXERCISES = sorted(grading.exercises())


def test_exercises_are_registered():
    assert len(EXERCISES) >= 2 * 6, EXERCISES  # at least two per notebook


@pytest.mark.parametrize("name", EXERCISES)
def test_reference_passes_its_own_check(name, capsys):
    grading.check(name, grading.exercises()[name].reference)
    assert f"✓ {name}" in capsys.readouterr().out


@pytest.mark.parametrize("name", EXERCISES)
def test_stub_fails_as_not_attempted(name):
    def stub(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="not attempted"):
        grading.check(name, stub, verbose=False)


@pytest.mark.parametrize("name", EXERCISES)
def test_exercise_says_what_it_compares_and_cases_are_reproducible(name):
    ex = grading.exercises()[name]
    assert ex.description, f"{name}: no description of what the check compares"
    a, b = grading.cases(name, num_cases=2), grading.cases(name, num_cases=2)
    for (args_a, kw_a), (args_b, kw_b) in zip(a, b):
        for x, y in zip(args_a, args_b):
            if isinstance(x, torch.Tensor):
                torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_register_and_unregister():
    from course_lib import exercises

    ex = exercises.Exercise("_test_registry_tmp", lambda x: x, lambda g: ((torch.zeros(2),), {}),
                            description="identity")
    assert exercises.register(ex) is ex and exercises.register(ex) is ex  # same object: no error
    assert "_test_registry_tmp" in exercises.exercises() and "_test_registry_tmp" in grading.exercises()
    with pytest.raises(ValueError, match="registered twice"):
        exercises.register(exercises.Exercise("_test_registry_tmp", lambda x: x, ex.make_inputs))
    assert exercises.unregister("_test_registry_tmp") is ex
    assert "_test_registry_tmp" not in exercises.exercises()
    with pytest.raises(KeyError, match="_test_registry_tmp"):
        exercises.unregister("_test_registry_tmp")
