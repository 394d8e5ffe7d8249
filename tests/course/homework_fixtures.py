"""The small fixture notebook in the course's nbgrader form, shared by the homework tests (the
pipeline, student mode, manual grading, the sandbox). It is fast: two exercises (one checked by
``grading.check``, one by a visible and a hidden assert), optionally with a manually graded
derivation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat


def nbgrader_md(grade_id, *, solution=False, grade=False, points=None, task=False):
    """Cell metadata as nbgrader's create_assignment writes it (schema 3)."""
    md = {"grade": grade, "grade_id": grade_id, "locked": not solution, "schema_version": 3,
          "solution": solution, "task": task}
    if points is not None:
        md["points"] = points
    return {"nbgrader": md}


SETUP = '''\
import torch
from course_lib import grading
from course_lib.grading import Exercise, register
register(Exercise("fixture_affine", reference=lambda x: 2 * x + 1,
                  make_inputs=lambda g: ((torch.randn(4, generator=g),), {}),
                  description="2 x + 1 elementwise", num_cases=2))'''

AFFINE = '''\
def affine(x):
    """Return 2 x + 1 elementwise; x: tensor (N,) -> (N,)."""
    ### BEGIN SOLUTION
    return 2 * x + 1
    ### END SOLUTION'''

SQUARE = '''\
def square(x):
    """Return x squared (a number)."""
    ### BEGIN SOLUTION
    return x * x
    ### END SOLUTION'''

SQUARE_CHECK = '''\
assert square(3) == 9, "square(3) should be 9"
### BEGIN HIDDEN TESTS
assert square(-4) == 16, "square(-4) should be 16"
### END HIDDEN TESTS'''

#: A derivation graded by hand: the model answer and the rubric are in the instructor version
#: only (between the solution delimiters, which release replaces by "YOUR ANSWER HERE").
DERIVATION_PROMPT = '''\
**Derivation (2 points, graded by hand).** Show that the minimizer of $E[(X - c)^2]$ over $c$ is
$c = E[X]$.'''
DERIVATION_ANSWER = '''\
### BEGIN SOLUTION
Model answer: $\\frac{d}{dc} E[(X - c)^2] = -2 (E[X] - c) = 0$ gives $c^\\star = E[X]$; the second
derivative $2 > 0$ makes it a minimum.

Rubric: 1 point for setting the derivative to zero, 1 point for checking it is a minimum
(convexity); no credit for quoting the result.
### END SOLUTION'''
#: Lines of the instructor-only text that must never reach a student.
SECRET_LINES = ("return 2 * x + 1", "return x * x", "square(-4) == 16", "Model answer",
                "Rubric: 1 point for setting the derivative")


def make_fixture(folder: Path, name: str = "07_fixture", *, derivation: bool = False,
                 after_affine: str = "y = 2 * torch.ones(3) + 1\nassert y.sum() == 9") -> Path:
    """Write a fixture notebook ``folder/name.ipynb`` and return its path; ``derivation`` adds a
    manually graded markdown answer cell (2 points) after the exercises."""
    cells = [
        nbformat.v4.new_markdown_cell("# Fixture\nTwo exercises."),
        nbformat.v4.new_code_cell(SETUP),
        nbformat.v4.new_code_cell(AFFINE, metadata=nbgrader_md("affine", solution=True)),
        nbformat.v4.new_code_cell('grading.check("fixture_affine", affine)',
                                  metadata=nbgrader_md("affine_check", grade=True, points=2)),
        nbformat.v4.new_code_cell(after_affine),
        nbformat.v4.new_code_cell(SQUARE, metadata=nbgrader_md("square", solution=True)),
        nbformat.v4.new_code_cell(SQUARE_CHECK, metadata=nbgrader_md("square_check", grade=True, points=3)),
    ]
    if derivation:
        cells += [
            nbformat.v4.new_markdown_cell(DERIVATION_PROMPT),
            nbformat.v4.new_markdown_cell(DERIVATION_ANSWER, metadata=nbgrader_md(
                "mean_minimizes_mse", solution=True, grade=True, points=2)),
        ]
    cells.append(nbformat.v4.new_code_cell('print("done")'))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_state(top: Path, skip=(".venv", "build", ".git", "__pycache__", ".pytest_cache",
                                ".hypothesis", ".ipynb_checkpoints", "homework")) -> dict:
    """{relative path: (size, mtime_ns)} of every file under ``top`` outside ``skip`` folders."""
    out = {}
    top = Path(top)
    if not top.exists():
        return out
    for p in top.rglob("*"):
        rel = p.relative_to(top)
        if any(part in skip for part in rel.parts):
            continue
        if p.is_file() or p.is_symlink():
            st = p.lstat()
            out[str(rel)] = (st.st_size, st.st_mtime_ns)
    return out


def set_source(nb, grade_id: str, source: str):
    """A copy of ``nb`` with the cell ``grade_id`` holding ``source``."""
    import copy

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = source
    return nb
