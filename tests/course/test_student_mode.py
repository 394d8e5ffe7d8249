"""Student mode (``course.py lab --student``, ``course.py restore``): assignments/student.py.

On the fixture notebook: the student versions land in a working folder without any solution
text; a second run keeps an edited notebook byte for byte and adds a notebook new in the course;
an unedited notebook follows the course; restore backs the student's copy up; the headless run
reports exactly the exercise checks as failing, with NotImplementedError, and gives the same
feedback as the instructor notebook once an exercise is solved. One real notebook is generated
(not executed) to check that none of its solutions' distinctive lines reach the student.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from assignments import discover_exercises, resolve_notebooks  # noqa: E402
from assignments.pipeline import _nbgrader_md  # noqa: E402
from assignments.student import STATE_FILE, prepare, restore, run_headless, summarize  # noqa: E402

from homework_fixtures import SECRET_LINES, make_fixture, set_source, sha  # noqa: E402

SOLVED_AFFINE = "def affine(x):\n    return 2 * x + 1  # my own answer\n"


def _student_text(path: Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    return "\n".join(c.source for c in nb.cells)


@pytest.fixture
def course(tmp_path):
    nb_dir = tmp_path / "notebooks"
    make_fixture(nb_dir, derivation=True)
    return {"nb": nb_dir, "work": tmp_path / "homework", "build": tmp_path / "build"}


def _prepare(c, notebooks=None):
    return prepare(notebooks, c["work"], notebooks_dir=c["nb"], course=c["build"])


def test_generates_student_versions_without_solutions(course):
    report = _prepare(course)
    target = course["work"] / "07_fixture.ipynb"
    assert report.added == ["07_fixture.ipynb"] and target.exists()
    raw = target.read_text()
    assert "BEGIN SOLUTION" not in raw and "END SOLUTION" not in raw and "HIDDEN TESTS" not in raw
    for secret in SECRET_LINES:
        assert secret not in raw, secret
    nb = nbformat.read(str(target), as_version=4)
    cells = {_nbgrader_md(c).get("grade_id"): c for c in nb.cells}
    assert "raise NotImplementedError()" in cells["affine"].source
    assert cells["affine_check"].source == 'grading.check("fixture_affine", affine)'
    assert cells["mean_minimizes_mse"].source.strip() == "YOUR ANSWER HERE"
    state = json.loads((course["work"] / STATE_FILE).read_text())
    assert state["notebooks"]["07_fixture"]["generated_sha256"] == sha(target)


def test_second_run_keeps_edits_and_adds_new_notebooks(course):
    _prepare(course)
    target = course["work"] / "07_fixture.ipynb"
    edited = set_source(nbformat.read(str(target), as_version=4), "affine", SOLVED_AFFINE)
    nbformat.write(edited, str(target))
    mine = target.read_bytes()
    make_fixture(course["nb"], name="08_more")  # new in the course
    report = _prepare(course)
    assert target.read_bytes() == mine, "an edited notebook was overwritten"
    assert report.kept == ["07_fixture.ipynb"] and report.added == ["08_more.ipynb"]
    assert report.newer_available == []

    # the course changes both notebooks: the edited one is kept (and the run says a newer version
    # exists), the untouched one follows the course
    for name in ("07_fixture", "08_more"):
        path = course["nb"] / f"{name}.ipynb"
        nb = nbformat.read(str(path), as_version=4)
        nb.cells[0].source += "\nRevised."
        nbformat.write(nb, str(path))
    report = _prepare(course)
    assert target.read_bytes() == mine
    assert report.kept == ["07_fixture.ipynb"] and report.newer_available == ["07_fixture.ipynb"]
    assert report.updated == ["08_more.ipynb"]
    assert "Revised." in (course["work"] / "08_more.ipynb").read_text()

    # a run with nothing new regenerates nothing and changes nothing
    before = {p.name: p.read_bytes() for p in course["work"].glob("*.ipynb")}
    report = _prepare(course)
    assert report.unchanged == ["08_more.ipynb"] and report.kept == ["07_fixture.ipynb"]
    assert {p.name: p.read_bytes() for p in course["work"].glob("*.ipynb")} == before


def test_a_notebook_found_without_record_is_kept(course):
    """A copy the record does not know (e.g. the record was deleted) is never overwritten."""
    course["work"].mkdir(parents=True)
    mine = course["work"] / "07_fixture.ipynb"
    mine.write_text("my own notes, not even a notebook")
    report = _prepare(course)
    assert mine.read_text() == "my own notes, not even a notebook" and report.kept == ["07_fixture.ipynb"]


def test_restore_keeps_a_backup(course):
    _prepare(course)
    target = course["work"] / "07_fixture.ipynb"
    nbformat.write(set_source(nbformat.read(str(target), as_version=4), "affine", SOLVED_AFFINE),
                   str(target))
    mine = target.read_bytes()
    [(restored, backup)] = restore(["07"], course["work"], notebooks_dir=course["nb"], course=course["build"])
    assert restored == target.resolve()
    assert backup.parent == (course["work"] / "backups").resolve() and backup.read_bytes() == mine
    assert re.fullmatch(r"07_fixture\.\d{8}-\d{6}\.ipynb", backup.name)
    assert "my own answer" not in target.read_text() and "raise NotImplementedError()" in target.read_text()
    # a second restore in the same second keeps both backups
    [(_, backup2)] = restore(["07_fixture"], course["work"], notebooks_dir=course["nb"], course=course["build"])
    assert backup2 != backup and backup.read_bytes() == mine
    # the fresh copy counts as untouched again
    assert _prepare(course).unchanged == ["07_fixture.ipynb"]
    with pytest.raises(ValueError, match="matches no notebook"):
        restore(["42"], course["work"], notebooks_dir=course["nb"], course=course["build"])
    with pytest.raises(ValueError, match="at least one"):
        restore([], course["work"], notebooks_dir=course["nb"], course=course["build"])


def test_headless_reports_exactly_the_checks(course):
    """Fresh student versions: exactly the check cells fail, each because of the stub; after a
    student solves one exercise its check passes and prints grading.check's feedback."""
    _prepare(course)
    results = run_headless(course["work"], course["build"] / "out", timeout=120)
    failures = results["07_fixture.ipynb"]
    assert [(f.kind, f.grade_id) for f in failures] == [("check", "affine_check"), ("check", "square_check")]
    assert all("NotImplementedError" in f.ename + f.evalue for f in failures)
    lines, only_exercises = summarize(results)
    assert only_exercises and "2 of them exercises not done yet" in lines[0]
    assert (course["build"] / "out" / "html" / "07_fixture.html").exists()
    executed = nbformat.read(str(course["build"] / "out" / "notebooks" / "07_fixture.ipynb"), as_version=4)
    assert "done" in str(executed.cells[-1].outputs)  # the notebook ran to its end

    target = course["work"] / "07_fixture.ipynb"
    nbformat.write(set_source(nbformat.read(str(target), as_version=4), "affine", SOLVED_AFFINE),
                   str(target))
    results = run_headless(course["work"], course["build"] / "out", timeout=120)
    assert [f.grade_id for f in results["07_fixture.ipynb"]] == ["square_check"]
    executed = nbformat.read(str(course["build"] / "out" / "notebooks" / "07_fixture.ipynb"), as_version=4)
    check = next(c for c in executed.cells if _nbgrader_md(c).get("grade_id") == "affine_check")
    assert "\u2713 fixture_affine: 2/2 randomized cases match" in str(check.outputs)


