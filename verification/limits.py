"""How long the course's tools wait for a notebook, in one place (standard library only: course.py
imports it before any virtual environment exists).

DESIGN.md §6 gives each notebook 3 minutes on a 2-core CPU. A cell that takes longer than a whole
notebook's budget is a defect, and a run that waits longer than that is stalled, so:

- :data:`CELL_TIMEOUT` (300 s): one cell, in every tool that executes notebooks (nbval in the test
  command, the homework tests, ``verification.run`` behind the robustness, mutation and
  other-seed runs, ``course.py lab --headless``, the benchmark). The whole 3-minute budget plus two
  thirds again for a loaded machine; a stall fails in 5 minutes instead of nbclient's 10 or nbval's
  33. Measured (2026-11-29): the slowest cell, notebook 05's (then 04's) class-conditional U-Net training,
  used 33 s of kernel CPU, and took 164 s of wall time with the machine's load average near 20.
- :data:`NOTEBOOK_TIMEOUT` (900 s): one whole notebook (5 times its budget), after which the runner
  and its kernel are stopped; also pytest-timeout's limit for a test that runs a whole notebook.
- :data:`TEST_TIMEOUT` (360 s): any other single test, pytest-timeout's default in
  ``pyproject.toml``. It is the backstop behind a notebook cell's own limit under nbval (which fires
  first, with nbval's message); the slowest unit test takes well under a minute.
"""

CELL_TIMEOUT = 300
NOTEBOOK_TIMEOUT = 900
TEST_TIMEOUT = 360

#: Set (unless already set) in the environment of every kernel the course's tools start
#: (``course.py`` for lab, test, bench and the rest; ``verification.run``). With two or more torch
#: threads, PyTorch's OpenMP workers busy-wait for the next parallel region; on a machine whose
#: cores are busy (a second job, CI's other processes) they spin on the cores the working thread
#: needs. Measured here (2026-11-30, torch 2.13.0+cpu, 2 cores): 300 Adam steps of a small MLP
#: with 2 threads took 0.93 s idle and 3.7 s with both cores busy; with ``OMP_WAIT_POLICY=PASSIVE``
#: 0.24 s and 0.43 s (one thread: 0.19 s and 0.39 s). Under the load of the robustness runs, the
#: 2-thread runs exceeded the 300 s cell limit without it. It must be in the environment before
#: torch is imported (the OpenMP runtime reads it when it loads), hence not in course_lib.
KERNEL_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
