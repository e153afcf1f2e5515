"""ALOHA bimanual suite: scenes on gym-aloha's ViperX model, CLAMP's camera rig and tasks,
damped-least-squares IK experts, a toolkit env.

Importing this package imports neither MuJoCo nor gym-aloha (they load on the first
``make_env``); a missing gym-aloha raises :class:`~toolkit.envs.base.MissingSuiteDependencyError`.
"""

from toolkit.envs.aloha.suite import AlohaSuite

__all__ = ["AlohaSuite"]
