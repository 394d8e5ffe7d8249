"""Stage and build the course website (``python3 course.py site``).

``course.py site`` first makes sure ``build/notebooks/`` holds a fresh executed copy of every
notebook (what ``course.py lab --headless`` writes; only missing or stale ones are executed), then
runs this script in the course environment. It

1. stages the site's pages into ``build/site-src/`` (removed and rewritten each time):

   * ``index.md``: the README's introduction, its two commands and the course map;
   * ``self-study.md`` and ``instructors.md``: the README's guides for students and instructors;
   * ``docs/bibliography.md``: every entry becomes a link target ``bib-<key>``;
   * ``notebooks/NN_name.ipynb``: the executed notebooks, each with a header linking its source
     notebook and the ``course_lib`` names its code uses, a link target before every heading,
     explorers (ipywidgets) replaced by their starting figure and a note, solutions folded;
   * ``api/``: one page per public ``course_lib`` module and an autosummary page per public name;
   * ``_usage.json``: for each API name, the notebook sections whose code uses it (found by
     parsing the notebooks' code, not written by hand); ``conf.py`` appends them to each entry;

2. runs Sphinx with warnings as errors into ``build/site/`` (open ``build/site/index.html``).

Links between staged pages are checked by Sphinx. A link to a repository file that is not a page
(``course_lib/diffusion.py``) points to ``$COURSE_REPO_URL/blob/main/<path>`` where that
variable is set (e.g. by a GitHub Pages workflow), and otherwise becomes plain text.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NOTEBOOKS = ROOT / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
EXPLORER_NOTE = ("<p class=\"course-widget-note\"><b>Interactive in JupyterLab.</b> This explorer's "
                 "controls redraw the figure as you move them (<code>python3 course.py lab</code>); "
                 "here it is shown at its starting values{controls}.</p>")


def notebooks() -> list[Path]:
    """The course notebooks in course order, found as ``course.py`` finds them."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


# ------------------------------------------------------------------------------------------------
# Markdown: sections of the README, links
# ------------------------------------------------------------------------------------------------
def readme_sections(text: str) -> dict[str, str]:
    """The README's level-2 sections by title (each with its level-3 subsections)."""
    out, title, buf, fence = {}, "_intro", [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        if not fence and line.startswith("## "):
            out[title] = "\n".join(buf).strip() + "\n"
            title, buf = line[3:].strip(), []
            continue
        buf.append(line)
    out[title] = "\n".join(buf).strip() + "\n"
    return out


def find_section(sections: dict[str, str], prefix: str) -> tuple[str, str]:
    """A README section, its subsections raised one level (### -> ##) for a page of its own."""
    for title, body in sections.items():
        if title.lower().startswith(prefix.lower()):
            return title, _outside_code(body, lambda t: re.sub(r"(?m)^#(#{2,})(\s)", r"\1\2", t))
    raise SystemExit(f"README.md has no section starting with '## {prefix}' (the site needs it)")


LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^()\s]+)\)")


class Linker:
    """Rewrites a page's relative links for the staged site (see the module docstring)."""

    def __init__(self, staged: set[str], bib_keys: set[str], repo_url: str):
        self.staged, self.bib_keys, self.repo_url = staged, bib_keys, repo_url
        self.missing_bib: list[str] = []

    def __call__(self, text: str, page_dir: str) -> str:
        return _outside_code(text, lambda chunk: LINK.sub(lambda m: self._one(m, page_dir), chunk))

    def _one(self, m: re.Match, page_dir: str) -> str:
        bang, label, target = m.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return m.group(0)
        path, _, anchor = target.partition("#")
        repo_path = os.path.normpath(os.path.join(page_dir, path)).replace(os.sep, "/") if path else ""
        if repo_path == "docs/bibliography.md" and anchor:
            if anchor not in self.bib_keys:
                self.missing_bib.append(anchor)
            return f"{bang}[{label}](#bib-{anchor})"
        if repo_path in self.staged:
            return m.group(0)
        if self.repo_url and not repo_path.startswith(".."):
            kind = "tree" if (ROOT / repo_path).is_dir() else "blob"
            url = f"{self.repo_url}/{kind}/main/{repo_path}" + (f"#{anchor}" if anchor else "")
            return f"{bang}[{label}]({url})"
        return label if not bang else f"*({label})*"


