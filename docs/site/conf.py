"""Sphinx configuration of the course website (``python3 course.py site``).

The pages themselves are not kept in the repository: ``docs/site/build_site.py`` stages them
into ``build/site-src/`` (the executed notebooks, the README's sections, the bibliography, one
API page per ``course_lib`` module) and writes ``_usage.json`` there, the map from each API name
to the notebook sections whose code uses it, which ``_api_usage`` below appends to every API entry.
Everything is built offline: MathJax is served from the site itself (``_static/mathjax``, copied
from the ``django-static-mathjax`` package), the theme bundles its fonts and scripts, and nothing
is fetched from a CDN. Warnings are errors (``sphinx -W``); ``nitpicky`` makes a broken
cross-reference to a ``course_lib`` name a warning, and numpydoc's validation makes a public
name without a docstring, or with undocumented parameters, one.
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from pathlib import Path

# numpydoc also parses the raw docstring when it mangles signatures, before _shapes_section below
# has turned the "Shapes" section into a rubric; that parse's warning is about nothing shown.
warnings.filterwarnings("ignore", message="Unknown section Shapes", category=UserWarning)

project = "Deep Generative Models, derived and verified"
author = "the course's authors"
copyright = "the course's authors, MIT licence"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_togglebutton",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "_sources_nb"]
root_doc = "index"
# Pages are staged from notebooks and the README: the stager links what exists, and a reference
# that does not resolve fails the build.
nitpicky = True
# Names from outside course_lib (torch.Tensor, numpy, matplotlib, builtins) have no inventory
# offline (intersphinx needs the network): every other reference must resolve. A docstring may name
# what its own module imports (``slider`` in course_lib.widgets, ``train.fit``): _importable below
# links it to where it is documented.
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|numpy|np|scipy|matplotlib|sklearn|ipywidgets|IPython|collections|typing|functools"
               r"|builtins|int|float|str|bool|tuple|list|dict|None|True|False|object|callable)(\..*)?"),
    # course_lib's private helpers (``_extract``) are named in docstrings but not documented.
    (r"py:.*", r"(.*\.)?_[^.]*(\..*)?"),
]
suppress_warnings = [
    # myst-nb: a figure's text/plain fallback ("<Figure size ...>") next to its PNG.
    "mystnb.unknown_mime_type",
]

# -- notebooks (myst-nb): executed by `course.py lab --headless`, never here ---------------------
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# -- API reference (autodoc + autosummary + numpydoc) -------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
# A method without its own docstring (an nn.Module's forward) is not documented with torch's.
autodoc_inherit_docstrings = False
autodoc_typehints = "none"          # numpydoc's Parameters section already gives types and shapes
autodoc_member_order = "bysource"
add_module_names = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# Every public name has a docstring (GL08); its sections are numpydoc's (GL06: an unknown section
# would be dropped from the page without a word; "Shapes" is made known below), in numpydoc's
# order (GL07); it documents no parameter the function does not take (PR02).
numpydoc_validation_checks = {"GL06", "GL07", "GL08", "PR02"}
numpydoc_validation_exclude = {r"\.__init__$", r"\.__call__$", r"\.forward$", r"\.extra_repr$"}

# -- HTML: the book theme, everything served from the site itself --------------------------------
html_theme = "sphinx_book_theme"
html_title = "Deep Generative Models, derived and verified"
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "use_download_button": False,  # each notebook page links its source notebook itself
    "use_fullscreen_button": False,
    "home_page_in_toc": True,
}
_repo = os.environ.get("COURSE_REPO_URL", "").rstrip("/")
if _repo:
    html_theme_options.update({"repository_url": _repo, "use_repository_button": True})

# MathJax 3 from this site's own _static/ (build_site.py copies it), not the CDN Sphinx defaults to.
mathjax_path = "mathjax/tex-mml-chtml.js"
mathjax3_config = {
    "tex": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
            "processEscapes": True, "processEnvironments": True},
    "options": {"processHtmlClass": "tex2jax_process|mathjax_process|math|output_area"},
}


# -- docstrings: the course's "Shapes" section, and autosummary's one-line summaries ---------------
def _shapes_section(app, what, name, obj, options, lines):
    """course_lib's docstrings (nets.py, score.py) give a class's tensor shapes in a section
    "Shapes", which numpydoc does not know and would drop: show it as a rubric at the end of the
    extended summary, before numpydoc parses the sections."""
    for i in range(len(lines) - 1):
        if lines[i].strip() == "Shapes" and set(lines[i + 1].strip()) == {"-"}:
            end = i + 2
            while end < len(lines) - 1 and not (lines[end].strip() and set(lines[end + 1].strip()) == {"-"}
                                                 and len(lines[end + 1].strip()) >= 3):
                end += 1
            if end == len(lines) - 1:
                end = len(lines)
            body = lines[i + 2:end]
            del lines[i:end]
            first = next((j for j in range(len(lines) - 1) if lines[j].strip()
                          and set(lines[j + 1].strip()) == {"-"} and len(lines[j + 1].strip()) >= 3), len(lines))
            lines[first:first] = ["", ".. rubric:: Shapes", "", *body, ""]
            return


def _whole_first_paragraph(extract):
    """autosummary cuts a summary at the first ". ", also inside ``w2 . tanh(x)``: take the whole
    first paragraph when the cut leaves inline markup open."""
    def summary(doc, settings):
        text = extract(doc, settings)
        if text.count("``") % 2 or text.replace("``", "").count("`") % 2:
            para = []
            for line in doc:
                if not line.strip():
                    if para:
                        break
                    continue
                para.append(line.strip())
            text = " ".join(para)
        return text
    return summary


from sphinx.ext import autosummary as _autosummary  # noqa: E402

_autosummary.extract_summary = _whole_first_paragraph(_autosummary.extract_summary)


# -- "Used in": each API entry names the notebook sections whose code uses it --------------------
def _lookup(module: str, dotted: str):
    """``module``'s attribute ``dotted``, importing submodules on the way; None if there is none."""
    parts = dotted.split(".")
    for i in range(len(parts), -1, -1):  # the longest importable module prefix first
        try:
            obj = importlib.import_module(".".join([module, *parts[:i]]))
        except ImportError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj
    return None


