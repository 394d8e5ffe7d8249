"""pytest plugin for the nbval run (``course.py test`` loads it): a cell whose reply never came fails.

nbval waits ``--nbval-cell-timeout`` seconds for a cell's ``execute_reply`` and then interrupts the
kernel. A kernel that is still computing raises ``KeyboardInterrupt`` and nbval fails the cell
("Timeout ... exceeded"); but a kernel that sat idle raises nothing, because its reply was lost,
and nbval (0.11) then passes the cell after the whole wait, silently. This plugin fails such a
cell instead and says why. (nbval's blocking kernel client is not exposed to the lost wake-up that
:mod:`verification.kernel_client` fixes for nbclient; this covers any other lost reply.)
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    notebook = getattr(item, "parent", None)
    before = getattr(notebook, "timed_out", None)  # nbval's flag on the notebook being run
    yield
    if before is False and getattr(notebook, "timed_out", False):
        item.stash[TIMED_OUT] = True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.when == "call" and report.passed and item.stash.get(TIMED_OUT, False):
        limit = getattr(item.config.option, "nbval_cell_timeout", "?")
        report.outcome = "failed"
        report.longrepr = (f"the kernel sent no reply within {limit} s and, "
                           "interrupted, reported no error: it sat idle, so a message between "
                           "pytest and the kernel was lost (a stall)")


TIMED_OUT = pytest.StashKey[bool]()
