"""The homework pipeline (assignments/, nbgrader) can fail and pass.

- A small fixture notebook (two exercises, one checked by ``grading.check``, one by a visible and a
  hidden assert) is released, its student version executed (every check fails on its stub, only
  its checks fail), solutions injected back (every check passes), and a simulated class is graded
  with nbgrader's autograder: complete, empty, wrong, not a notebook, a deleted check cell,
  altered metadata, a wrong answer caught only by the hidden test, a cell that raises, an infinite
  loop, and a kernel that dies.
- Every real notebook in notebooks/ (discovered, none skipped) is released; its student version is
  executed ONCE, with the solutions injected and re-checked at the end of the same kernel session,
  and every exercise found in its nbgrader metadata must fail on its stub and pass on its solution.
- One real notebook is autograded by nbgrader as a complete submission (full marks).
"""

from __future__ import annotations

import copy
import csv
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import nbgrader  # noqa: E402,F401  (a missing nbgrader fails here, it is never skipped)

from assignments import (  # noqa: E402
    discover_exercises,
    grade,
    inject_solutions,
    release,
    resolve_notebooks,
)
from verification.kernel_client import notebook_client  # noqa: E402
from verification.limits import CELL_TIMEOUT, NOTEBOOK_TIMEOUT  # noqa: E402

from homework_fixtures import make_fixture, set_source, sha  # noqa: E402  (the fixture notebook)


def _nbgrader_md(cell) -> dict:
    """A cell's nbgrader metadata, read here from nbformat (not through the pipeline under test)."""
    md = cell.get("metadata", {}).get("nbgrader")
    return md if isinstance(md, dict) else {}


REAL = [p.stem for p in resolve_notebooks()]


def _errors(cell) -> str:
    """All error text of an executed cell ('' when it raised nothing)."""
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "error":
            out.append(f"{o.get('ename')}: {o.get('evalue')}\n" + "\n".join(o.get("traceback", [])))
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# Execute a student version once; derive every assertion from that run
# ----------------------------------------------------------------------------------------------


def run_student_then_solutions(student, source, cwd: Path, timeout: int):
    """Execute the student version, then (same kernel) every exercise's solution cell followed by
    its check cells. Returns the executed notebook and the number of student cells."""
    solved = inject_solutions(student, source)
    by_id = {_nbgrader_md(c)["grade_id"]: c for c in solved.cells if _nbgrader_md(c).get("grade_id")}
    composed = copy.deepcopy(student)
    n_student = len(composed.cells)
    for ex in discover_exercises(student):
        for gid in ex.solution_ids + ex.check_ids:
            cell = copy.deepcopy(by_id[gid])
            cell.outputs, cell.execution_count = [], None
            composed.cells.append(cell)
    client = notebook_client(composed, cwd, timeout=timeout, allow_errors=True)
    client.execute()
    return composed, n_student


def assert_stubs_fail_solutions_pass(executed, n_student: int, label: str) -> None:
    """Every check fails on its stub because of the stub; nothing else fails (solution cells may
    raise on their stub); in the appended part every solution and check runs clean."""
    student_cells, solved_cells = executed.cells[:n_student], executed.cells[n_student:]
    exercises = discover_exercises(executed)
    checks = {c for e in exercises for c in e.check_ids}
    solutions = {s for e in exercises for s in e.solution_ids}
    assert all(c.cell_type != "code" or c.execution_count is not None for c in executed.cells), \
        f"{label}: the kernel stopped before the end"
    for i, cell in enumerate(student_cells):
        gid = _nbgrader_md(cell).get("grade_id")
        err = _errors(cell) if cell.cell_type == "code" else ""
        if gid in checks and cell.cell_type == "code":
            assert err, f"{label}: check {gid} passes on the student stub (a check that cannot fail)"
            assert "NotImplementedError" in err, \
                f"{label}: check {gid} fails on the stub for another reason than the stub:\n{err}"
        elif gid not in solutions:
            assert not err, (f"{label}: cell {i} (not part of an exercise) fails in the student "
                             f"version; it must use course_lib, not a student's function:\n"
                             f"{cell.source[:300]}\n{err[-1500:]}")
    for cell in solved_cells:
        gid = _nbgrader_md(cell).get("grade_id")
        err = _errors(cell)
        assert not err, f"{label}: {gid} fails with the solution injected:\n{err[-1500:]}"
    assert {_nbgrader_md(c).get("grade_id") for c in solved_cells} >= checks


