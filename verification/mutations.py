"""Plant textbook mistakes in ``course_lib`` one at a time; report what catches each one.

Usage::

    python3 course.py mutations                   # every mutation (takes a while)
    python3 course.py mutations posterior-variance-beta kl-sign
    .venv/bin/python -m verification.mutations --list

Each :class:`Mutation` replaces one exact piece of ``course_lib`` source (it must occur exactly
once) by a classic mistake. For each mutation, a copy of ``course_lib`` with the mistake is put
first on ``PYTHONPATH``, then

1. the named unit tests run (``pytest -x``): the first failing test is recorded;
2. the named notebooks run in a fresh kernel, in order, until one fails: the failing cell and its
   assert line are recorded.

A mutation is *caught* when both a unit test and a notebook assert fail. The table (mutation,
what it breaks, the unit test, the notebook assert) is printed and written to
``build/mutations/table.md``; the exit status is 1 when a mutation escapes either. The README
keeps the latest table. ``tests/course/test_verification.py`` checks in CI that every mutation still
applies to the current source (so the list cannot rot silently), without running it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from verification.limits import CELL_TIMEOUT, NOTEBOOK_TIMEOUT
from verification.run import ROOT, Outcome, run_in_subprocess

LIB = ROOT / "course_lib"


@dataclass(frozen=True)
class Mutation:
    """One planted mistake: replace ``old`` by ``new`` in ``course_lib/<file>``."""

    name: str                      # short id, e.g. "posterior-variance-beta"
    file: str                      # path relative to course_lib/, e.g. "diffusion.py"
    old: str                       # exact source text, occurring exactly once in the file
    new: str                       # the mistake
    breaks: str                    # what it breaks, one sentence (for the README table)
    notebooks: tuple[str, ...]     # notebook ids whose asserts should catch it, e.g. ("04",)
    tests: tuple[str, ...]         # unit-test files or node ids, e.g. ("tests/test_diffusion.py",)

    def apply(self, root: Path) -> None:
        """Write the mutated file into the copy of course_lib at ``root``."""
        path = root / self.file
        text = path.read_text()
        count = text.count(self.old)
        if count != 1:
            raise ValueError(f"mutation {self.name}: expected the text to replace exactly once in "
                             f"course_lib/{self.file}, found it {count} times")
        path.write_text(text.replace(self.old, self.new))


def all_mutations() -> list[Mutation]:
    """Every planted mistake: the lists ``MUTATIONS`` of the modules in ``verification/mutants/``,
    one per topic (``verification/mutants/diffusion.py`` plants mistakes in ``course_lib/diffusion.py``
    and names the notebooks and unit tests expected to catch them)."""
    import importlib
    import pkgutil

    import verification.mutants as pkg

    out: list[Mutation] = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        out += importlib.import_module(f"verification.mutants.{info.name}").MUTATIONS
    names = [m.name for m in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"mutation names must be unique; repeated: {dup}")
    return out


def notebook_paths(ids: tuple[str, ...]) -> list[Path]:
    every = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    out = []
    for i in ids:
        hits = [p for p in every if p.stem == i or p.stem.startswith(i + "_")]
        if len(hits) != 1:
            raise ValueError(f"notebook id {i!r} matches {len(hits)} notebooks in notebooks/")
        out.append(hits[0])
    return out


def first_failure(pytest_output: str) -> str:
    m = re.search(r"^FAILED (\S+)", pytest_output, re.M) or re.search(r"^ERROR (\S+)", pytest_output, re.M)
    return m.group(1) if m else ""


@dataclass
class Result:
    mutation: Mutation
    unit_test: str          # the first failing unit test ("" when none failed)
    notebook: str           # "NN cell i: <line> [<error>]" ("" when every notebook passed)
    seconds: float

    @property
    def caught(self) -> bool:
        return bool(self.unit_test) and bool(self.notebook)


def run_one(m: Mutation, timeout: int = CELL_TIMEOUT) -> Result:
    """Plant ``m``, run its unit tests (at most NOTEBOOK_TIMEOUT s) and notebooks (``timeout`` s a cell)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"mutation-{m.name}-") as tmp:
        copy = Path(tmp) / "course_lib"
        shutil.copytree(LIB, copy, ignore=shutil.ignore_patterns("__pycache__"))
        m.apply(copy)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([tmp, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                   PYTHONDONTWRITEBYTECODE="1")
        probe = subprocess.run([sys.executable, "-c", "import course_lib; print(course_lib.__file__)"],
                               cwd=tmp, env=env, capture_output=True, text=True)
        if not probe.stdout.strip().startswith(tmp):
            raise RuntimeError(f"mutation {m.name}: the mutated copy is not the one imported ({probe.stdout!r})")
        # pytest runs with its working directory in the temporary folder, whose mutated course_lib
        # comes first on sys.path; the tests and the configuration are the repository's.
        tests = [str(ROOT / t) for t in m.tests]
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-rf", "-p", "no:cacheprovider",
                               "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), *tests],
                              cwd=tmp, env=env, capture_output=True, text=True, timeout=NOTEBOOK_TIMEOUT)
        unit = first_failure(proc.stdout) if proc.returncode != 0 else ""
        if proc.returncode not in (0, 1):
            unit = unit or f"pytest exited {proc.returncode}: {proc.stdout.strip().splitlines()[-1:]}"
        notebook = ""
        for path in notebook_paths(m.notebooks):
            out: Outcome = run_in_subprocess(path, {"PYTHONPATH": env["PYTHONPATH"]}, timeout=timeout)
            if not out.ok:
                notebook = f"{path.stem[:2]} " + out.short().removeprefix("FAILED ")
                break
    unit = re.sub(r"^.*?(?=tests/)", "", unit) if "tests/" in unit else unit   # repository-relative
    return Result(m, unit, notebook, time.perf_counter() - t0)


