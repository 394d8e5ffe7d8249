"""Headless Chromium for the browser tests (``test_browser.py``: JupyterLab; ``test_site.py``: the
website): started by process id, driven by Playwright over the DevTools protocol, stopped by its
process id also on failure.

Chromium is Debian's (``/usr/bin/chromium``, or ``$COURSE_CHROMIUM``); ``course.py test`` installs
it with apt when it can. ``chromium_or_skip()`` skips the calling test module with the reason when
it is missing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--window-size=1400,1000"]


def chromium_or_skip():
    """Playwright's sync API, or a module-level skip saying what is missing."""
    api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python is not installed (it is in the [test] extra)")
    if not (Path(CHROMIUM).exists() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"browser test skipped: no Chromium at {CHROMIUM} (install Debian's `chromium` "
                    "package; .ci/run installs it with apt when it can)", allow_module_level=True)
    return api


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.5)
    raise TimeoutError(f"{what} did not answer at {url} within {timeout:.0f} s")


def stop(proc: subprocess.Popen | None) -> None:
    """Stop a process we started, and its process group, by pid."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def launch_browser(playwright_api, profile: Path):
    """Start Chromium with remote debugging on a free port; yield Playwright's Browser; stop it."""
    port = free_port()
    proc = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--remote-debugging-port={port}",
                             "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}",
                             "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/json/version", 60, proc, "Chromium")
        with playwright_api.sync_playwright() as p:
            b = p.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
            try:
                yield b
            finally:
                b.close()
    finally:
        stop(proc)