# ----------------------------------------------------------------------------------------------
# Fixture notebook: discovery, release, execution
# ----------------------------------------------------------------------------------------------


def test_discover_exercises_on_fixture(tmp_path):
    exs = discover_exercises(make_fixture(tmp_path))
    assert [(e.name, e.solution_ids, e.check_ids, e.points) for e in exs] == [
        ("affine", ["affine"], ["affine_check"], 2.0),
        ("square", ["square"], ["square_check"], 3.0),
    ]


def test_resolve_notebooks_rejects_unknown(tmp_path):
    make_fixture(tmp_path)
    assert resolve_notebooks(["07"], tmp_path) == [tmp_path / "07_fixture.ipynb"]
    with pytest.raises(ValueError, match="notebooks: '42' matches no notebook"):
        resolve_notebooks(["42"], tmp_path)


@pytest.fixture(scope="module")
def fixture_course(tmp_path_factory):
    """The fixture notebook released into a fresh nbgrader course folder."""
    base = tmp_path_factory.mktemp("homework")
    src = make_fixture(base / "notebooks")
    before = sha(src)
    [student] = release(None, out=base / "course", notebooks_dir=base / "notebooks")
    assert sha(src) == before, "release modified the instructor notebook"
    return base, src, student


def test_release_layout_and_stubs(fixture_course):
    base, src, student = fixture_course
    course = base / "course"
    assert student == course / "release" / "07_fixture" / "07_fixture.ipynb"
    assert (course / "nbgrader_config.py").exists() and (course / "gradebook.db").exists()
    assert (course / "source" / "07_fixture" / "07_fixture.ipynb").exists()
    text = (course / "nbgrader_config.py").read_text()
    assert "c.Execute.timeout = 120" in text and "raise NotImplementedError()" in text
    nb = nbformat.read(str(student), as_version=4)
    cells = {_nbgrader_md(c)["grade_id"]: c for c in nb.cells if _nbgrader_md(c)}
    for sid in ("affine", "square"):
        assert "raise NotImplementedError()" in cells[sid].source
        assert "return" not in cells[sid].source and "SOLUTION" not in cells[sid].source
        assert cells[sid].source.startswith("def ")  # the signature and docstring stay
    assert cells["affine_check"].source == 'grading.check("fixture_affine", affine)'
    assert "square(-4)" not in cells["square_check"].source  # hidden test removed
    for gid, cell in cells.items():
        assert "checksum" in _nbgrader_md(cell), gid
        if gid.endswith("_check"):
            assert cell.metadata.get("editable") is False and cell.metadata.get("deletable") is False
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_fixture_student_version_fails_only_its_checks(fixture_course):
    base, src, student = fixture_course
    nb_student = nbformat.read(str(student), as_version=4)
    nb_source = nbformat.read(str(src), as_version=4)
    executed, n = run_student_then_solutions(nb_student, nb_source, student.parent, timeout=120)
    assert_stubs_fail_solutions_pass(executed, n, "fixture")
    assert "done" in str(executed.cells[n - 1].outputs)  # the end of the student version ran

    # The assertion can fail: the same run, altered as a defective notebook would have run.
    def altered(index, outputs):
        nb = copy.deepcopy(executed)
        nb.cells[index].outputs = outputs
        return nb

    index = {(_nbgrader_md(c).get("grade_id"), i >= n): i for i, c in enumerate(executed.cells)}
    boom = [nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[])]
    with pytest.raises(AssertionError, match="affine_check passes on the student stub"):
        assert_stubs_fail_solutions_pass(altered(index[("affine_check", False)], []), n, "x")
    with pytest.raises(AssertionError, match="for another reason than the stub"):
        assert_stubs_fail_solutions_pass(altered(index[("affine_check", False)], boom), n, "x")
    with pytest.raises(AssertionError, match="square_check fails with the solution injected"):
        assert_stubs_fail_solutions_pass(altered(index[("square_check", True)], boom), n, "x")


