#!/usr/bin/env python3
"""One entry point for the course: set up, study, build, test, benchmark.

Usage (from the repository root, with any Python >= 3.10 and nothing else installed)::

    python3 course.py lab               # set up .venv and open the course in JupyterLab
    python3 course.py lab --headless    # set up, execute every notebook in order, write build/
    python3 course.py lab --student     # self-study: student versions in homework/, your work kept
    python3 course.py restore 02        # a fresh student copy of notebook 02 (yours is backed up)
    python3 course.py test              # set up, lint (ruff), run every test (unit tests + nbval notebooks)
    python3 course.py bench             # set up and time every notebook (the README's numbers)
    python3 course.py robustness        # every notebook under seeds 0-5, portable CPU kernels, 2 threads
    python3 course.py mutations         # plant textbook mistakes in course_lib; what catches each
    python3 course.py release [NB ...]  # instructors: student versions into build/nbgrader/release/
    python3 course.py grade SUBMISSIONS # instructors: autograde with nbgrader (sandboxed), scores as CSV
    python3 course.py site              # the course as a static website in build/site/ (offline)
    python3 course.py setup             # only set up .venv

Setup is idempotent: it creates ``.venv`` beside this file, installs PyTorch first and then
``course_lib`` in editable mode with its extras, and records what it installed so the next call
skips straight to the work. PyTorch is installed as ``torch==2.13.0`` (the version the course is
tested with): on a machine with a local CPU wheelhouse that is the CPU build, on a Linux machine
with a GPU it is PyPI's CUDA build, on a Mac the MPS build. Set ``COURSE_TORCH`` to install another
build, e.g. the pip arguments of PyTorch's CPU-only install command for a CPU-only Linux laptop
(``COURSE_TORCH="torch --index-url <PyTorch's CPU wheel index>"``); if the tested version has no
wheel for your Python, the range in ``pyproject.toml`` is used instead. This script uses the standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from verification.limits import CELL_TIMEOUT, KERNEL_ENV  # noqa: E402  (standard library only)

VENV = Path(os.environ.get("COURSE_VENV", ROOT / ".venv"))
STAMP = VENV / ".course-installed"
TESTED_TORCH = "torch==2.13.0"
FALLBACK_TORCH = "torch>=2.2"
EXTRAS = "course,homework,test"
SITE_EXTRAS = "site"  # only for `course.py site` (Sphinx and its extensions), installed on demand
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build"


def say(msg: str) -> None:
    print(f"[course] {msg}", flush=True)


def venv_python() -> Path:
    sub = "Scripts/python.exe" if os.name == "nt" else "bin/python"
    return VENV / sub


def run(cmd: list[str], **kw) -> int:
    say("$ " + " ".join(shlex.quote(str(c)) for c in cmd))
    return subprocess.call([str(c) for c in cmd], cwd=kw.pop("cwd", ROOT), **kw)


def check(cmd: list[str], **kw) -> None:
    rc = run(cmd, **kw)
    if rc != 0:
        say(f"command failed with exit code {rc}")
        sys.exit(rc)


def install_fingerprint(extras: str = EXTRAS) -> str:
    h = hashlib.sha256()
    h.update((ROOT / "pyproject.toml").read_bytes())
    h.update(os.environ.get("COURSE_TORCH", TESTED_TORCH).encode())
    h.update(extras.encode())
    return h.hexdigest()


def setup(extras: str = EXTRAS) -> Path:
    """Create .venv (if needed) and install torch, course_lib and its extras into it.

    The stamp file lists one fingerprint per set of extras installed since pyproject.toml last
    changed, so ``site`` (which adds its extra) and ``test`` do not reinstall each other's."""
    if sys.version_info < (3, 10):
        sys.exit(f"course.py needs Python >= 3.10; this is {sys.version.split()[0]}")
    py = venv_python()
    if not py.exists():
        say(f"creating a virtual environment in {VENV}")
        check([sys.executable, "-m", "venv", VENV])
    stamps = STAMP.read_text().split() if STAMP.exists() else []
    if install_fingerprint(extras) in stamps:
        say(f"environment up to date ({VENV})")
        return py
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
    torch_spec = shlex.split(os.environ.get("COURSE_TORCH", TESTED_TORCH))
    have_torch = subprocess.call([str(py), "-c", "import torch"], stderr=subprocess.DEVNULL) == 0
    if not have_torch:
        say(f"installing PyTorch ({' '.join(torch_spec)}) before anything that depends on it")
        if run(pip + torch_spec) != 0:
            say(f"{' '.join(torch_spec)} is not available here; trying the range {FALLBACK_TORCH}")
            check(pip + [FALLBACK_TORCH])
    say(f"installing course_lib (editable) with extras [{extras}]")
    check(pip + ["-e", f"{ROOT}[{extras}]"])
    # What is installed now: these extras, and the course's own set if they include it.
    fresh = [install_fingerprint(extras)]
    if extras != EXTRAS and set(EXTRAS.split(",")) <= set(extras.split(",")):
        fresh.append(install_fingerprint(EXTRAS))
    STAMP.write_text("\n".join(dict.fromkeys(fresh)) + "\n")
    check([py, "-c", "import torch, course_lib; "
                     "print('torch', torch.__version__, '| device:', course_lib.get_device())"])
    return py