def _outside_code(text: str, fn) -> str:
    """Apply ``fn`` to the parts of Markdown outside fenced code blocks and inline code."""
    parts = re.split(r"(```.*?```|`[^`\n]*`)", text, flags=re.S)
    return "".join(p if i % 2 else fn(p) for i, p in enumerate(parts))


def drop_table_column(md: str, header: str) -> str:
    """Remove the column titled ``header`` from every Markdown table whose header row has it."""
    lines, out, col = md.splitlines(), [], None
    for line in lines:
        if line.startswith("|"):
            cells = line.strip().strip("|").split("|")
            if col is None and header in [c.strip() for c in cells]:
                col = [c.strip() for c in cells].index(header)
            if col is not None and col < len(cells):
                del cells[col]
                line = "|" + "|".join(cells) + "|"
        else:
            col = None
        out.append(line)
    return "\n".join(out) + "\n"


def slug(text: str) -> str:
    text = re.sub(r"\$[^$]*\$|`[^`]*`", lambda m: re.sub(r"[^a-z0-9]+", "", m.group(0).lower()), text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:60] or "section"


TEX_TEXT = {"mid": "|", "|": "‖", ",": " ", ";": " ", "!": "", "quad": " ", "to": "→", "le": "≤", "ge": "≥",
            "approx": "≈", "sim": "~", "nabla": "∇", "infty": "∞", "cdot": "·", "times": "×"}


def _tex_plain(tex: str) -> str:
    """Inline TeX as readable text (``q(x_t \\mid x_0)`` -> ``q(x_t | x_0)``, Greek as Greek)."""
    def command(m: re.Match) -> str:
        name = m.group(1)
        if name in TEX_TEXT:
            return TEX_TEXT[name]
        try:
            return unicodedata.lookup(f"GREEK SMALL LETTER {name.upper()}")
        except KeyError:
            return ""  # \hat, \mathcal, \mathrm, ...: the argument stays
    t = re.sub(r"\\([a-zA-Z]+|[|,;!])", command, tex)
    return re.sub(r"[{}]", "", t)


def plain_title(md: str) -> str:
    """A heading as plain text fit for a reST link title (no markup, math as readable text)."""
    t = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", md)
    t = re.sub(r"\$([^$]*)\$", lambda m: _tex_plain(m.group(1)), t)
    t = re.sub(r"[`*$\\<>]", "", t)
    return re.sub(r"\s+", " ", t).strip()


# ------------------------------------------------------------------------------------------------
# The API: public modules and names, and how the notebooks' code refers to them
# ------------------------------------------------------------------------------------------------
def public_modules() -> list[str]:
    import course_lib
    names = ["course_lib"] + [m.name for m in pkgutil.walk_packages(course_lib.__path__, "course_lib.")
                              if not any(p.startswith("_") for p in m.name.split("."))]
    return names


def api_groups(modules: list[str]) -> list[tuple[str, list[str]]]:
    """The modules in reading order: the topics in course order, then the building blocks."""
    from course_lib.widgets import TOPICS
    topics = [f"course_lib.{t}" for t in TOPICS if f"course_lib.{t}" in modules]
    widgets = [m for m in modules if m.startswith("course_lib.widgets")]
    grading = [m for m in modules if m.startswith("course_lib.exercises") or m == "course_lib.grading"]
    rest = [m for m in modules if m not in topics + widgets + grading]
    return [("Each notebook's mathematics", topics), ("Building blocks", rest),
            ("Figures and explorers", widgets), ("Exercises and grading", grading)]