def test_detects_a_cell_that_uses_the_students_function(tmp_path):
    """The assertion above can fail: an ordinary cell calling the student's function."""
    src = make_fixture(tmp_path / "nb", after_affine="z = affine(torch.zeros(2))")
    [student] = release(None, out=tmp_path / "course", notebooks_dir=tmp_path / "nb")
    executed, n = run_student_then_solutions(nbformat.read(str(student), as_version=4),
                                             nbformat.read(str(src), as_version=4),
                                             student.parent, timeout=120)
    with pytest.raises(AssertionError, match="not part of an exercise"):
        assert_stubs_fail_solutions_pass(executed, n, "broken fixture")


# ----------------------------------------------------------------------------------------------
# Fixture notebook: a simulated class graded by nbgrader's autograder
# ----------------------------------------------------------------------------------------------


CLASS_TIMEOUT = 15  # seconds per cell for the simulated class (the infinite loop costs this once)


@pytest.fixture(scope="module")
def graded_class(fixture_course):
    base, src, student = fixture_course
    released = nbformat.read(str(student), as_version=4)
    complete = inject_solutions(released, nbformat.read(str(src), as_version=4))
    subs = base / "submissions"

    def put(name, nb_or_text, filename="07_fixture.ipynb"):
        folder = subs / name
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(nb_or_text, str):
            (folder / filename).write_text(nb_or_text)
        else:
            nbformat.write(nb_or_text, str(folder / filename))

    # alice: everything right, in nbgrader's collect layout <student>/<assignment>/<notebook>
    (subs / "alice" / "07_fixture").mkdir(parents=True)
    nbformat.write(complete, str(subs / "alice" / "07_fixture" / "07_fixture.ipynb"))
    put("bob", released)  # handed back untouched
    put("carol", set_source(complete, "affine", "def affine(x):\n    return 2 * x\n"))
    put("dave", "this is not a notebook")  # not JSON
    frank = copy.deepcopy(complete)  # altered metadata: renamed one check, inflated other points
    for c in frank.cells:
        md = _nbgrader_md(c)
        if md.get("grade_id") == "affine_check":
            md["grade_id"] = "my_own_check"
        if md.get("grade_id") == "square_check":
            md["points"] = 100
    put("frank", frank)
    # grace: a square that passes the visible test but not the hidden one, a cell of her own that
    # raises, and the first check cell deleted
    grace = set_source(complete, "square", "def square(x):\n    return abs(x) * x\n")
    grace.cells = [c for c in grace.cells if _nbgrader_md(c).get("grade_id") != "affine_check"]
    grace.cells.insert(2, nbformat.v4.new_code_cell('raise RuntimeError("a cell of my own")'))
    put("grace", grace)
    put("heidi", set_source(complete, "affine", "def affine(x):\n    while True:\n        pass\n"))
    ivan = copy.deepcopy(complete)  # kills its kernel
    ivan.cells.insert(2, nbformat.v4.new_code_cell("import os\nos._exit(1)"))
    put("ivan", ivan)
    put("judy", "print('hi')", filename="07_fixture.py")  # a script, not a notebook
    nbformat.write(complete, str(subs / "judy" / "unrelated_notes.ipynb"))
    report = grade(subs, out=base / "course", notebooks_dir=base / "notebooks",
                   timeout=CLASS_TIMEOUT)
    return base, report


