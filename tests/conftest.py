"""Shared test setup, once for every test folder: matplotlib's headless Agg backend, the
hypothesis profile, and the fixtures ``device`` (a test runs on CPU and, where present, on CUDA and
MPS) and ``generator`` (a seeded CPU generator).

On a machine without a GPU (CI) the CUDA/MPS variants are skipped with a reason, never silently.
Run only the GPU variants with ``pytest -m gpu``.

Layout (mirrors the package): ``tests/test_<module>.py`` per ``course_lib`` module,
``tests/widgets/test_<topic>.py`` per explorer module, ``tests/exercises/test_<topic>.py`` per
exercise module, and ``tests/course/`` for the course as a whole (layout, homework pipeline, browser,
verification tools).
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: no window, also where a display exists

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "course", deadline=None, max_examples=40, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "course"))

_HAS_MPS = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()

DEVICE_PARAMS = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
    ]),
    pytest.param("mps", id="mps", marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(not _HAS_MPS, reason="no Apple MPS device on this machine"),
    ]),
]


@pytest.fixture(params=DEVICE_PARAMS)
def device(request) -> torch.device:
    """Each test using this fixture runs once per available device."""
    return torch.device(request.param)


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded CPU generator, so every randomized test is reproducible."""
    g = torch.Generator()
    g.manual_seed(1234)
    return g
