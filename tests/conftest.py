"""Shared fixtures. Tests mirror the package layout; see pyproject.toml for markers."""

from __future__ import annotations

import os

import pytest
import torch
from _helpers import PLUGINS

# Offscreen MuJoCo rendering without a GPU goes through Mesa's EGL (environment.md).
os.environ.setdefault("MUJOCO_GL", "egl")
# Test tensors are tiny: one intra-op thread avoids oversubscribing the 2-core CI machine
# (measured: tiny Point-MAE forward 15 ms with 1 thread vs ~1 s with 2 under load).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# Load triton (pulled in by the models through torchvision / torch._dynamo) before any test
# creates a MuJoCo EGL context: importing it afterwards segfaults in libtriton, which killed an
# xdist worker that ran tests/bench/test_bench_aloha_gen.py and then built recipe models.
import toolkit.models  # noqa: E402, F401


@pytest.fixture
def plugin_path(monkeypatch):
    """Put tests/plugins (a user's module outside the package) on sys.path."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    return PLUGINS
