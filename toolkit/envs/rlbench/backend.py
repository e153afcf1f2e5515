"""The RLBench / PyRep / CoppeliaSim stack, imported lazily with an actionable error.

No package index provides CoppeliaSim or PyRep, so a missing stack is the common case: every
entry point imports it through :func:`import_rlbench`, which raises
:class:`~toolkit.envs.base.MissingSuiteDependencyError` saying what to install and how to run
headless. The returned :class:`RLBenchBackend` bundles the few RLBench / PyRep names the adapter
uses (tests inject a stand-in with the same attributes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolkit.envs.base import MissingSuiteDependencyError

__all__ = ["INSTALL_HINT", "RLBenchBackend", "import_rlbench"]

INSTALL_HINT = """\
RLBench closed-loop evaluation needs CoppeliaSim 4.1.0, PyRep and RLBench, which no package \
index provides (reading and converting RLBench datasets does NOT need them: \
`toolkit convert rlbench SRC --out DIR`). To install:
  1. download CoppeliaSim 4.1.0 for your Ubuntu (e.g. CoppeliaSim_Edu_V4_1_0_Ubuntu20_04.tar.xz from \
https://www.coppeliarobotics.com/previousVersions) and extract it;
  2. export COPPELIASIM_ROOT=/path/to/CoppeliaSim_Edu_V4_1_0_Ubuntu20_04
     export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$COPPELIASIM_ROOT
     export QT_QPA_PLATFORM_PLUGIN_PATH=$COPPELIASIM_ROOT
  3. pip install git+https://github.com/stepjam/PyRep.git git+https://github.com/stepjam/RLBench.git
     (then `pip install -e .[rlbench]`);
  4. on a machine without a display run under a virtual X server: `xvfb-run -a toolkit eval ...` \
(or set QT_QPA_PLATFORM=offscreen). See docs/suites/rlbench.md."""


@dataclass
class RLBenchBackend:
    """The RLBench / PyRep objects the adapter uses (RLBench 1.2 names)."""

    Environment: Any
    ObservationConfig: Any
    MoveArmThenGripper: Any
    EndEffectorPoseViaPlanning: Any
    Discrete: Any
    name_to_task_class: Any
    #: errors a planned action may raise; the adapter ends the rollout as a failure on them
    action_errors: tuple[type[BaseException], ...]


def import_rlbench() -> RLBenchBackend:
    """Import PyRep + RLBench, or raise :class:`MissingSuiteDependencyError` (see INSTALL_HINT)."""
    try:
        import pyrep  # noqa: F401 - loads libcoppeliaSim: fails without CoppeliaSim
        from pyrep.errors import ConfigurationPathError, IKError
    except (ImportError, OSError) as exc:
        raise MissingSuiteDependencyError(
            f"{INSTALL_HINT}\n(import of PyRep failed: {type(exc).__name__}: {exc})"
        ) from exc
    try:
        from rlbench.action_modes.action_mode import MoveArmThenGripper
        from rlbench.action_modes.arm_action_modes import EndEffectorPoseViaPlanning
        from rlbench.action_modes.gripper_action_modes import Discrete
        from rlbench.backend.exceptions import InvalidActionError
        from rlbench.environment import Environment
        from rlbench.observation_config import ObservationConfig
        from rlbench.utils import name_to_task_class
    except (ImportError, OSError) as exc:
        raise MissingSuiteDependencyError(
            f"{INSTALL_HINT}\n(import of RLBench failed: {type(exc).__name__}: {exc}; RLBench "
            "1.2 is expected: rlbench.action_modes.arm_action_modes.EndEffectorPoseViaPlanning)"
        ) from exc
    return RLBenchBackend(
        Environment=Environment,
        ObservationConfig=ObservationConfig,
        MoveArmThenGripper=MoveArmThenGripper,
        EndEffectorPoseViaPlanning=EndEffectorPoseViaPlanning,
        Discrete=Discrete,
        name_to_task_class=name_to_task_class,
        action_errors=(InvalidActionError, IKError, ConfigurationPathError),
    )