def table(results: list[Result]) -> str:
    def esc(s):                       # one table cell: no pipes, no line breaks (assertion messages have both)
        return " ".join(s.split()).replace("|", "\\|")

    lines = ["| mutation | what it breaks | unit test that fails | notebook assert that fails |",
             "|---|---|---|---|"]
    for r in results:
        lines.append(f"| `{r.mutation.name}` (`{r.mutation.file}`) | {esc(r.mutation.breaks)} | "
                     f"{esc(r.unit_test) or '**none**'} | {esc(r.notebook) or '**none**'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="mutations to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--timeout", type=int, default=CELL_TIMEOUT,
                    help="seconds one notebook cell may run (default %(default)s)")
    args = ap.parse_args(argv)
    mutations = all_mutations()
    by_name = {m.name: m for m in mutations}
    if args.list:
        for m in mutations:
            print(f"{m.name:32s} course_lib/{m.file:18s} {m.breaks}")
        return 0
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        raise SystemExit(f"names: unknown mutation(s) {unknown}; see --list")
    chosen = [by_name[n] for n in args.names] if args.names else mutations
    results = []
    t0 = time.perf_counter()
    for m in chosen:
        r = run_one(m, args.timeout)
        results.append(r)
        print(f"[mutations] {m.name}: unit test {r.unit_test or 'NONE'} | notebook {r.notebook or 'NONE'} "
              f"({r.seconds:.0f} s)", flush=True)
    text = table(results)
    escaped = [r.mutation.name for r in results if not r.caught]
    footer = (f"{len(results) - len(escaped)}/{len(results)} mutations caught by both a unit test and a "
              f"notebook assert ({time.perf_counter() - t0:.0f} s, {time.strftime('%Y-%m-%d')}).")
    out = ROOT / "build" / "mutations"
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text + "\n\n" + footer + "\n")
    print("\n" + text + "\n\n" + footer)
    if escaped:
        print("[mutations] escaped: " + ", ".join(escaped))
    return 1 if escaped else 0


if __name__ == "__main__":
    sys.exit(main())