EXPECTED = {  # student: {exercise: (score, status, words in the reason)}
    "alice": {"affine": (2, "passed", []), "square": (3, "passed", [])},
    "bob": {"affine": (0, "failed", ["not attempted"]), "square": (0, "failed", ["NotImplementedError"])},
    "carol": {"affine": (0, "failed", ["fixture_affine", "max abs"]), "square": (3, "passed", [])},
    "dave": {"affine": (0, "invalid", ["not a valid notebook"]), "square": (0, "invalid", ["not a valid notebook"])},
    "frank": {"affine": (0, "missing", ["affine_check", "my_own_check"]), "square": (3, "passed", ["restored"])},
    "grace": {"affine": (0, "missing", ["affine_check", "deleted"]),
              "square": (0, "failed", ["square(-4) should be 16"])},
    "heidi": {"affine": (0, "timeout", [f"{CLASS_TIMEOUT} s"]), "square": (3, "passed", [])},
    "ivan": {"affine": (0, "not graded", ["kernel died"]), "square": (0, "not graded", ["kernel died"])},
    "judy": {"affine": (0, "invalid", ["07_fixture.py", "not a notebook"]), "square": (0, "invalid", [])},
}


def test_grade_simulated_class(graded_class):
    base, report = graded_class
    got = {(r.student, r.exercise): r for r in report.rows}
    assert {s for s, _ in got} == set(EXPECTED)
    for student, exercises in EXPECTED.items():
        for ex, (score, status, words) in exercises.items():
            r = got[(student, ex)]
            assert (r.score, r.status) == (score, status), (student, ex, r)
            assert r.max_score == {"affine": 2, "square": 3}[ex]
            for w in words:
                assert w in r.reason, (student, ex, r.reason)
    assert any("unrelated_notes.ipynb" in p for p in report.problems)


def test_grade_tables_and_feedback(graded_class):
    base, report = graded_class
    with open(report.grades_csv) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * len(EXPECTED)
    assert {(r["student"], r["exercise"], float(r["score"])) for r in rows} == {
        (s, e, float(v[0])) for s, exs in EXPECTED.items() for e, v in exs.items()}
    with open(report.scores_csv) as fh:
        wide = {r["student"]: r for r in csv.DictReader(fh)}
    assert wide["alice"]["total"] == "5" and wide["alice"]["max_total"] == "5"
    assert wide["carol"]["07_fixture:affine"] == "0" and wide["carol"]["total"] == "3"
    assert wide["bob"]["total"] == "0"
    fb = report.feedback_dir
    assert (fb / "alice" / "07_fixture" / "07_fixture.html").exists()
    summary = (fb / "carol" / "07_fixture" / "summary.txt").read_text()
    assert "3 / 5 points" in summary and "affine: 0 / 2 failed" in summary
    assert (fb / "dave" / "07_fixture" / "summary.txt").exists()


def test_generated_config_reaches_nbgraders_executor(graded_class):
    """The per-cell timeout in the generated nbgrader_config.py is the one nbgrader's executor
    uses (nbgrader's own default is 30 s)."""
    from nbgrader.preprocessors import Execute
    from traitlets.config.loader import PyFileConfigLoader

    base, report = graded_class
    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(base / "course")).load_config()
    ex = Execute(config=cfg)
    assert ex.timeout == CLASS_TIMEOUT and ex.interrupt_on_timeout
    # ... and so is the kernel client that cannot lose a reply's wake-up
    from verification.kernel_client import AsyncKernelClient

    assert ex.kernel_manager_class(config=ex.config).client_factory is AsyncKernelClient
    assert Path(cfg.CourseDirectory.root) == (base / "course").resolve()