def documented_names(modules: list[str]) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[int, str]]:
    """For each module, the public names it defines (documented there) and those it re-exports;
    and ``id(object) -> canonical dotted name`` for resolving the notebooks' references."""
    own, reexported, canonical = {}, {}, {}
    for mod_name in modules:
        mod = importlib.import_module(mod_name)
        own[mod_name], reexported[mod_name] = [], []
        for name in getattr(mod, "__all__", []):
            if name.startswith("__"):
                continue
            obj = getattr(mod, name)
            home = getattr(obj, "__module__", None) if (inspect.isclass(obj) or callable(obj)) else mod_name
            if home in (None, mod_name) or home not in modules:
                own[mod_name].append(name)
                canonical.setdefault(id(obj), f"{mod_name}.{name}")
            else:
                reexported[mod_name].append(name)
    # A name re-exported from a module that is not public keeps its first public home.
    return own, reexported, canonical


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


class UsageFinder:
    """Which documented ``course_lib`` names a notebook's code cells refer to (imports followed)."""

    def __init__(self, canonical: dict[int, str], documented: set[str]):
        self.canonical, self.documented = canonical, documented
        self.aliases: dict[str, str] = {}

    def cell(self, source: str) -> list[str]:
        src = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(src)
        except SyntaxError:
            return []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "course_lib":
                        self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else "course_lib"
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "course_lib":
                for a in node.names:
                    if a.name != "*":
                        self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        found: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.Attribute, ast.Name)):
                dotted = _dotted(node)
                if not dotted:
                    continue
                head, _, rest = dotted.partition(".")
                if head not in self.aliases:
                    continue
                name = self.resolve(self.aliases[head] + (f".{rest}" if rest else ""))
                if name and name not in found:
                    found.append(name)
        return found

    def resolve(self, dotted: str) -> str | None:
        """The documented name of the longest importable prefix of ``dotted`` (an attribute of a
        class counts as its class)."""
        parts = dotted.split(".")
        for n in range(len(parts), 1, -1):
            obj = _import_dotted(parts[:n])
            if obj is _MISSING:
                continue
            name = self.canonical.get(id(obj))
            if name is None and ".".join(parts[:n]) in self.documented:
                name = ".".join(parts[:n])
            if name:
                return name
        return None


_MISSING = object()


def _import_dotted(parts: list[str]):
    for i in range(len(parts), 0, -1):
        mod_name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(mod_name)
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr, _MISSING)
            if obj is _MISSING:
                return _MISSING
        return obj
    return _MISSING


# ------------------------------------------------------------------------------------------------
# Notebooks
# ------------------------------------------------------------------------------------------------
HEADING = re.compile(r"^(#{1,4})\s+(.+?)\s*#*\s*$")


def label_headings(source: str, prefix: str, used: set[str]) -> tuple[str, list[tuple[int, str, str]]]:
    """Put a MyST target ``(prefix-slug)=`` before every heading of a Markdown cell."""
    out, heads, fence = [], [], False
    for line in source.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        m = None if fence else HEADING.match(line)
        if m:
            base = f"{prefix}-{slug(m.group(2))}"
            label, k = base, 2
            while label in used:
                label, k = f"{base}-{k}", k + 1
            used.add(label)
            if out and out[-1].strip():
                out.append("")
            out += [f"({label})=", line]
            heads.append((len(m.group(1)), label, plain_title(m.group(2))))
        else:
            out.append(line)
    return "\n".join(out), heads


def _widget_children(state: dict, model_id: str, seen: set[str]):
    if model_id in seen or model_id not in state:
        return
    seen.add(model_id)
    model = state[model_id]
    yield model
    for child in model["state"].get("children", []):
        yield from _widget_children(state, child.removeprefix("IPY_MODEL_"), seen)


