"""The verification tools themselves: the notebook runner, robustness variants, the mutation list.

Running every mutation takes many minutes and is not part of this suite
(``python3 course.py mutations``); here we check that every planted mistake still applies to the
current source exactly once, so the list cannot rot silently when ``course_lib`` changes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from verification.mutations import ROOT, all_mutations, notebook_paths
from verification.robustness import Variant
from verification.run import failing_line, run_in_subprocess

MUTATIONS = all_mutations()


@pytest.mark.parametrize("m", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_mutation_applies_exactly_once(m, tmp_path):
    copy = tmp_path / "course_lib"
    shutil.copytree(ROOT / "course_lib", copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = (copy / m.file).read_text()
    m.apply(copy)
    after = (copy / m.file).read_text()
    assert after != before and m.old != m.new
    compile(after, m.file, "exec")                       # the mistake is still valid Python
    assert m.breaks and m.notebooks and m.tests
    assert notebook_paths(m.notebooks)
    for t in m.tests:
        assert (ROOT / t.split("::")[0]).exists(), t


def test_mutation_names_are_unique():
    names = [m.name for m in MUTATIONS]
    assert len(names) == len(set(names))


def test_mutation_that_does_not_apply_is_an_error(tmp_path):
    from verification.mutations import Mutation

    (tmp_path / "x.py").write_text("a = 1\na = 1\n")
    with pytest.raises(ValueError, match="exactly once.*found it 2 times"):
        Mutation("m", "x.py", "a = 1", "a = 2", "b", ("00",), ("tests",)).apply(tmp_path)


def test_variant_parsing():
    assert Variant.parse("3") == Variant(3)
    v = Variant.parse("1:default:t2")
    assert v == Variant(1, True, 2)
    assert v.env() == {"COURSE_SEED": "1", "ATEN_CPU_CAPABILITY": "default", "COURSE_THREADS": "2"}
    assert Variant.parse("0").env()["ATEN_CPU_CAPABILITY"] == ""   # removed from the environment
    for bad in ("-1", "x", "2:fast", "2:t0"):
        with pytest.raises(ValueError, match="variant"):
            Variant.parse(bad)


def test_failing_line_picks_the_assert_in_the_cell():
    tb = ("\x1b[0;31mAssertionError\x1b[0m Traceback\nCell In[3], line 2\n      1 y = 2\n"
          "\x1b[0;32m----> 2\x1b[0m assert x == 2, 'no'\n")
    assert failing_line(tb, "y = 2\nassert x == 2, 'no'") == "assert x == 2, 'no'"


def test_runner_reports_the_failing_assert_and_the_environment(tmp_path):
    cells = [nbformat.v4.new_code_cell("import os\nseed = int(os.environ['COURSE_SEED'])"),
             nbformat.v4.new_code_cell("print(seed)\nassert seed == 0, f'seed is {seed}'")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, str(path))
    assert run_in_subprocess(path, {"COURSE_SEED": "0"}, timeout=120).ok
    out = run_in_subprocess(path, {"COURSE_SEED": "4"}, timeout=120)
    assert not out.ok and out.cell == 1
    assert out.line == "assert seed == 0, f'seed is {seed}'" and out.error == "AssertionError: seed is 4"