def test_tables_accumulate_across_runs(tmp_path):
    """Grading 01 and then 02 keeps 01's rows; re-grading 01 replaces them."""
    from assignments.pipeline import GradeReport, Row, write_tables

    def run(rows, aids):
        write_tables(GradeReport(rows, tmp_path / "g.csv", tmp_path / "s.csv", tmp_path), aids)
        with open(tmp_path / "g.csv") as fh:
            grades = list(csv.DictReader(fh))
        with open(tmp_path / "s.csv") as fh:
            return grades, {r["student"]: r for r in csv.DictReader(fh)}

    run([Row("ann", "01_a", "e1", 1, 2, "failed", "x"), Row("ann", "01_a", "e2", 3, 3, "passed")], ["01_a"])
    grades, wide = run([Row("ann", "02_b", "f1", 4, 4, "passed")], ["02_b"])
    assert [(g["notebook"], g["exercise"]) for g in grades] == [("01_a", "e1"), ("01_a", "e2"), ("02_b", "f1")]
    assert wide["ann"]["total"] == "8" and wide["ann"]["max_total"] == "9"
    assert list(wide["ann"])[1:4] == ["01_a:e1", "01_a:e2", "02_b:f1"]
    grades, wide = run([Row("ann", "01_a", "e1", 2, 2, "passed"), Row("ann", "01_a", "e2", 3, 3, "passed")], ["01_a"])
    assert len(grades) == 3 and wide["ann"]["total"] == "9"


def test_grade_rejects_a_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="submissions_dir"):
        grade(tmp_path / "nowhere", out=tmp_path / "course")
    (tmp_path / "empty" / "someone").mkdir(parents=True)
    make_fixture(tmp_path / "nb")
    with pytest.raises(ValueError, match="no submitted notebook"):
        grade(tmp_path / "empty", out=tmp_path / "course", notebooks_dir=tmp_path / "nb")


# ----------------------------------------------------------------------------------------------
# The real notebooks: every one, every exercise
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_course(tmp_path_factory):
    course = tmp_path_factory.mktemp("real") / "course"
    hashes = {p.stem: sha(p) for p in resolve_notebooks()}
    released = {p.parent.name: p for p in release(None, out=course)}
    assert {p.stem: sha(p) for p in resolve_notebooks()} == hashes, \
        "release modified an instructor notebook"
    return course, released


def test_every_notebook_is_covered():
    """Notebooks are discovered (none left out); every registered exercise is checked by a
    notebook and every grading.check in a notebook names a registered exercise."""
    from course_lib import grading

    found = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")
                   if re.match(r"\d\d_", p.name))
    assert REAL == found
    checked = set()
    for name in REAL:
        nb = nbformat.read(str(ROOT / "notebooks" / f"{name}.ipynb"), as_version=4)
        for cell in nb.cells:
            checked |= set(re.findall(r"grading\.check\(\s*[\"']([^\"']+)[\"']", cell.source))
    registered = set(grading.exercises())
    assert checked <= registered, f"checked but not registered: {sorted(checked - registered)}"
    assert registered <= checked, f"registered but no notebook checks them: {sorted(registered - checked)}"


@pytest.mark.parametrize("name", REAL)
def test_real_release_structure(real_course, name):
    """Static: exercises have checks with points; the release differs from the source only in
    the solution cells (and metadata/outputs)."""
    course, released = real_course
    source = nbformat.read(str(ROOT / "notebooks" / f"{name}.ipynb"), as_version=4)
    student = nbformat.read(str(released[name]), as_version=4)
    exercises = discover_exercises(source)
    assert [e.name for e in discover_exercises(student)] == [e.name for e in exercises]
    for ex in exercises:
        assert ex.solution_ids, f"{name}: check {ex.check_ids} has no solution cell before it"
        assert ex.check_ids, f"{name}: exercise {ex.name} has no autograded check cell"
        assert ex.points > 0, f"{name}: exercise {ex.name} is worth no points"
    solutions = {s for e in exercises for s in e.solution_ids}
    src_code = [c for c in source.cells if c.cell_type == "code"]
    stu_code = [c for c in student.cells if c.cell_type == "code"]
    assert len(src_code) == len(stu_code)
    # hidden tests are in the instructor version only (nbgrader puts them back when it grades)
    hidden = re.compile(r"(?ms)^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[ \t]*\n?")
    for a, b in zip(src_code, stu_code):
        assert "HIDDEN TESTS" not in b.source, f"{name}: a hidden test reached the student version"
        if _nbgrader_md(a).get("grade_id") not in solutions:
            assert hidden.sub("", a.source).rstrip() == b.source.rstrip()
    solved = inject_solutions(student, source)
    strip = re.compile(r"(?m)^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?")
    assert [strip.sub("", c.source).rstrip() for c in solved.cells if c.cell_type == "code"] == \
        [strip.sub("", hidden.sub("", c.source)).rstrip() for c in src_code], \
        "injecting the solutions does not restore the notebook"


