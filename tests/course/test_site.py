"""The course website (``python3 course.py site``, into ``build/site/``) as a reader meets it:
served on 127.0.0.1 and opened in headless Chromium with every request to another host blocked.

* the home page has the course map (a link to every notebook's page) and the two commands;
* every notebook page shows figures, equations typeset by MathJax (served by the site itself),
  its explorers as a static figure with a note, a working link to its source notebook and links to
  the API entries its code uses;
* the API page of ``course_lib.diffusion.q_sample`` shows its shapes, its source (paper and
  equation) and the notebook sections that use it, and those links land on a section;
* the search page returns results;
* no page asked for anything outside the site, and nothing it asked for was missing.

Screenshots go to ``build/browser/site-*.png`` (the README's screenshot of a notebook page comes
from here). The site must be built first: ``.ci/run`` runs ``python3 course.py site`` and then this
file with ``COURSE_REQUIRE_SITE=1``, which turns a missing site into a failure; elsewhere a missing
site skips these tests with a message saying how to build it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_fixtures import chromium_or_skip, free_port, launch_browser, stop, wait_http  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "build" / "site"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ARTIFACTS = ROOT / "build" / "browser"

pytestmark = [pytest.mark.browser, pytest.mark.site]

if not (SITE / "index.html").exists():
    if os.environ.get("COURSE_REQUIRE_SITE"):
        raise RuntimeError(f"no website in {SITE}: `python3 course.py site` should have built it")
    pytest.skip(f"no website in {SITE}: build it with `python3 course.py site` (CI does, then runs "
                "this file)", allow_module_level=True)
playwright_api = chromium_or_skip()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Python's static file server on 127.0.0.1, serving build/site/ (as any static host would)."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("site-server") / "http.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(SITE)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/index.html", 30, proc, "http.server")
        yield url
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    yield from launch_browser(playwright_api, tmp_path_factory.mktemp("chromium-profile"))


@pytest.fixture
def page(browser, server):
    """A page that may only talk to the site's server: every other request is aborted and
    recorded, like every answer with an error status; the test fails on either."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside, failed = [], []

    def route(r):
        if r.request.url.startswith(server) or r.request.url.startswith(("data:", "blob:", "about:")):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    pg = context.new_page()
    pg.on("response", lambda resp: failed.append(f"{resp.status} {resp.url}") if resp.status >= 400 else None)
    pg.on("requestfailed", lambda req: failed.append(f"failed {req.url}") if req.url.startswith(server) else None)
    try:
        yield pg
        assert not outside, f"the site asked for resources outside itself: {outside[:10]}"
        assert not failed, f"requests that failed: {failed[:10]}"
    finally:
        context.close()


def _goto(page, server, path):
    page.goto(f"{server}/{path}", wait_until="load")


def _wait_mathjax(page):
    """Until MathJax (loaded from the site) has typeset the page; the number of equations."""
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
    page.evaluate("() => MathJax.startup.promise")
    return page.locator("mjx-container").count()


def test_every_notebook_has_a_page():
    missing = [nb.stem for nb in NOTEBOOKS if not (SITE / "notebooks" / f"{nb.stem}.html").exists()]
    assert not missing, (f"no page in {SITE} for {missing}: the site is older than the notebooks, "
                         "rebuild it with `python3 course.py site`")


