"""Simulation suites (MetaWorld, ALOHA, RLBench) behind one contract.

See :mod:`toolkit.envs.base` for the contract. Suites register in
:data:`toolkit.registry.SUITES`; importing this package registers them without importing any
simulator (each suite imports its simulator lazily).
"""

from __future__ import annotations

from toolkit.envs.aloha import AlohaSuite
from toolkit.envs.base import (
    CameraSpec,
    Env,
    MissingSuiteDependencyError,
    Policy,
    Suite,
    UnknownTaskError,
)
from toolkit.envs.metaworld import MetaWorldSuite
from toolkit.envs.rlbench import RLBenchSuite

__all__ = [
    "AlohaSuite",
    "CameraSpec",
    "Env",
    "MetaWorldSuite",
    "MissingSuiteDependencyError",
    "Policy",
    "RLBenchSuite",
    "Suite",
    "UnknownTaskError",
    "get_suite",
]

#: Short names accepted by :func:`get_suite` besides the registered class names.
_ALIASES = {"metaworld": "MetaWorldSuite", "aloha": "AlohaSuite", "rlbench": "RLBenchSuite"}


def get_suite(name: str | Suite, **kwargs) -> Suite:
    """Build a suite by short name (``"metaworld"``) or registered type (``"MetaWorldSuite"``).

    A :class:`Suite` instance is returned as-is.
    """
    if isinstance(name, Suite):
        return name
    from toolkit.registry import SUITES

    return SUITES.build(dict(type=_ALIASES.get(str(name).lower(), name), **kwargs))


def register_alias(short: str, type_name: str) -> None:
    """Let :func:`get_suite` accept ``short`` for the registered suite ``type_name``."""
    _ALIASES[short.lower()] = type_name
