"""Homework pipeline on nbgrader: release student versions, grade submitted notebooks.

The instructor notebooks in ``notebooks/`` are the single source. Each notebook is one nbgrader
*assignment* whose id is the notebook's stem (``01_autoencoders``). The nbgrader course layout
(``nbgrader_config.py``, ``source/``, ``release/``, ``submitted/``, ``autograded/``,
``feedback/``, ``gradebook.db``) is generated under ``build/nbgrader/`` and never edited by hand.

Two functions do the work (``python -m assignments --help`` gives the same as a CLI):

- :func:`release` copies notebooks into ``source/`` and runs nbgrader's ``generate_assignment``:
  solutions become ``raise NotImplementedError()`` stubs, check cells are locked and
  checksummed, outputs are cleared, and the student version lands in ``release/<id>/``.
- :func:`grade` copies a folder of submissions into ``submitted/``, runs nbgrader's
  ``autograde`` (each submission in its own sandboxed kernel, :mod:`assignments.sandbox`, with a
  per-cell timeout that interrupts a cell running too long) and ``generate_feedback``, and writes
  a per-student, per-exercise score table (``grades.csv``, with the reason of every failure, and
  ``needs manual grading`` for answers an instructor grades in formgrader) and a wide table
  (``scores.csv``).

Student mode (``python3 course.py lab --student``) is :mod:`assignments.student`.
"""

from assignments.pipeline import (
    CELL_TIMEOUT,
    COURSE_ID,
    DEFAULT_COURSE,
    GRADED_BY_HAND,
    NEEDS_MANUAL,
    NOTEBOOKS,
    ExerciseCells,
    GradeReport,
    Row,
    discover_exercises,
    grade,
    inject_solutions,
    release,
    resolve_notebooks,
)
from assignments.sandbox import Limits

__all__ = [
    "CELL_TIMEOUT",
    "COURSE_ID",
    "DEFAULT_COURSE",
    "GRADED_BY_HAND",
    "Limits",
    "NEEDS_MANUAL",
    "NOTEBOOKS",
    "ExerciseCells",
    "GradeReport",
    "Row",
    "discover_exercises",
    "grade",
    "inject_solutions",
    "release",
    "resolve_notebooks",
]