def test_headless_flags_a_broken_ordinary_cell(course):
    """The report can fail: an ordinary cell that raises is reported as such."""
    make_fixture(course["nb"], after_affine="z = affine(torch.zeros(2))")  # uses the student's stub
    _prepare(course)
    lines, only_exercises = summarize(run_headless(course["work"], course["build"] / "out", timeout=120))
    assert not only_exercises and any("cell 4:" in ln for ln in lines), lines


def test_command_line(course):
    cmd = [sys.executable, "-m", "assignments.student"]
    opts = ["--dir", str(course["work"]), "--notebooks-dir", str(course["nb"]), "--course", str(course["build"])]
    first = subprocess.run(cmd + ["prepare", *opts], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert first.returncode == 0 and "added: 07_fixture.ipynb" in first.stdout, first.stdout + first.stderr
    target = course["work"] / "07_fixture.ipynb"
    target.write_text(target.read_text().replace("Two exercises.", "Two exercises. My notes."))
    again = subprocess.run(cmd + ["prepare", *opts], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert "kept (you have worked on them): 07_fixture.ipynb" in again.stdout, again.stdout
    rs = subprocess.run(cmd + ["restore", *opts, "07"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert rs.returncode == 0 and "yours is now" in rs.stdout and "backups" in rs.stdout, rs.stdout


def _solution_lines(source_nb) -> set[str]:
    """Lines that occur in the instructor notebook only between the solution delimiters."""
    inside, outside = set(), set()
    for cell in source_nb.cells:
        region = False
        for line in cell.source.splitlines():
            s = line.strip()
            if "BEGIN SOLUTION" in s or "BEGIN HIDDEN TESTS" in s:
                region = True
                continue
            if "END SOLUTION" in s or "END HIDDEN TESTS" in s:
                region = False
                continue
            (inside if region else outside).add(s)
    return {s for s in inside - outside if len(s) >= 8 and re.search(r"[A-Za-z0-9]", s)}


def test_real_notebook_has_no_solution_text(tmp_path):
    candidates = [p for p in resolve_notebooks() if discover_exercises(p)]
    if not candidates:
        pytest.skip("no notebook with exercises in notebooks/ yet")
    path = min(candidates, key=lambda p: p.stat().st_size)
    report = prepare([path.stem], tmp_path / "homework", course=tmp_path / "build")
    student = tmp_path / "homework" / path.name
    assert report.added == [path.name]
    raw = student.read_text()
    assert "BEGIN SOLUTION" not in raw and "HIDDEN TESTS" not in raw
    secrets = _solution_lines(nbformat.read(str(path), as_version=4))
    assert secrets, f"{path.name}: no solution lines found (is the test reading the right file?)"
    text = _student_text(student)
    leaked = sorted(s for s in secrets if s in text)
    assert not leaked, f"{path.name}: solution lines in the student version: {leaked[:5]}"