def ensure_chromium() -> None:
    """The browser test needs Debian's Chromium; install it with apt where that is possible.

    Where it is not (no apt, not root), the browser test skips itself and says why.
    """
    chromium = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
    if chromium.exists():
        return
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if shutil.which("apt-get") and is_root:
        say("installing Debian's chromium for the browser test (apt-get)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if run(["apt-get", "update", "-qq"], env=env) == 0 and \
                run(["apt-get", "install", "-y", "-qq", "chromium"], env=env) == 0:
            return
        say("could not install chromium with apt-get; the browser test will be skipped")
    else:
        say(f"no Chromium at {chromium} and no root apt-get to install it: the browser test "
            "will be skipped (install Debian's `chromium` package to run it)")


def ensure_bubblewrap() -> None:
    """The grader's sandbox (and its tests) use bubblewrap; install it with apt where possible.

    Where it is not (no apt, not root), grading warns what is not isolated and the hostile-
    submission tests skip themselves, saying why.
    """
    if not sys.platform.startswith("linux") or shutil.which("bwrap"):
        return
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if shutil.which("apt-get") and is_root:
        say("installing Debian's bubblewrap for the grader's sandbox (apt-get)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if run(["apt-get", "install", "-y", "-qq", "bubblewrap"], env=env) == 0:
            return
        if run(["apt-get", "update", "-qq"], env=env) == 0 and \
                run(["apt-get", "install", "-y", "-qq", "bubblewrap"], env=env) == 0:
            return
        say("could not install bubblewrap with apt-get; the sandbox tests will be skipped")
    else:
        say("no bubblewrap (`bwrap`) and no root apt-get to install it: the sandbox tests will be "
            "skipped (install Debian's `bubblewrap` package to run them)")


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def headless(py: Path, only: list[Path] | None = None) -> int:
    """Execute every notebook (or those in ``only``) in course order; write executed notebooks and
    HTML to build/."""
    out_nb, out_html = BUILD / "notebooks", BUILD / "html"
    out_nb.mkdir(parents=True, exist_ok=True)
    out_html.mkdir(parents=True, exist_ok=True)
    failed = []
    for nb in (notebooks() if only is None else only):
        t0 = time.perf_counter()
        # The kernel client of verification/kernel_client.py (importable: `-m` puts the working
        # folder, ROOT, on sys.path): jupyter_client's own can lose the wake-up of a reply while
        # nbclient mirrors an Output widget, stalling a cell until its timeout.
        rc = run([py, "-m", "nbconvert", "--to", "notebook", "--execute",
                  f"--ExecutePreprocessor.timeout={CELL_TIMEOUT}",
                  "--AsyncKernelManager.client_class=verification.kernel_client.AsyncKernelClient",
                  "--output-dir", out_nb, nb])
        if rc == 0:
            run([py, "-m", "jupyter", "nbconvert", "--to", "html", "--output-dir", out_html,
                 out_nb / nb.name])
            say(f"{nb.name}: executed in {time.perf_counter() - t0:.0f} s")
        else:
            failed.append(nb.name)
    say(f"executed notebooks: {out_nb}")
    say(f"HTML (open in any browser): {out_html}")
    if failed:
        say("FAILED: " + ", ".join(failed))
        return 1
    return 0


def _cell_sources(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells]


def executed_is_fresh(nb: Path) -> bool:
    """Whether ``build/notebooks/`` holds a fresh executed copy of ``nb`` (as ``lab --headless``
    writes it): the same cells' sources, and written after the notebook and every file of
    course_lib last changed."""
    done = BUILD / "notebooks" / nb.name
    if not done.exists():
        return False
    try:
        if _cell_sources(done) != _cell_sources(nb):
            return False
    except (ValueError, KeyError):
        return False
    newest = max([nb.stat().st_mtime] + [p.stat().st_mtime for p in (ROOT / "course_lib").rglob("*.py")])
    return done.stat().st_mtime >= newest


def site(py: Path) -> int:
    """The website: execute the notebooks without a fresh executed copy, then stage and build."""
    stale = [nb for nb in notebooks() if not executed_is_fresh(nb)]
    if stale:
        say("executing the notebooks without a fresh copy in build/notebooks/: "
            + ", ".join(nb.stem for nb in stale))
        rc = headless(py, stale)
        if rc != 0:
            return rc
    else:
        say("every notebook has a fresh executed copy in build/notebooks/ (from lab --headless): reused")
    return run([py, ROOT / "docs" / "site" / "build_site.py"])


def main(argv: list[str] | None = None) -> int:
    for k, v in KERNEL_ENV.items():  # every kernel started from here inherits it (verification/limits.py)
        os.environ.setdefault(k, v)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("setup", help="create .venv and install everything")
    lab = sub.add_parser("lab", help="open the course in JupyterLab")
    lab.add_argument("--headless", action="store_true",
                     help="execute every notebook in order and write build/ instead of opening a browser")
    lab.add_argument("--student", action="store_true",
                     help="self-study: open the student versions (solutions removed) in a working "
                     "folder of your own, homework/; rerunning keeps every notebook you changed")
    lab.add_argument("--dir", default="homework",
                     help="the working folder of --student (default: homework/)")
    rst = sub.add_parser("restore", help="self-study: replace your copy of a notebook in homework/ "
                         "by a fresh student version (yours is moved to homework/backups/)")
    rst.add_argument("notebooks", nargs="+", help="e.g. 02 or 02_vae")
    rst.add_argument("--dir", default="homework", help="the working folder (default: homework/)")
    sub.add_parser("test", help="lint with ruff, then run the whole test suite (unit tests + every "
                   "notebook under nbval); further arguments go to pytest, e.g. `test -k gaussian -x`")
    sub.add_parser("bench", help="time every notebook on this machine")
    sub.add_parser("site", help="build the course website into build/site/ (executed notebooks, "
                   "guides, bibliography, API reference), offline, warnings as errors")
    sub.add_parser("mutations", help="plant textbook mistakes in course_lib one at a time and report "
                   "the unit test and the notebook assert that catch each (arguments go to "
                   "verification/mutations.py, e.g. `mutations --list`)")
    sub.add_parser("robustness", help="run every notebook under several COURSE_SEEDs, portable CPU "
                   "kernels and 2 threads; print notebook x variant (arguments go to "
                   "verification/robustness.py, e.g. `robustness 03 --variants 0 7`)")
    rel = sub.add_parser("release", help="write the student version of every notebook (or of the "
                         "ones named) to build/nbgrader/release/")
    rel.add_argument("notebooks", nargs="*", help="01, 01_autoencoders or a path; default: all")
    gr = sub.add_parser("grade", help="autograde SUBMISSIONS_DIR/<student>/<id>.ipynb with nbgrader; "
                        "write build/nbgrader/grades.csv, scores.csv and feedback/")
    gr.add_argument("submissions_dir")
    gr.add_argument("--timeout", type=int, default=120, help="seconds one cell may run (default 120)")
    gr.add_argument("--memory-mb", type=int, help="memory one process of a submission may "
                    "allocate, MiB (default 4096)")
    gr.add_argument("--cpu-seconds", type=int, help="CPU seconds one process of a submission may "
                    "use before it is killed (default 1800)")
    gr.add_argument("--max-processes", type=int, help="processes and threads a submission may "
                    "run at once (default 256)")
    gr.add_argument("--max-file-mb", type=int, help="largest file a submission may write, MiB "
                    "(default 256)")
    gr.add_argument("--no-sandbox", action="store_true",
                    help="grade without the sandbox (only for code you trust)")
    args, extra = ap.parse_known_args(argv)
    if extra and args.cmd not in ("test", "robustness", "mutations"):
        ap.error(f"unrecognized arguments: {' '.join(extra)}")

    py = setup(f"{EXTRAS},{SITE_EXTRAS}" if args.cmd == "site" else EXTRAS)
    if args.cmd == "site":
        return site(py)
    if args.cmd == "setup":
        return 0
    if args.cmd == "lab" and args.student:
        workdir = Path(args.dir).resolve()
        rc = run([py, "-m", "assignments.student", "prepare", "--dir", workdir,
                  *(["--headless", "--out", BUILD / "homework"] if args.headless else [])])
        if rc != 0 or args.headless:
            return rc
        first = sorted(workdir.glob("[0-9][0-9]_*.ipynb"))
        # the server's root is the working folder: the instructor notebooks are not in reach
        return run([py, "-m", "jupyter", "lab", *(f.name for f in first[:1])], cwd=workdir)
    if args.cmd == "restore":
        return run([py, "-m", "assignments.student", "restore", "--dir", Path(args.dir).resolve(),
                    *args.notebooks])
    if args.cmd == "lab":
        if args.headless:
            return headless(py)
        first = notebooks()[0].relative_to(ROOT) if notebooks() else "notebooks"
        return run([py, "-m", "jupyter", "lab", str(first)])
    if args.cmd == "test":
        # Lint first (a second at most): the ruff configuration in pyproject.toml, whole tree.
        rc = run([py, "-m", "ruff", "check", "."])
        if rc != 0:
            say("lint failed: fix the ruff violations above before the tests run "
                "(`.venv/bin/ruff check --fix .` sorts imports and removes unused ones)")
            return rc
        ensure_chromium()
        ensure_bubblewrap()
        # Paths among the extra arguments narrow the run (`test tests/test_toy.py`); by default
        # every test and every notebook runs.
        targets = [] if any(Path(a.split("::")[0]).exists() for a in extra) else ["tests", "notebooks"]
        return run([py, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
                    f"--nbval-cell-timeout={CELL_TIMEOUT}", "-p", "verification.nbval_stall",
                    *targets, *extra])
    if args.cmd == "release":
        return run([py, "-m", "assignments", "release",
                    *[str(Path(n).resolve()) if Path(n).exists() else n for n in args.notebooks]])
    if args.cmd == "grade":
        limits = [f"--{opt.replace('_', '-')}={getattr(args, opt)}"
                  for opt in ("memory_mb", "cpu_seconds", "max_processes", "max_file_mb")
                  if getattr(args, opt) is not None]
        return run([py, "-m", "assignments", "grade", str(Path(args.submissions_dir).resolve()),
                    "--timeout", str(args.timeout), *limits,
                    *(["--no-sandbox"] if args.no_sandbox else [])])
    if args.cmd == "robustness":
        return run([py, "-m", "verification.robustness", *extra])
    if args.cmd == "mutations":
        return run([py, "-m", "verification.mutations", *extra])
    if args.cmd == "bench":
        return run([py, ROOT / "benchmarks" / "notebook_times.py"])
    return 2


if __name__ == "__main__":
    sys.exit(main())
