"""Execute one notebook in a fresh kernel under a given environment and report how it ended.

The kernel inherits the environment of the process that starts it, so every run happens in its
own subprocess (``python -m verification.run NOTEBOOK``) whose environment carries the variant:
``COURSE_SEED``, ``COURSE_THREADS``, ``ATEN_CPU_CAPABILITY``, and for mutation runs a
``PYTHONPATH`` that puts a mutated copy of ``course_lib`` first. The subprocess prints one JSON
line: ``{"ok": bool, "seconds": float, "cell": int | null, "line": str, "error": str}`` where
``line`` is the source line the traceback points at in the failing cell (an ``assert ...``) and
``error`` the exception's type and message.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from verification.limits import CELL_TIMEOUT, KERNEL_ENV, NOTEBOOK_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Outcome:
    """How one notebook execution ended."""

    ok: bool
    seconds: float
    cell: int | None = None   # index of the failing cell among all cells
    line: str = ""            # the failing source line (e.g. the assert)
    error: str = ""           # "AssertionError: message"

    def short(self) -> str:
        if self.ok:
            return f"passed ({self.seconds:.0f} s)"
        where = f"cell {self.cell}: " if self.cell is not None else ""
        what = self.line or self.error
        if self.line and self.error and not self.error.endswith(":"):
            what = f"{self.line}  [{self.error}]"
        return f"FAILED {where}{what}"[:240]


def failing_line(traceback_text: str, source: str) -> str:
    """The last line the traceback marks with an arrow inside the failing cell's own source."""
    text = ANSI.sub("", traceback_text)
    arrows = [m.group(1).strip() for m in re.finditer(r"^\s*-+>\s*\d+\s(.*)$", text, re.M)]
    src_lines = {ln.strip() for ln in source.splitlines()}
    inside = [a for a in arrows if a in src_lines]
    if inside:
        return inside[-1]
    return arrows[-1] if arrows else ""


def execute(path: Path, timeout: int = CELL_TIMEOUT) -> Outcome:
    """Execute the notebook at ``path`` in this process's environment (fresh kernel, all cells).

    ``timeout`` is the seconds one cell may run; a cell that times out is reported with its index
    and whether its kernel was computing or idle (:mod:`verification.kernel_client`).
    """
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    from verification.kernel_client import notebook_client

    nb = nbformat.read(path, as_version=4)
    current = {"cell": None}
    client = notebook_client(nb, path.parent, timeout=timeout, allow_errors=False,
                             on_cell_execute=lambda cell, cell_index: current.update(cell=cell_index))
    t0 = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as exc:
        idx = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code" and any(
            o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        src = nb.cells[idx].source if idx is not None else ""
        err = next((o for o in (nb.cells[idx].outputs if idx is not None else [])
                    if o.get("output_type") == "error"), {})
        tb = "\n".join(err.get("traceback", [])) or str(exc)
        message = f"{err.get('ename', type(exc).__name__)}: {ANSI.sub('', str(err.get('evalue', '')))}"
        return Outcome(False, time.perf_counter() - t0, idx, failing_line(tb, src), message.strip())
    except CellTimeoutError as exc:
        return Outcome(False, time.perf_counter() - t0, current["cell"], "", f"CellTimeoutError: {exc}")
    except Exception as exc:  # a dead kernel, a broken notebook: report, never hang
        return Outcome(False, time.perf_counter() - t0, None, "", f"{type(exc).__name__}: {str(exc)[:200]}")
    return Outcome(True, time.perf_counter() - t0)


def run_in_subprocess(path: Path, env: dict[str, str] | None = None, timeout: int = CELL_TIMEOUT,
                      total: int = NOTEBOOK_TIMEOUT) -> Outcome:
    """Execute ``path`` in a fresh subprocess (and kernel) whose environment is ours plus ``env``.

    A variable mapped to an empty string is removed from the environment. ``timeout`` is the
    seconds one cell may run, ``total`` the seconds the whole run may take before the subprocess
    (and with it its kernel) is stopped.
    """
    full = {**KERNEL_ENV, **os.environ}
    for k, v in (env or {}).items():
        if v == "":
            full.pop(k, None)
        else:
            full[k] = v
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "verification.run", str(path), "--timeout", str(timeout)],
                              cwd=ROOT, env=full, capture_output=True, text=True, timeout=total)
    except subprocess.TimeoutExpired:
        return Outcome(False, time.perf_counter() - t0, None, "",
                       f"the whole notebook did not finish within {total} s (the runner was stopped)")
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            return Outcome(**json.loads(line))
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return Outcome(False, time.perf_counter() - t0, None, "", f"runner crashed: {tail[0][:200]}")


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--timeout", type=int, default=CELL_TIMEOUT,
                    help="seconds one cell may run (default %(default)s)")
    args = ap.parse_args(argv)
    out = execute(args.notebook.resolve(), timeout=args.timeout)
    print(json.dumps(out.__dict__), flush=True)
    return 0 if out.ok else 1


if __name__ == "__main__":
    sys.exit(main())
