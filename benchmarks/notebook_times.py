"""Time every course notebook on this machine, as a student runs it (fresh kernel, all cells).

Usage::

    python3 course.py bench                      # via the course script (sets up .venv first)
    .venv/bin/python benchmarks/notebook_times.py [--update-readme] [NOTEBOOK ...]

Prints a Markdown table (notebook, wall time, budget verdict) and the machine it ran on, writes it
to build/benchmarks/notebook_times.md, and with ``--update-readme`` replaces the table between the
``<!-- bench:start -->`` / ``<!-- bench:end -->`` markers in README.md. Budgets (DESIGN.md §6): each
notebook within 3 minutes, the whole course within 10 minutes, on a 2-core CPU. Exits 1 when a
budget is exceeded or a notebook fails. Speed is measured here, never asserted in the tests.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(ROOT))

from verification.kernel_client import notebook_client  # noqa: E402

PER_NOTEBOOK_S = 180
TOTAL_S = 600


def time_notebook(path: Path) -> tuple[float, str | None]:
    nb = nbformat.read(path, as_version=4)
    client = notebook_client(nb, path.parent)  # verification.limits.CELL_TIMEOUT per cell
    t0 = time.perf_counter()
    try:
        client.execute()
        err = None
    except Exception as exc:  # report and go on with the other notebooks
        err = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    return time.perf_counter() - t0, err


def machine() -> str:
    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--update-readme", action="store_true")
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    rows, total, ok = [], 0.0, True
    for p in paths:
        seconds, err = time_notebook(p)
        total += seconds
        verdict = "within 3 min" if seconds <= PER_NOTEBOOK_S else "OVER 3 min"
        if err:
            verdict, ok = f"FAILED ({err})", False
        ok &= seconds <= PER_NOTEBOOK_S
        rows.append(f"| `{p.name}` | {seconds:.0f} s | {verdict} |")
        print(rows[-1], flush=True)
    ok &= total <= TOTAL_S
    table = "\n".join([
        "| notebook | wall time | budget |", "|---|---|---|", *rows,
        f"| **whole course** | **{total:.0f} s** | {'within 10 min' if total <= TOTAL_S else 'OVER 10 min'} |",
        "", f"Measured with `python3 course.py bench` on {machine()}.",
    ])
    out = ROOT / "build" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / "notebook_times.md").write_text(table + "\n")
    print("\n" + table)
    if args.update_readme:
        readme = ROOT / "README.md"
        text = readme.read_text()
        start, end = "<!-- bench:start -->", "<!-- bench:end -->"
        if start in text and end in text:
            head, rest = text.split(start, 1)
            _, tail = rest.split(end, 1)
            readme.write_text(f"{head}{start}\n{table}\n{end}{tail}")
            print("README.md updated")
        else:
            print("README.md has no bench markers; not updated", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
