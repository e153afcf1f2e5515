"""Shared fixtures. Tests mirror the package layout; see pyproject.toml for markers."""

from __future__ import annotations

import os

import pytest
from _helpers import PLUGINS

# Offscreen MuJoCo rendering without a GPU goes through Mesa's EGL (environment.md).
os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture
def plugin_path(monkeypatch):
    """Put tests/plugins (a user's module outside the package) on sys.path."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    return PLUGINS