def static_widget(output: dict, state: dict) -> list[dict]:
    """An explorer's output as its starting figure plus a note; other widgets (progress bars) as
    nothing."""
    model_id = output["data"][WIDGET_VIEW]["model_id"]
    models = list(_widget_children(state, model_id, set()))
    figures = [o for m in models if m["model_name"] == "OutputModel"
               for o in m["state"].get("outputs", []) if o.get("output_type") in ("display_data", "execute_result")]
    if not figures:
        return []
    html = [m["state"]["value"] for m in models if m["model_name"] == "HTMLModel" and m["state"].get("value")]
    kinds = ("SliderModel", "CheckboxModel", "DropdownModel", "ToggleButtonsModel")
    controls = [f"{m['state'].get('description', '').strip() or 'value'} = {m['state'].get('value')}"
                for m in models if "value" in m["state"] and m["model_name"].endswith(kinds)]
    note = EXPLORER_NOTE.format(controls=(": " + "; ".join(_html_escape(c) for c in controls)) if controls else "")
    out = [{"output_type": "display_data", "metadata": {}, "data": {"text/html": h}} for h in html]
    for fig in figures:
        data = {k: v for k, v in fig.get("data", {}).items() if k != "text/plain"} or fig.get("data", {})
        out.append({"output_type": "display_data", "metadata": fig.get("metadata", {}), "data": data})
    out.append({"output_type": "display_data", "metadata": {}, "data": {"text/html": note}})
    return out


def _html_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def stage_notebook(executed: Path, source: Path, dest: Path, number: str, linker: Linker,
                   finder: UsageFinder, usage: dict[str, list[dict]], labels: set[str],
                   repo_url: str) -> None:
    nb = json.loads(executed.read_text())
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    nb.get("metadata", {}).pop("widgets", None)
    finder.aliases = {}
    used_here: list[str] = []
    section = (None, source.stem)  # before the first heading: the page itself
    cells = []
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        meta = cell.setdefault("metadata", {})
        grader = meta.get("nbgrader", {})
        if cell["cell_type"] == "markdown":
            src, heads = label_headings(linker(src, "notebooks"), f"nb{number}", labels)
            if heads:
                section = heads[-1][1:]
            if grader.get("solution"):
                src = ("::::{admonition} Model answer (instructor version)\n:class: dropdown\n\n"
                       + src.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", "").strip()
                       + "\n::::")
        elif cell["cell_type"] == "code":
            names = finder.cell(src)
            for name in names:
                entry = {"notebook": number, "doc": f"/notebooks/{source.stem}", "label": section[0],
                         "title": section[1]}
                if entry not in usage.setdefault(name, []):
                    usage[name].append(entry)
                if name not in used_here:
                    used_here.append(name)
            tags = meta.setdefault("tags", [])
            if grader.get("solution") or "### BEGIN HIDDEN TESTS" in src:
                tags.append("hide-input")
            outputs = []
            for out in cell.get("outputs", []):
                if WIDGET_VIEW in out.get("data", {}):
                    outputs += static_widget(out, state)
                else:
                    outputs.append(out)
            cell["outputs"] = outputs
        cell["source"] = src
        cells.append(cell)
    header = notebook_header(source, used_here, repo_url)
    first_md = next((i for i, c in enumerate(cells) if c["cell_type"] == "markdown"), -1)
    cells.insert(first_md + 1, {"cell_type": "markdown", "id": "course-site-header", "metadata": {}, "source": header})
    nb["cells"] = cells
    dest.write_text(json.dumps(nb, indent=1))


def notebook_header(source: Path, used: list[str], repo_url: str) -> str:
    by_module: dict[str, list[str]] = {}
    for name in used:
        by_module.setdefault(name.rsplit(".", 1)[0], []).append(name)
    api = "\n".join(f"- `{mod}`: " + ", ".join(f"{{py:obj}}`~{n}`" for n in names)
                    for mod, names in sorted(by_module.items()))
    repo = f" ([in the repository]({repo_url}/blob/main/notebooks/{source.name}))" if repo_url else ""
    return (":::{admonition} About this page\n:class: tip\n\n"
            f"This is notebook `{source.stem}` run from top to bottom, with every output. Its source: "
            f"{{download}}`{source.name} <../_sources_nb/{source.name}>`{repo} (outputs stripped); "
            "open it with `python3 course.py lab`, or as a student with `python3 course.py lab --student`. "
            "Explorers are shown as their starting figure (they are interactive in JupyterLab); "
            "exercise solutions are folded (click to show).\n\n"
            f"**`course_lib` names its code uses** (each entry lists the sections that use it):\n\n{api}\n"
            ":::\n")


