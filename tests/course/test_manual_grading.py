"""Manually graded answers work end to end with nbgrader.

A fixture notebook with two autograded exercises and one derivation graded by hand (a markdown
answer cell with ``grade`` and ``solution`` true, whose model answer and rubric sit between the
solution delimiters in the instructor version) is released; the student version holds neither;
``grade`` reports the answer as "needs manual grading" (not passed, not failed) and keeps the
pending points out of the autograded total in scores.csv; an instructor's grade entered in the
gradebook (what nbgrader's formgrader writes) appears in ``nbgrader export``'s final scores and,
after re-grading, as "graded by hand".
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from assignments import discover_exercises, grade, inject_solutions, release  # noqa: E402
from assignments.pipeline import GRADED_BY_HAND, NEEDS_MANUAL, _nbgrader_md  # noqa: E402

from homework_fixtures import SECRET_LINES, make_fixture, nbgrader_md, set_source  # noqa: E402

ANSWER = "Setting the derivative $-2(E[X] - c)$ to zero gives $c = E[X]$; it is convex."


def test_discovers_manual_answers_and_tasks():
    cells = [
        nbformat.v4.new_code_cell("def f(): pass", metadata=nbgrader_md("f", solution=True)),
        nbformat.v4.new_markdown_cell("answer", metadata=nbgrader_md("why", solution=True, grade=True, points=2)),
        nbformat.v4.new_code_cell("assert f() is None", metadata=nbgrader_md("f_check", grade=True, points=1)),
        nbformat.v4.new_markdown_cell("Plot it.", metadata=nbgrader_md("plot", task=True, points=3)),
    ]
    exs = discover_exercises(nbformat.v4.new_notebook(cells=cells))
    got = [(e.name, e.solution_ids, e.check_ids, e.points, e.manual) for e in exs]
    # the answer cell between f and its check is an exercise of its own, not f's check
    assert got == [("f", ["f"], ["f_check"], 1.0, False), ("why", ["why"], ["why"], 2.0, True),
                   ("plot", [], ["plot"], 3.0, True)]


@pytest.fixture(scope="module")
def manual_class(tmp_path_factory):
    base = tmp_path_factory.mktemp("manual")
    src = make_fixture(base / "notebooks", derivation=True)
    course = base / "course"
    [student] = release(None, out=course, notebooks_dir=base / "notebooks")
    released = nbformat.read(str(student), as_version=4)
    complete = inject_solutions(released, nbformat.read(str(src), as_version=4))
    subs = base / "submissions"
    for name, nb in {"ann": set_source(complete, "mean_minimizes_mse", ANSWER),
                     "ben": set_source(complete, "mean_minimizes_mse",
                                       _source(released, "mean_minimizes_mse"))}.items():
        (subs / name).mkdir(parents=True)
        nbformat.write(nb, str(subs / name / "07_fixture.ipynb"))
    report = grade(subs, out=course, notebooks_dir=base / "notebooks", timeout=60, feedback=True)
    return base, course, subs, released, report


def _source(nb, gid):
    return next(c.source for c in nb.cells if _nbgrader_md(c).get("grade_id") == gid)


def test_release_strips_model_answer_and_rubric(manual_class):
    base, course, subs, released, report = manual_class
    text = Path(course / "release" / "07_fixture" / "07_fixture.ipynb").read_text()
    for secret in SECRET_LINES:
        assert secret not in text, secret
    assert "SOLUTION" not in text
    answer = _source(released, "mean_minimizes_mse")
    assert answer.strip() == "YOUR ANSWER HERE"
    [ex] = [e for e in discover_exercises(released) if e.manual]
    assert (ex.name, ex.points) == ("mean_minimizes_mse", 2.0)


def test_grade_reports_needs_manual_grading(manual_class):
    base, course, subs, released, report = manual_class
    got = {(r.student, r.exercise): r for r in report.rows}
    ann = got[("ann", "mean_minimizes_mse")]
    assert (ann.score, ann.max_score, ann.status) == (0, 2, NEEDS_MANUAL), ann
    assert "formgrader" in ann.reason
    ben = got[("ben", "mean_minimizes_mse")]
    assert (ben.score, ben.status) == (0, "failed") and "unchanged" in ben.reason, ben
    for student in ("ann", "ben"):  # the autograded exercises are unaffected
        assert got[(student, "affine")].status == "passed" and got[(student, "square")].score == 3
    with open(report.grades_csv) as fh:
        statuses = {(r["student"], r["exercise"]): r["status"] for r in csv.DictReader(fh)}
    assert statuses[("ann", "mean_minimizes_mse")] == "needs manual grading"


def test_scores_keep_pending_manual_points_apart(manual_class):
    base, course, subs, released, report = manual_class
    with open(report.scores_csv) as fh:
        wide = {r["student"]: r for r in csv.DictReader(fh)}
    ann, ben = wide["ann"], wide["ben"]
    assert ann["07_fixture:mean_minimizes_mse"] == "pending"
    assert (ann["autograded"], ann["manual"], ann["manual_pending"], ann["total"], ann["max_total"]) \
        == ("5", "0", "2", "5", "7")
    assert (ben["07_fixture:mean_minimizes_mse"], ben["manual_pending"], ben["total"]) == ("0", "0", "5")
    summary = (course / "feedback" / "ann" / "07_fixture" / "summary.txt").read_text()
    assert "5 / 7 points (2 points of answers still to be graded by hand)" in summary


def test_formgrader_grade_reaches_export_and_regrade(manual_class):
    """What formgrader does when the instructor types a score (it sets the grade's manual_score
    in the gradebook), then `nbgrader export` and a second `grade`."""
    from nbgrader.api import Gradebook

    base, course, subs, released, report = manual_class
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "deep-generative-models") as gb:
        g = gb.find_grade("mean_minimizes_mse", "07_fixture", "07_fixture", "ann")
        assert g.needs_manual_grade and g.auto_score is None
        g.manual_score = 1.5
        gb.db.commit()
    out = base / "final_scores.csv"
    done = subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(out)],
                          cwd=course, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(out) as fh:
        final = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert float(final["ann"]["score"]) == 6.5 and float(final["ann"]["max_score"]) == 7
    assert float(final["ben"]["score"]) == 5

    # Re-grading the class keeps the instructor's grade (nbgrader updates the submission)
    report2 = grade(subs, out=course, notebooks_dir=base / "notebooks", timeout=60, feedback=False)
    row = report2.score("ann", "07_fixture", "mean_minimizes_mse")
    assert (row.score, row.status) == (1.5, GRADED_BY_HAND), row
    with open(report2.scores_csv) as fh:
        ann = {r["student"]: r for r in csv.DictReader(fh)}["ann"]
    assert (ann["autograded"], ann["manual"], ann["manual_pending"], ann["total"]) == ("5", "1.5", "0", "6.5")