@pytest.mark.timeout(NOTEBOOK_TIMEOUT)
@pytest.mark.parametrize("name", REAL)
def test_real_student_version(real_course, name):
    """Execute the student version once: every check fails on its stub, nothing else fails, and
    (same kernel, at the end) every check passes with its solution injected."""
    course, released = real_course
    student = nbformat.read(str(released[name]), as_version=4)
    if not discover_exercises(student):
        # Nothing is stubbed: the student version is the instructor notebook, which nbval runs.
        source = nbformat.read(str(ROOT / "notebooks" / f"{name}.ipynb"), as_version=4)
        assert [c.source for c in student.cells] == [c.source for c in source.cells]
        return
    source = nbformat.read(str(ROOT / "notebooks" / f"{name}.ipynb"), as_version=4)
    executed, n = run_student_then_solutions(student, source, released[name].parent, CELL_TIMEOUT)
    assert_stubs_fail_solutions_pass(executed, n, name)


@pytest.mark.timeout(NOTEBOOK_TIMEOUT)
def test_real_notebook_autograded_complete(tmp_path):
    """nbgrader's own autograder gives full marks to the first real notebook with exercises,
    solved (its per-cell timeout and working folder included, hidden tests put back); its manually
    graded derivations are left as "needs manual grading". A submission whose predictions are valid
    options but wrong passes the visible checks and fails exactly on the hidden tests."""
    candidates = [p for p in resolve_notebooks() if discover_exercises(p)]
    if not candidates:
        pytest.skip("no notebook with exercises in notebooks/ yet")
    path = candidates[0]
    course = tmp_path / "course"
    [student] = release([path], out=course)
    complete = inject_solutions(nbformat.read(str(student), as_version=4),
                                nbformat.read(str(path), as_version=4))
    (tmp_path / "subs" / "ada").mkdir(parents=True)
    nbformat.write(complete, str(tmp_path / "subs" / "ada" / student.name))
    # bob predicts wrongly in every "predict, then run" cell: a valid option passes the visible
    # check, only the hidden test (put back by nbgrader) can fail it
    wrong, predicted = copy.deepcopy(complete), set()
    for cell in wrong.cells:
        answer = re.search(r'(?m)^prediction = "(\w)"', cell.source)
        if answer and _nbgrader_md(cell).get("solution"):
            other = "a" if answer.group(1) != "a" else "b"
            cell.source = cell.source.replace(answer.group(0), f'prediction = "{other}"')
            predicted.add(_nbgrader_md(cell)["grade_id"])
    assert predicted, f"{path.name}: no predict-then-run question"
    (tmp_path / "subs" / "bob").mkdir(parents=True)
    nbformat.write(wrong, str(tmp_path / "subs" / "bob" / student.name))
    report = grade(tmp_path / "subs", out=course, feedback=False)
    from assignments.pipeline import NEEDS_MANUAL

    auto = [r for r in report.rows if r.status != NEEDS_MANUAL]  # derivations wait for a person
    ada = [r for r in auto if r.student == "ada"]
    assert ada and all(r.status == "passed" and r.score == r.max_score for r in ada), \
        [r for r in ada if r.status != "passed"]
    by_hand = {e.name for e in discover_exercises(path) if e.solution_ids == e.check_ids}
    assert {r.exercise for r in report.rows if r.student == "ada" and r.status == NEEDS_MANUAL} == by_hand
    bob = [r for r in auto if r.student == "bob"]
    assert sorted(r.exercise for r in bob) == sorted(r.exercise for r in ada)
    for r in bob:
        if r.exercise in predicted:
            assert (r.status, r.score) == ("failed", 0) and "AssertionError" in r.reason, r
        else:
            assert r.status == "passed" and r.score == r.max_score, r
