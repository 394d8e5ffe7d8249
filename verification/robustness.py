"""Run every notebook under several seeds and machine settings; print notebook x variant.

Usage::

    python3 course.py robustness                         # default variants, every notebook
    python3 course.py robustness --variants 0 7 3:t2 02 03
    .venv/bin/python -m verification.robustness --jobs 2

A *variant* is ``SEED`` optionally followed by ``:default`` (``ATEN_CPU_CAPABILITY=default``,
PyTorch's portable CPU kernels instead of the AVX2/AVX-512 ones this CPU would pick) and/or
``:tN`` (``COURSE_THREADS=N`` torch threads). The default variants are seeds 0-5 with the CPU's
own kernels and one thread, then seed 0 with the portable kernels, with two threads, and seed 1
with both. Every cell of the table is ``passed (seconds)`` or ``FAILED cell i: <the failing
line> [<the exception>]``. The table is printed and written to ``build/robustness/table.md``;
the exit status is 1 when any run failed. DESIGN.md §3, claims rule 4: every notebook passes
under any ``COURSE_SEED``, with either kernel dispatch and 1 or 2 threads.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from verification.limits import CELL_TIMEOUT
from verification.run import ROOT, Outcome, run_in_subprocess

DEFAULT_VARIANTS = ["0", "1", "2", "3", "4", "5", "0:default", "0:t2", "1:default:t2"]


@dataclass(frozen=True)
class Variant:
    """One setting a notebook runs under."""

    seed: int
    portable_kernels: bool = False
    threads: int | None = None

    @classmethod
    def parse(cls, text: str) -> "Variant":
        parts = text.split(":")
        try:
            seed = int(parts[0])
            if seed < 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"variant: expected SEED[:default][:tN] with SEED >= 0, got {text!r}") from None
        portable, threads = False, None
        for p in parts[1:]:
            if p == "default":
                portable = True
            elif p.startswith("t") and p[1:].isdigit() and int(p[1:]) >= 1:
                threads = int(p[1:])
            else:
                raise ValueError(f"variant: unknown part {p!r} in {text!r} (expected 'default' or tN)")
        return cls(seed, portable, threads)

    def env(self) -> dict[str, str]:
        return {"COURSE_SEED": str(self.seed),
                "ATEN_CPU_CAPABILITY": "default" if self.portable_kernels else "",
                "COURSE_THREADS": str(self.threads) if self.threads else ""}

    def label(self) -> str:
        extra = (["portable kernels"] if self.portable_kernels else []) + (
            [f"{self.threads} threads"] if self.threads else [])
        return f"seed {self.seed}" + (f", {', '.join(extra)}" if extra else "")


def notebooks(selection: list[str]) -> list[Path]:
    every = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not selection:
        return every
    chosen = []
    for s in selection:
        hits = [p for p in every if p.stem == s or p.stem.startswith(s + "_") or p.name == Path(s).name]
        if not hits:
            raise SystemExit(f"notebooks: {s!r} matches no notebook in notebooks/")
        chosen += hits
    return chosen


def table(paths: list[Path], variants: list[Variant], results: dict) -> str:
    lines = [f"| notebook | {' | '.join(v.label() for v in variants)} |",
             "|---|" + "---|" * len(variants)]
    for p in paths:
        cells = [results[(p, v)].short() if (p, v) in results else "..." for v in variants]
        lines.append(f"| `{p.stem}` | " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", help="notebook ids (02, 02_vae); default: all")
    ap.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS,
                    help="SEED[:default][:tN] ... (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="notebooks run at once (each uses COURSE_THREADS threads; default 1)")
    ap.add_argument("--timeout", type=int, default=CELL_TIMEOUT,
                    help="seconds one cell may run (default %(default)s)")
    args = ap.parse_args(argv)
    variants = [Variant.parse(v) for v in args.variants]
    paths = notebooks(args.notebooks)
    jobs = [(p, v) for v in variants for p in paths]
    results: dict[tuple[Path, Variant], Outcome] = {}
    t0 = time.perf_counter()

    def one(job):
        p, v = job
        out = run_in_subprocess(p, v.env(), timeout=args.timeout)
        results[job] = out
        print(f"[robustness] {p.stem} | {v.label()}: {out.short()}", flush=True)
        return out

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(one, jobs))
    text = table(paths, variants, results)
    failed = sum(not o.ok for o in results.values())
    import torch

    footer = (f"{len(results) - failed}/{len(results)} runs passed, in {time.perf_counter() - t0:.0f} s "
              f"with {args.jobs} job(s) on {platform.machine()}, {os.cpu_count()} cores, Python "
              f"{platform.python_version()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}.")
    out = ROOT / "build" / "robustness"
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text + "\n\n" + footer + "\n")
    print("\n" + text + "\n\n" + footer)
    print(f"[robustness] written to {out / 'table.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
