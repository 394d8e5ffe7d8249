"""Repository invariants: lint clean, paired notebooks in sync and stripped, install files that agree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


def test_tree_passes_ruff():
    """The ruff configuration in pyproject.toml holds for the whole tree, notebook scripts included
    (``python3 course.py test`` runs the same check before pytest; this catches a pytest-only run)."""
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, (
        f"ruff found violations (`ruff check --fix .` sorts imports and removes unused ones):\n"
        f"{proc.stdout}{proc.stderr}")


def test_course_has_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert names, "no notebooks in notebooks/"
    assert all(re.match(r"\d\d_[a-z0-9_]+\.ipynb$", n) for n in names), names
    assert names[0].startswith("00_") and names[1].startswith("01_"), names


def test_every_notebook_has_its_paired_script_and_back():
    assert {p.stem for p in NOTEBOOKS} == {p.stem for p in SCRIPTS}, (
        "notebooks/ and scripts/ must pair one to one (jupytext.toml); run "
        "`jupytext --sync notebooks/*.ipynb`")


def _cells(nb):
    out = []
    for c in nb.cells:
        meta = c.metadata.get("nbgrader")
        out.append((c.cell_type, c.source.strip(), meta))
    return out


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_pair_has_not_drifted(nb_path):
    script = ROOT / "scripts" / (nb_path.stem + ".py")
    a, b = jupytext.read(nb_path), jupytext.read(script)
    ca, cb = _cells(a), _cells(b)
    assert len(ca) == len(cb), (f"{nb_path.name} has {len(ca)} cells, {script.name} has {len(cb)}: "
                                "run `jupytext --sync` on the one you edited")
    for i, (x, y) in enumerate(zip(ca, cb)):
        assert x == y, f"cell {i} differs between {nb_path.name} and {script.name}: run `jupytext --sync`"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            assert c.outputs == [], f"{nb_path.name} cell {i} has outputs: strip them"
            assert c.execution_count is None, f"{nb_path.name} cell {i} has an execution count"


def _norm(name: str) -> str:
    name = re.sub(r"[-_.]+", "-", name).lower()
    return {"pytorch": "torch"}.get(name, name)


def _split(req: str) -> tuple[str, str]:
    req = req.split(";")[0].strip()
    m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    assert m, req
    return _norm(m.group(1)), m.group(2).replace(" ", "")


def _installed_extras() -> list[str]:
    """The extras ``course.py`` setup installs (its ``EXTRAS``): the course environment."""
    m = re.search(r'^EXTRAS = "([^"]+)"', (ROOT / "course.py").read_text(), re.M)
    assert m, "course.py: no EXTRAS = \"...\" line"
    return m.group(1).split(",")


def test_environment_yml_agrees_with_pyproject():
    """environment.yml is the course environment: the dependencies and the extras course.py
    installs. Other extras (``bench``: diffusers, for one benchmark) stay out of both."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    reqs = list(project["dependencies"])
    extras = _installed_extras()
    assert set(extras) <= set(project["optional-dependencies"]), extras
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    py = dict(_split(r) for r in reqs if "python_version" not in r)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = dict(_split(d) for d in env["dependencies"] if isinstance(d, str))
    assert conda.pop("python") == project["requires-python"].replace(" ", "")
    conda.pop("pip")
    assert conda == py, (
        f"environment.yml and pyproject.toml disagree:\n only in pyproject: "
        f"{ {k: v for k, v in py.items() if conda.get(k) != v} }\n only in environment.yml: "
        f"{ {k: v for k, v in conda.items() if py.get(k) != v} }")


def test_pyproject_declares_ranges_not_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + [r for d in project["optional-dependencies"].values() for r in d]
    pinned = [r for r in reqs if "==" in r]
    assert not pinned, f"exact pins break installs on new Python versions: {pinned}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_opens_with_the_python_kernel(nb_path):
    """Without kernelspec metadata JupyterLab asks students to pick a kernel; nbgrader needs it too."""
    nb = nbformat.read(nb_path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", (
        f"{nb_path.name}: kernelspec metadata missing; the paired script needs the jupytext header "
        "with kernelspec (see scripts/00_*.py)")
    script = (ROOT / "scripts" / (nb_path.stem + ".py")).read_text()
    assert "kernelspec:" in script.split("# %%", 1)[0], f"{nb_path.stem}.py: header without kernelspec"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_solution_and_hidden_regions_sit_in_nbgrader_cells(nb_path):
    """A solution region outside a solution cell (e.g. an nbgrader marker line of the paired script
    wrapped onto two lines, which silently drops the cell's metadata) makes nbgrader refuse the
    whole assignment; say which cell here, before the slow homework tests."""
    nb = nbformat.read(nb_path, as_version=4)
    bad = []
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        if "### BEGIN SOLUTION" in cell.source and not meta.get("solution"):
            bad.append(f"cell {i}: a solution region in a cell without nbgrader solution metadata")
        if "### BEGIN HIDDEN TESTS" in cell.source and not meta.get("grade"):
            bad.append(f"cell {i}: hidden tests in a cell that is not graded")
        if re.match(r'# ".*"task": (true|false)\}\s*$', cell.source.split("\n", 1)[0]):
            bad.append(f"cell {i}: starts with the tail of a wrapped nbgrader marker")
    assert not bad, f"{nb_path.name}: " + "; ".join(bad)
