"""Student mode: the student versions of the course notebooks, in a working folder of one's own.

``python3 course.py lab --student`` calls :func:`prepare` and opens the folder in JupyterLab;
``--headless`` calls :func:`run_headless` instead; ``python3 course.py restore NN`` calls
:func:`restore`.

The student versions are generated exactly as for an instructor's ``release`` (nbgrader's
``generate_assignment`` through :func:`assignments.release`, into a private nbgrader course folder
``build/student/nbgrader/``): every solution replaced by ``raise NotImplementedError()``, model
answers and rubrics by "YOUR ANSWER HERE", hidden tests removed. Each check cell still calls
``grading.check``, so a student gets the same immediate feedback as in the instructor notebooks.

A student's work is never lost. The working folder (default ``homework/``, ignored by git) holds
``.course-homework.json``, which records the SHA-256 of every notebook as it was generated. On
every run:

- a notebook that is new in the course is added;
- a notebook the student has not changed (same bytes as generated) is replaced by the course's
  newer version, if there is one;
- a notebook the student has changed (or that was there before the record) is kept byte for
  byte; if the course has a newer version, the run says so and how to get it.

``restore`` puts a fresh copy of one notebook in place after moving the student's copy to
``backups/<name>.<timestamp>.ipynb`` in the working folder.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from assignments.pipeline import (
    NOTEBOOK_GLOB,
    NOTEBOOKS,
    ROOT,
    STUB,
    _nbgrader_md,
    discover_exercises,
    release,
    resolve_notebooks,
)

HOMEWORK = ROOT / "homework"
STUDENT_COURSE = ROOT / "build" / "student" / "nbgrader"
HEADLESS_OUT = ROOT / "build" / "homework"
STATE_FILE = ".course-homework.json"
BACKUPS = "backups"
STATE_VERSION = 1


def say(msg: str) -> None:
    print(f"[student] {msg}", flush=True)


def _sha(path_or_bytes) -> str:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return hashlib.sha256(data).hexdigest()


def _generator_key(source: Path) -> str:
    """Changes when the instructor notebook or the way student versions are made changes."""
    import nbgrader

    return _sha(source.read_bytes() + f"\0{nbgrader.__version__}\0{STUB}".encode())


@dataclass
class PrepareReport:
    """What :func:`prepare` did, by notebook file name."""

    workdir: Path
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    newer_available: list[str] = field(default_factory=list)


def _load_state(workdir: Path) -> dict:
    path = workdir / STATE_FILE
    if path.exists():
        try:
            state = json.loads(path.read_text())
            if isinstance(state, dict) and isinstance(state.get("notebooks"), dict):
                return state
        except (OSError, ValueError):
            pass
        say(f"{path} is unreadable; every notebook already in {workdir} is kept as it is")
    return {"version": STATE_VERSION, "notebooks": {}}


def _save_state(workdir: Path, state: dict) -> None:
    path = workdir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _generate(paths: list[Path], notebooks_dir: Path, course: Path) -> dict[str, Path]:
    """Student versions of ``paths`` (instructor notebooks), by notebook stem."""
    if not paths:
        return {}
    return {p.parent.name: p for p in release(paths, out=course, notebooks_dir=notebooks_dir)}


def _cached(course: Path, stem: str) -> Path:
    return course / "release" / stem / f"{stem}.ipynb"


def prepare(notebooks: Iterable[str | Path] | None = None, workdir: str | Path = HOMEWORK, *,
            notebooks_dir: str | Path = NOTEBOOKS, course: str | Path = STUDENT_COURSE) -> PrepareReport:
    """Put the student version of every course notebook into ``workdir`` without losing work.

    Parameters
    ----------
    notebooks : iterable of str or Path, optional
        Which notebooks (``01``, ``01_autoencoders``, a path); None means all.
    workdir : str or Path
        The student's working folder (created; default ``homework/``).
    notebooks_dir : str or Path
        Where the instructor notebooks are.
    course : str or Path
        The private nbgrader course folder the student versions are generated in.

    Returns
    -------
    PrepareReport
        Which notebooks were added, updated (unchanged by the student, newer in the course),
        left as they were, kept because the student changed them, and which of those have a newer
        version in the course.

    Raises
    ------
    ValueError
        If a notebook name is unknown or there is no notebook.
    RuntimeError
        If nbgrader fails to generate a student version.
    """
    workdir, course, notebooks_dir = Path(workdir).resolve(), Path(course).resolve(), Path(notebooks_dir)
    paths = resolve_notebooks(notebooks, notebooks_dir)
    if not paths:
        raise ValueError(f"notebooks: no notebook {NOTEBOOK_GLOB} found in {notebooks_dir}")
    workdir.mkdir(parents=True, exist_ok=True)
    state = _load_state(workdir)
    entries = state["notebooks"]
    keys = {p.stem: _generator_key(p) for p in paths}
    # generate only what is new or changed in the course (or whose cached version is gone)
    stale = [p for p in paths
             if entries.get(p.stem, {}).get("latest_key") != keys[p.stem]
             or not _cached(course, p.stem).exists()
             or _sha(_cached(course, p.stem)) != entries[p.stem].get("latest_sha256")]
    generated = _generate(stale, notebooks_dir, course)
    report = PrepareReport(workdir)
    for path in paths:
        stem, name = path.stem, path.name
        fresh = generated.get(stem, _cached(course, stem))
        fresh_bytes = fresh.read_bytes()
        entry = entries.setdefault(stem, {})
        entry["latest_key"], entry["latest_sha256"] = keys[stem], _sha(fresh_bytes)
        target = workdir / name
        if not target.exists():
            target.write_bytes(fresh_bytes)
            entry["generated_sha256"] = _sha(fresh_bytes)
            report.added.append(name)
            continue
        mine = _sha(target)
        if mine == _sha(fresh_bytes):
            entry["generated_sha256"] = mine
            report.unchanged.append(name)
        elif mine == entry.get("generated_sha256"):  # untouched by the student: safe to replace
            target.write_bytes(fresh_bytes)
            entry["generated_sha256"] = _sha(fresh_bytes)
            report.updated.append(name)
        else:
            report.kept.append(name)
            if entry.get("generated_sha256") not in (None, entry["latest_sha256"]):
                report.newer_available.append(name)
    _save_state(workdir, state)
    return report


def restore(notebooks: Iterable[str | Path], workdir: str | Path = HOMEWORK, *,
            notebooks_dir: str | Path = NOTEBOOKS, course: str | Path = STUDENT_COURSE
            ) -> list[tuple[Path, Path | None]]:
    """Replace the student's copy of each notebook by a fresh student version, keeping a backup.

    Parameters
    ----------
    notebooks : iterable of str or Path
        Which notebooks (``02``, ``02_vae``, ``02_vae.ipynb``); at least one.

    Returns
    -------
    list of (Path, Path or None)
        Each restored notebook and where the student's copy was moved (None if there was none).

    Raises
    ------
    ValueError
        If no notebook is named, or a name is unknown.
    """
    names = [notebooks] if isinstance(notebooks, (str, Path)) else list(notebooks)
    if not names:
        raise ValueError("notebooks: name at least one notebook to restore, e.g. 02 or 02_vae")
    workdir, course, notebooks_dir = Path(workdir).resolve(), Path(course).resolve(), Path(notebooks_dir)
    paths = resolve_notebooks([Path(n).name.removesuffix(".ipynb") for n in names], notebooks_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    state = _load_state(workdir)
    generated = _generate(paths, notebooks_dir, course)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    done = []
    for path in paths:
        target = workdir / path.name
        backup = None
        if target.exists():
            folder = workdir / BACKUPS
            folder.mkdir(exist_ok=True)
            backup = folder / f"{path.stem}.{stamp}.ipynb"
            n = 1
            while backup.exists():
                backup = folder / f"{path.stem}.{stamp}-{n}.ipynb"
                n += 1
            shutil.copy2(target, backup)
        fresh = generated[path.stem].read_bytes()
        target.write_bytes(fresh)
        state["notebooks"][path.stem] = {"latest_key": _generator_key(path), "latest_sha256": _sha(fresh),
                                         "generated_sha256": _sha(fresh)}
        done.append((target, backup))
    _save_state(workdir, state)
    return done


# --------------------------------------------------------------------------------------------
# Headless: execute every student notebook, report which cells failed
# --------------------------------------------------------------------------------------------


@dataclass
class CellFailure:
    """A cell that raised when a student notebook was executed."""

    notebook: str
    index: int
    kind: str  # "check" (an exercise's check), "answer" (a solution cell), "other"
    grade_id: str | None
    ename: str
    evalue: str
    exercise: str | None = None

    def line(self) -> str:
        what = {"check": f"check {self.grade_id}", "answer": f"your code in {self.grade_id}",
                "other": f"cell {self.index}"}[self.kind]
        if self.kind == "check" and "NotImplementedError" in (self.ename + self.evalue):
            return f"{what}: not done yet (NotImplementedError)"
        text = f"{self.ename}: {self.evalue}".strip().rstrip(":")
        first = text.splitlines()[0] if text else self.ename
        return f"{what}: {first[:200]}"


def _failures(nb, notebook: str) -> list[CellFailure]:
    exercises = discover_exercises(nb)
    checks = {c: e.name for e in exercises for c in e.check_ids}
    solutions = {s: e.name for e in exercises for s in e.solution_ids}
    out = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            if o.get("output_type") != "error":
                continue
            gid = _nbgrader_md(cell).get("grade_id")
            ename, evalue = str(o.get("ename", "")), str(o.get("evalue", ""))
            tb = "\n".join(o.get("traceback", []))
            if "NotImplementedError" in tb and ename != "NotImplementedError":
                evalue = f"{evalue} (NotImplementedError)"
            kind = "check" if gid in checks else "answer" if gid in solutions else "other"
            out.append(CellFailure(notebook, i, kind, gid, ename, evalue,
                                   checks.get(gid) or solutions.get(gid)))
            break
    return out


def run_headless(workdir: str | Path = HOMEWORK, out: str | Path = HEADLESS_OUT, *,
                 timeout: int = 600, notebooks: Iterable[str] | None = None
                 ) -> dict[str, list[CellFailure]]:
    """Execute every student notebook of ``workdir`` in course order, as it is (with the student's
    answers); write the executed copies to ``out/notebooks/`` and HTML to ``out/html/``.

    Parameters
    ----------
    workdir : str or Path
        The student's working folder.
    out : str or Path
        Where the executed notebooks and HTML go (default ``build/homework/``).
    timeout : int
        Seconds one cell may run.
    notebooks : iterable of str, optional
        Only these notebook names (stems); default every ``NN_*.ipynb`` in ``workdir``.

    Returns
    -------
    dict
        Notebook file name -> the cells that raised, in order.
    """
    import nbclient
    import nbformat
    from nbconvert import HTMLExporter

    workdir, out = Path(workdir).resolve(), Path(out).resolve()
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    (out / "html").mkdir(parents=True, exist_ok=True)
    paths = sorted(workdir.glob(NOTEBOOK_GLOB))
    if notebooks is not None:
        wanted = set(notebooks)
        paths = [p for p in paths if p.stem in wanted or p.name in wanted]
    results: dict[str, list[CellFailure]] = {}
    for path in paths:
        say(f"executing {path.name}")
        nb = nbformat.read(str(path), as_version=4)
        client = nbclient.NotebookClient(nb, timeout=timeout, allow_errors=True,
                                         kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"),
                                         resources={"metadata": {"path": str(workdir)}})
        client.execute()
        nbformat.write(nb, str(out / "notebooks" / path.name))
        html, _ = HTMLExporter().from_notebook_node(nb)
        (out / "html" / f"{path.stem}.html").write_text(html)
        results[path.name] = _failures(nb, path.name)
    return results


def summarize(results: dict[str, list[CellFailure]]) -> tuple[list[str], bool]:
    """Report lines, and whether only exercises failed (no ordinary cell of a notebook)."""
    lines, only_exercises = [], True
    for name, failures in results.items():
        if not failures:
            lines.append(f"{name}: every cell ran, every check passed")
            continue
        todo = sum(1 for f in failures if f.kind == "check" and "NotImplementedError" in f.ename + f.evalue)
        lines.append(f"{name}: {len(failures)} cell(s) raised"
                     + (f", {todo} of them exercises not done yet" if todo else ""))
        for f in failures:
            lines.append(f"    {f.line()}")
            if f.kind == "other":
                only_exercises = False
    return lines, only_exercises


def main(argv: list[str] | None = None) -> int:
    """``python -m assignments.student prepare|restore|headless``."""
    import argparse

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", default=str(HOMEWORK),
                        help="the student's working folder (default: homework/)")
    common.add_argument("--notebooks-dir", default=str(NOTEBOOKS), help=argparse.SUPPRESS)
    common.add_argument("--course", default=str(STUDENT_COURSE), help=argparse.SUPPRESS)
    ap = argparse.ArgumentParser(prog="python -m assignments.student",
                                 description="Student versions of the course notebooks for self-study.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("prepare", parents=[common], help="add or update the student notebooks "
                        "in the working folder (the ones you changed are kept)")
    pr.add_argument("--headless", action="store_true",
                    help="then execute every one and report which cells failed")
    pr.add_argument("--out", default=str(HEADLESS_OUT), help="where --headless writes (build/homework)")
    rs = sub.add_parser("restore", parents=[common], help="a fresh copy of notebooks (yours is "
                        "moved to backups/)")
    rs.add_argument("notebooks", nargs="+", help="e.g. 02 or 02_vae")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "restore":
            for target, backup in restore(args.notebooks, args.dir, notebooks_dir=args.notebooks_dir,
                                          course=args.course):
                say(f"fresh copy: {target}" + (f" (yours is now {backup})" if backup else ""))
            return 0
        report = prepare(None, args.dir, notebooks_dir=args.notebooks_dir, course=args.course)
    except (ValueError, RuntimeError) as exc:
        say(f"error: {exc}")
        return 1
    for what, names in (("added", report.added), ("up to date", report.unchanged),
                        ("updated to the course's newer version", report.updated),
                        ("kept (you have worked on them)", report.kept)):
        if names:
            say(f"{what}: {', '.join(names)}")
    for name in report.newer_available:
        stem = Path(name).stem
        say(f"{name}: the course has a newer version; `python3 course.py restore {stem[:2]}` "
            f"replaces your copy with it (yours is kept in {Path(args.dir) / BACKUPS}/)")
    say(f"your notebooks: {report.workdir}")
    if not args.headless:
        return 0
    results = run_headless(report.workdir, args.out)
    lines, only_exercises = summarize(results)
    for ln in lines:
        print(ln, flush=True)
    say(f"executed notebooks: {Path(args.out) / 'notebooks'}")
    say(f"HTML (open in any browser): {Path(args.out) / 'html'}")
    if not only_exercises:
        say("some cells outside the exercises failed (see above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