def _importable(app, env, node, contnode):
    """Resolve a Python reference that names an object through the module the docstring is in
    (a re-export or an imported module) to the object's documented home."""
    if node.get("refdomain") != "py" or not node.get("py:module"):
        return None
    target = node["reftarget"].lstrip("~.")
    for base in (node["py:module"], "course_lib"):  # the docstring's module, then the package's
        obj = _lookup(base, target)
        if obj is not None:
            break
    else:
        return None
    home, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not (isinstance(home, str) and home.startswith("course_lib") and qualname) or f"{home}.{qualname}" == target:
        return None
    canonical = f"{home}.{qualname}"
    new = node.deepcopy()
    new["reftarget"] = canonical
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"], canonical,
                                             new, contnode)


def _skip_namedtuple_fields(app, what, name, obj, skip, options):
    """A NamedTuple's fields are documented in its own docstring, not as "Alias for field number 0"."""
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


_USAGE: dict[str, list[dict]] = {}
_DOCUMENTED: set[str] = set()


def _api_usage(app, what, name, obj, options, lines):
    if what == "module" or name not in _DOCUMENTED:
        return
    uses = _USAGE.get(name)
    lines += ["", ".. rubric:: Used in the notebooks", ""]
    if not uses:
        lines += ["No notebook's code calls it directly (it serves other functions, the exercises or the tests).", ""]
        return
    for use in uses:
        if use["label"]:
            lines.append(f"- :ref:`{use['notebook']} · {use['title']} <{use['label']}>`")
        else:
            lines.append(f"- :doc:`{use['notebook']} · {use['title']} <{use['doc']}>`")
    lines.append("")


def setup(app):
    usage_file = Path(app.srcdir) / "_usage.json"
    staged = json.loads(usage_file.read_text()) if usage_file.exists() else {}
    _USAGE.update(staged.get("usage", {}))
    _DOCUMENTED.update(staged.get("documented", []))
    app.connect("autodoc-process-docstring", _shapes_section, priority=400)
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
    app.connect("missing-reference", _importable)
    # After numpydoc (priority 500) has turned the docstring into reST.
    app.connect("autodoc-process-docstring", _api_usage, priority=600)
    return {"parallel_read_safe": True}