def test_home_page_has_the_course_map_and_the_two_commands(page, server):
    _goto(page, server, "index.html")
    assert "Deep Generative Models" in page.title()
    text = page.locator("main").inner_text()
    for command in ("python3 course.py lab", "python3 course.py test"):
        assert command in text, f"the home page does not show `{command}`"
    table = page.locator("main table").first
    hrefs = [a.get_attribute("href") for a in table.locator("a").all()]
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}.html" in hrefs, f"the course map does not link {nb.stem}'s page: {hrefs}"
    nav = page.locator(".bd-sidebar-primary").inner_text()
    for title in ("Bibliography", "API reference"):
        assert title.lower() in nav.lower(), f"the navigation has no '{title}'"
    page.screenshot(path=str(ARTIFACTS / "site-home.png"))


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_page_has_figures_equations_and_links(page, server, nb_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _goto(page, server, f"notebooks/{nb_path.stem}.html")
    n_math = _wait_mathjax(page)
    assert n_math >= 5, f"{nb_path.stem}: only {n_math} equations typeset by MathJax"
    assert page.locator("mjx-merror").count() == 0, f"{nb_path.stem}: MathJax reports a TeX error"
    assert page.locator("mjx-container[display='true']").count() >= 1, f"{nb_path.stem}: no display equation"
    figures = page.locator(".cell_output img")
    assert figures.count() >= 1, f"{nb_path.stem}: no figure among the outputs"
    assert figures.first.evaluate("img => img.complete && img.naturalWidth > 0"), "a figure did not load"
    assert page.locator(".cell_output pre").count() >= 1, f"{nb_path.stem}: no printed output"
    assert page.locator(".course-widget-note").count() >= 1, f"{nb_path.stem}: no explorer shown with its note"
    assert page.get_by_text("Loading widget", exact=False).count() == 0

    # Its source notebook: a download of the notebook as it is in the repository.
    source = page.locator(f"a.download[href$='{nb_path.name}']").first
    href = urllib.parse.urljoin(page.url, source.get_attribute("href"))
    body = page.request.get(href)
    assert body.ok and json.loads(body.text())["cells"], f"{nb_path.stem}: the source notebook link is broken"
    # The API entries its code uses, each a link into the API reference.
    api = page.locator("a[href*='api/generated/course_lib.']")
    assert api.count() >= 3, f"{nb_path.stem}: links to only {api.count()} API entries"

    # A screenshot of the first explorer's figure, with the text above it.
    note = page.locator(".course-widget-note").first
    note.scroll_into_view_if_needed()
    note.evaluate("e => (e.closest('.cell') || e).scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / f"site-{nb_path.stem}.png"))


def test_api_page_of_q_sample_shows_shapes_source_and_uses(page, server):
    _goto(page, server, "api/generated/course_lib.diffusion.q_sample.html")
    _wait_mathjax(page)
    entry = page.locator("dl.py.function").first
    text = entry.inner_text()
    assert "q_sample" in text and "(N,)" in text and "x0" in text, f"no shapes on the page:\n{text[:800]}"
    assert "References" in text and "Ho et al. (2020)" in text, "the entry does not name its source"
    assert "0-based" in text, "the entry does not state the 0-based step index"
    assert entry.locator("mjx-container").count() >= 1, "the formula in the summary is not typeset"
    uses = entry.locator("a[href*='notebooks/']")
    assert uses.count() >= 1, "the entry names no notebook section that uses it"
    page.screenshot(path=str(ARTIFACTS / "site-api-q_sample.png"), full_page=True)
    # Following a "used in" link lands on a section of a notebook page that calls q_sample.
    href = uses.first.get_attribute("href")
    _goto(page, server, urllib.parse.urljoin("api/generated/", href))
    anchor = href.split("#", 1)[1]
    assert page.locator(f"[id='{anchor}']").count() == 1, f"no section '{anchor}' on {href}"
    assert page.locator("a[href*='course_lib.diffusion.q_sample']").count() >= 1


def test_search_returns_results(page, server):
    _goto(page, server, "search.html?q=diffusion+kernel")
    page.wait_for_selector("#search-results ul.search li", timeout=30_000)
    results = page.locator("#search-results ul.search li")
    assert results.count() >= 3, f"only {results.count()} search results"
    hrefs = " ".join(a.get_attribute("href") or "" for a in results.locator("a").all())
    assert "notebooks/" in hrefs and "api/" in hrefs, f"search finds no notebook page or no API entry: {hrefs[:500]}"
    page.screenshot(path=str(ARTIFACTS / "site-search.png"))


@pytest.mark.parametrize("path, heading", [("self-study.html", "Studying on your own"),
                                           ("instructors.html", "For instructors"),
                                           ("docs/bibliography.html", "Bibliography")])
def test_guides_and_bibliography(page, server, path, heading):
    _goto(page, server, path)
    assert heading in page.locator("main h1").first.inner_text()
    if path.startswith("docs/"):
        entries = page.locator("[id^='bib-']")
        assert entries.count() >= 10, f"only {entries.count()} bibliography entries with a link target"
    else:
        assert page.locator("main pre").count() >= 1, f"{path}: no commands shown"