# ------------------------------------------------------------------------------------------------
# Pages
# ------------------------------------------------------------------------------------------------
def stage(src: Path, executed: Path, repo_url: str) -> None:
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for item in ("conf.py", "_templates", "_static"):
        p = HERE / item
        (shutil.copytree if p.is_dir() else shutil.copy)(p, src / item)
    copy_mathjax(src / "_static" / "mathjax")

    nbs = notebooks()
    if not nbs:
        raise SystemExit("no notebooks found in notebooks/")
    missing = [nb.name for nb in nbs if not (executed / nb.name).exists()]
    if missing:
        raise SystemExit(f"no executed copy in {executed} of: {', '.join(missing)} "
                         "(run `python3 course.py lab --headless` or `python3 course.py site`)")
    (src / "notebooks").mkdir()
    (src / "_sources_nb").mkdir()
    (src / "docs").mkdir()
    for png in (ROOT / "docs").glob("*.png"):
        shutil.copy(png, src / "docs" / png.name)

    bib_text = (ROOT / "docs" / "bibliography.md").read_text()
    bib_keys = set(re.findall(r'<a id="([^"]+)"></a>', bib_text))
    staged = {f"notebooks/{nb.name}" for nb in nbs} | {"docs/bibliography.md"} | \
             {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.png")}
    linker = Linker(staged, bib_keys, repo_url)

    # Bibliography: every entry a paragraph with its own link target.
    bib = []
    for line in linker(bib_text, "docs").splitlines():
        m = re.match(r'^- <a id="([^"]+)"></a>(.*)$', line)
        if m:
            bib += ["", f"(bib-{m.group(1)})=", m.group(2).lstrip()]
        else:
            bib.append(line[2:] if line.startswith("  ") and bib and bib[-1] and not line.strip().startswith("-")
                       else line)
    (src / "docs" / "bibliography.md").write_text("\n".join(bib) + "\n")

    # The API pages, and what each name is documented as.
    modules = public_modules()
    own, reexported, canonical = documented_names(modules)
    documented = {f"{m}.{n}" for m, names in own.items() for n in names}
    stage_api(src / "api", modules, own, reexported)

    # Notebooks.
    finder = UsageFinder(canonical, documented)
    usage: dict[str, list[dict]] = {}
    labels: set[str] = set()
    for nb in nbs:
        shutil.copy(nb, src / "_sources_nb" / nb.name)
        stage_notebook(executed / nb.name, nb, src / "notebooks" / nb.name, nb.stem[:2], linker, finder,
                       usage, labels, repo_url)
    (src / "_usage.json").write_text(json.dumps({"documented": sorted(documented), "usage": usage},
                                                indent=1, sort_keys=True))

    # Home page and guides, from the README.
    readme = readme_sections((ROOT / "README.md").read_text())
    intro = readme["_intro"]
    title = intro.splitlines()[0].lstrip("# ").strip()
    paragraph = intro.split("\n\n")[1].strip()
    t_cmd, commands = find_section(readme, "Two commands")
    t_map, course_map = find_section(readme, "Course map")
    t_self, self_study = find_section(readme, "Studying on your own")
    t_inst, instructors = find_section(readme, "For instructors")
    screenshots = "\n".join(line for line in intro.splitlines() if line.startswith(("![", "*")))
    nb_toc = "\n".join(f"notebooks/{nb.stem}" for nb in nbs)
    index = (f"# {title}\n\n{paragraph}\n\n{screenshots}\n\n## {t_cmd}\n\n{commands}\n## {t_map}\n\n"
             f"{drop_table_column(course_map, 'seeds')}\n"
             "Also here: the [guide for studying on your own](self-study.md), the "
             "[guide for instructors](instructors.md), the [bibliography](docs/bibliography.md) and the "
             "[API reference of `course_lib`](api/index.md), where each entry names the notebook "
             "sections that use it.\n\n"
             f"```{{toctree}}\n:hidden:\n:caption: Notebooks\n\n{nb_toc}\n```\n\n"
             "```{toctree}\n:hidden:\n:caption: Guides\n\nself-study\ninstructors\ndocs/bibliography\n```\n\n"
             "```{toctree}\n:hidden:\n:caption: Reference\n\napi/index\n```\n")
    (src / "index.md").write_text(linker(index, ""))
    (src / "self-study.md").write_text(linker(f"# {t_self}\n\n{self_study}", ""))
    (src / "instructors.md").write_text(linker(f"# {t_inst}\n\n{instructors}", ""))
    if linker.missing_bib:
        raise SystemExit("links to bibliography entries that do not exist: "
                         + ", ".join(sorted(set(linker.missing_bib))))


def stage_api(api: Path, modules: list[str], own: dict, reexported: dict) -> None:
    api.mkdir()
    groups = api_groups(modules)
    index = ["# API reference of `course_lib`", "",
             "Every public name of the package, generated from its numpydoc docstring (shapes, units, "
             "errors, source). Each entry lists the notebook sections whose code uses it.", ""]
    for title, mods in groups:
        if not mods:
            continue
        index += [f"## {title}", "", "```{toctree}", ":maxdepth: 1", ""] + mods + ["```", ""]
        for mod_name in mods:
            lines = [mod_name, "=" * len(mod_name), "", f".. automodule:: {mod_name}", "",
                     f".. currentmodule:: {mod_name}", ""]
            if own[mod_name]:
                lines += [".. autosummary::", "   :toctree: generated/", "   :nosignatures:", ""]
                lines += [f"   {n}" for n in own[mod_name]] + [""]
            if reexported[mod_name]:
                lines += ["Also importable from here: " + ", ".join(
                    f":py:obj:`~{getattr(importlib.import_module(mod_name), n).__module__}.{n}`"
                    for n in reexported[mod_name]) + ".", ""]
            (api / f"{mod_name}.rst").write_text("\n".join(lines))
    (api / "index.md").write_text("\n".join(index))


def copy_mathjax(dest: Path) -> None:
    """MathJax 3 (CommonHTML output) from the django-static-mathjax package: the combined
    tex-mml-chtml component and what it loads on demand (TeX extensions, fonts, menu, a11y)."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("MathJax is missing: install the site extra (`python3 course.py site` does)")
    es5 = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5"
    dest.mkdir(parents=True)
    shutil.copy(es5 / "tex-mml-chtml.js", dest / "tex-mml-chtml.js")
    for sub in ("input/tex/extensions", "output/chtml", "ui", "a11y", "adaptors"):
        if (es5 / sub).exists():
            shutil.copytree(es5 / sub, dest / sub)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--executed", type=Path, default=ROOT / "build" / "notebooks",
                    help="the executed notebooks (default: build/notebooks/, written by lab --headless)")
    ap.add_argument("--src", type=Path, default=ROOT / "build" / "site-src", help="where the pages are staged")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "site", help="the website")
    ap.add_argument("--jobs", default=os.environ.get("COURSE_SITE_JOBS", "1"),
                    help="Sphinx's parallel jobs (default 1)")
    args = ap.parse_args(argv)
    repo_url = os.environ.get("COURSE_REPO_URL", "").rstrip("/")
    t0 = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    stage(args.src, args.executed, repo_url)
    print(f"[site] staged pages in {args.src} ({time.perf_counter() - t0:.1f} s)", flush=True)
    if args.out.exists():
        shutil.rmtree(args.out)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-j", str(args.jobs),
           "-d", str(args.src.parent / "site-doctrees"), str(args.src), str(args.out)]
    print("[site] $ " + " ".join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc == 0:
        print(f"[site] built in {time.perf_counter() - t0:.0f} s: open {args.out / 'index.html'}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
