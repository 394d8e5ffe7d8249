"""How long the course's tools wait for a notebook, in one place (standard library only: course.py
imports it before any virtual environment exists).

DESIGN.md §6 gives each notebook 3 minutes on a 2-core CPU. A cell that takes longer than a whole
notebook's budget is a defect, and a run that waits longer than that is stalled, so:

- :data:`CELL_TIMEOUT` (300 s): one cell, in every tool that executes notebooks (nbval in the test
  command, the homework tests, ``verification.run`` behind the robustness, mutation and
  other-seed runs, ``course.py lab --headless``, the benchmark). The whole 3-minute budget plus two
  thirds again for a loaded machine; a stall fails in 5 minutes instead of nbclient's 10 or nbval's
  33. Measured (2026-11-29): the slowest cell, notebook 04's class-conditional U-Net training,
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
