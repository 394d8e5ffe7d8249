"""The package-level helpers: device choice, seeding, the notebook seed and thread count."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import course_lib
from course_lib import course_seed, get_device, seed_everything, set_num_threads


def test_get_device_is_available_and_respects_preference(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    dev = get_device()
    assert dev.type in {"cpu", "cuda", "mps"}
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    assert get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_get_device_bad_preference():
    with pytest.raises(ValueError, match="prefer"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            get_device("cuda")


def test_seed_everything_reproduces_every_global_stream():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    g1 = seed_everything(7)
    a = draw() + (torch.rand(1, generator=g1).item(),)
    g2 = seed_everything(7)
    b = draw() + (torch.rand(1, generator=g2).item(),)
    assert a == b
    seed_everything(8)
    assert draw() != a[:3]


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_seed_everything_bad_seed(bad):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(bad)


def test_course_seed_reads_the_environment(monkeypatch):
    monkeypatch.delenv("COURSE_SEED", raising=False)
    assert course_seed() == 0 and course_seed(5) == 5
    monkeypatch.setenv("COURSE_SEED", "")
    assert course_seed() == 0
    monkeypatch.setenv("COURSE_SEED", " 12 ")
    assert course_seed() == 12 and course_seed(5) == 12


@pytest.mark.parametrize("raw", ["-1", "1.5", "abc", "0x3"])
def test_course_seed_bad_environment(monkeypatch, raw):
    monkeypatch.setenv("COURSE_SEED", raw)
    with pytest.raises(ValueError, match="COURSE_SEED.*" + repr(raw).replace(".", r"\.")):
        course_seed()


def test_course_seed_bad_default(monkeypatch):
    monkeypatch.delenv("COURSE_SEED", raising=False)
    with pytest.raises(ValueError, match="default"):
        course_seed(-2)


def test_set_num_threads_reads_the_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("COURSE_THREADS", raising=False)
        assert set_num_threads() == 1 == torch.get_num_threads()
        monkeypatch.setenv("COURSE_THREADS", "2")
        assert set_num_threads() == 2 == torch.get_num_threads()
        monkeypatch.setenv("COURSE_THREADS", "0")
        with pytest.raises(ValueError, match="COURSE_THREADS"):
            set_num_threads()
        monkeypatch.delenv("COURSE_THREADS")
        with pytest.raises(ValueError, match="default"):
            set_num_threads(0)
    finally:
        torch.set_num_threads(before)


def test_public_names():
    for name in course_lib.__all__:
        assert hasattr(course_lib, name), name
