"""How ``python3 course.py site`` stages the website's pages (``docs/site/build_site.py``), without
Sphinx and without executing anything: fast, part of every test run. The built site itself is
tested in a browser by ``test_site.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


site = _load("course_build_site", ROOT / "docs" / "site" / "build_site.py")


@pytest.fixture(scope="module")
def api():
    modules = site.public_modules()
    own, reexported, canonical = site.documented_names(modules)
    documented = {f"{m}.{n}" for m, names in own.items() for n in names}
    return modules, own, reexported, canonical, documented


def test_every_public_name_is_documented_once(api):
    modules, own, reexported, _, documented = api
    import importlib
    for mod_name in modules:
        mod = importlib.import_module(mod_name)
        for name in getattr(mod, "__all__", []):
            if name.startswith("__"):
                continue
            assert name in own[mod_name] or name in reexported[mod_name], f"{mod_name}.{name} is not in the API"
    assert "course_lib.diffusion.q_sample" in documented
    # A re-export (course_lib.grading.check's neighbours, the widgets package) is documented where
    # it is defined, not twice.
    assert "course_lib.grading.Exercise" not in documented and "course_lib.exercises.Exercise" in documented


def test_usage_finder_follows_the_import_forms(api):
    *_, canonical, documented = api
    finder = site.UsageFinder(canonical, documented)
    assert finder.cell("import course_lib\nfrom course_lib import diffusion as D, toy\n"
                       "from course_lib.widgets import divergences as W\n"
                       "from course_lib.gaussians import gaussian_kl as kl\n") == []
    used = finder.cell("s = D.NoiseSchedule.linear(100)\nx = D.q_sample(s, x0, t)\nm = toy.ring_mixture()\n"
                       "kl(a, b, c, d)\ncourse_lib.seed_everything(0)\nW.forward_reverse_kl_explorer()\n"
                       "mix.sample(10)  # an instance's method: not resolvable, not listed\n")
    assert used == ["course_lib.diffusion.NoiseSchedule", "course_lib.diffusion.q_sample",
                    "course_lib.toy.ring_mixture", "course_lib.gaussians.gaussian_kl",
                    "course_lib.seed_everything", "course_lib.widgets.divergences.forward_reverse_kl_explorer"]
    # A name re-exported by the widgets package resolves to where it is documented.
    finder.aliases = {}
    assert finder.cell("from course_lib import widgets\nwidgets.forward_reverse_kl_explorer()") == [
        "course_lib.widgets.divergences.forward_reverse_kl_explorer"]
    assert finder.cell("%matplotlib inline\nx = (") == []


def test_the_notebooks_use_documented_names_and_q_sample_is_among_them(api):
    *_, canonical, documented = api
    finder = site.UsageFinder(canonical, documented)
    used = {}
    for nb in NOTEBOOKS:
        finder.aliases = {}
        cells = json.loads(nb.read_text())["cells"]
        used[nb.stem] = {n for c in cells if c["cell_type"] == "code"
                         for n in finder.cell("".join(c["source"]))}
        assert len(used[nb.stem]) >= 3, f"{nb.stem}: only {used[nb.stem]} found"
        assert used[nb.stem] <= documented
    assert any("course_lib.diffusion.q_sample" in u for u in used.values())


def test_links_are_rewritten_for_the_site():
    linker = site.Linker({"notebooks/02_vae.ipynb", "docs/bibliography.md"}, {"ho2020"}, repo_url="")
    md = ("[Ho et al. 2020](../docs/bibliography.md#ho2020), [the VAE](02_vae.ipynb), "
          "[code](../course_lib/vae.py), [web](https://example.org), `[not](a link)`, [x](#local), "
          "[gone](../docs/bibliography.md#nobody2099)")
    out = linker(md, "notebooks")
    assert out == ("[Ho et al. 2020](#bib-ho2020), [the VAE](02_vae.ipynb), code, [web](https://example.org), "
                   "`[not](a link)`, [x](#local), [gone](#bib-nobody2099)")
    assert linker.missing_bib == ["nobody2099"]
    linker = site.Linker(set(), set(), repo_url="https://example.org/course")
    assert linker("[code](course_lib/vae.py)", "") == "[code](https://example.org/course/blob/main/course_lib/vae.py)"
    assert linker("[tests](tests)", "") == "[tests](https://example.org/course/tree/main/tests)"


def test_headings_get_unique_targets_outside_code():
    used = set()
    src, heads = site.label_headings("## The ELBO\ntext\n```\n# a comment\n```\n### The $q(x_t)$ kernel", "nb04", used)
    assert src.splitlines()[0] == "(nb04-the-elbo)=" and "(nb04-the-qxt-kernel)=" in src
    assert "# a comment" in src and src.count(")=") == 2
    _, again = site.label_headings("## The ELBO", "nb04", used)
    assert again == [(2, "nb04-the-elbo-2", "The ELBO")]


def test_explorer_becomes_its_starting_figure_with_a_note():
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_html", "IPY_MODEL_row", "IPY_MODEL_out"]}},
        "html": {"model_name": "HTMLModel", "state": {"value": "<p>What to look for</p>"}},
        "row": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_s"]}},
        "s": {"model_name": "FloatSliderModel", "state": {"description": "sigma", "value": 0.3}},
        "out": {"model_name": "OutputModel", "state": {"outputs": [
            {"output_type": "display_data", "metadata": {},
             "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}]}},
        "bar": {"model_name": "FloatProgressModel", "state": {"value": 1.0}},
    }
    view = {"output_type": "display_data", "data": {site.WIDGET_VIEW: {"model_id": "box"}, "text/plain": "VBox()"}}
    out = site.static_widget(view, state)
    assert [list(o["data"]) for o in out] == [["text/html"], ["image/png"], ["text/html"]]
    assert "Interactive in JupyterLab" in out[-1]["data"]["text/html"] and "sigma = 0.3" in out[-1]["data"]["text/html"]
    progress = {"output_type": "display_data", "data": {site.WIDGET_VIEW: {"model_id": "bar"}}}
    assert site.static_widget(progress, state) == []


def test_the_readme_has_the_sections_the_site_shows():
    sections = site.readme_sections((ROOT / "README.md").read_text())
    for prefix in ("Two commands", "Course map", "Studying on your own", "For instructors"):
        title, body = site.find_section(sections, prefix)
        assert body.strip(), title
    _, instructors = site.find_section(sections, "For instructors")
    assert "\n## The exercises, by notebook" in instructors  # raised one level for its own page
    assert "| 00 |" not in site.drop_table_column("| # | seeds |\n|---|---|\n| 00 | 002 |\n", "seeds").split("\n")[0]
    assert site.drop_table_column("| # | seeds |\n|---|---|\n| 00 | 002 |\n", "seeds") == "| # |\n|---|\n| 00 |\n"


def test_course_py_reuses_a_fresh_executed_notebook_only(tmp_path, monkeypatch):
    course = _load("course_entry", ROOT / "course.py")
    monkeypatch.setattr(course, "BUILD", tmp_path)
    nb = NOTEBOOKS[0]
    (tmp_path / "notebooks").mkdir()
    done = tmp_path / "notebooks" / nb.name
    assert not course.executed_is_fresh(nb)                      # missing
    executed = json.loads(nb.read_text())
    for c in executed["cells"]:
        if c["cell_type"] == "code":
            c["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]
    done.write_text(json.dumps(executed))
    future = time.time() + 10
    os.utime(done, (future, future))
    assert course.executed_is_fresh(nb)                          # same cells, newer than the sources
    os.utime(done, (0, 0))
    assert not course.executed_is_fresh(nb)                      # older than the notebook or course_lib
    executed["cells"][-1]["source"] = "changed"
    done.write_text(json.dumps(executed))
    os.utime(done, (future, future))
    assert not course.executed_is_fresh(nb)                      # the notebook changed since
