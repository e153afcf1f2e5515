"""Scripted MetaWorld experts as toolkit policies (``reset`` / ``select_action``).

Most tasks use MetaWorld's own scripted policy (``metaworld.policies.ENV_POLICY_MAP``). Those
policies are stateless: every step they re-derive their phase from the state, so a grasped
object that swings a centimetre off-centre sends them back to the "move above the object"
phase (box-close, shelf-place), and several close the gripper while still descending, landing
the fingers on the object (sweep-into, disassemble, bin-picking). With 200-step episodes
(the CLAR / Lift3D protocol) they succeed on only 87-93% of layouts for box-close,
disassemble, bin-picking and sweep-into (docs/suites/metaworld.md has the measured table).

For those five tasks this module provides small staged controllers with memory, written
from the same geometry as MetaWorld's policies:

    approach (above the grasp point, gripper open) -> descend (open; stop when at height or
    when the hand stops moving down) -> close (a fixed number of steps) -> carry (task
    specific, gripper closed) -> back to approach if the object was dropped.

Every expert reads ``obs["state"]`` (MetaWorld's 39-d goal-observable state) and exposes a
``stage`` string for episode metadata. ``make_expert(task, stock=True)`` gives MetaWorld's
policy unchanged for every task.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from toolkit.envs.metaworld import tasks as T


def _move(hand: np.ndarray, target: np.ndarray, gain: float) -> np.ndarray:
    """Proportional xyz command, clipped to the action range."""
    return np.clip(gain * (np.asarray(target, dtype=np.float64) - hand), -1.0, 1.0)


class _Controller:
    """One task's scripted controller over the 39-d state."""

    stage: str | None = None

    def reset(self) -> None:
        pass

    def act(self, s: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _Stock(_Controller):
    """MetaWorld's scripted policy for ``task`` (stateless)."""

    def __init__(self, task: str) -> None:
        from toolkit.envs.metaworld.env import import_metaworld

        _, policies = import_metaworld()
        self.policy = policies.ENV_POLICY_MAP[f"{task}-{T.VERSION}"]()

    def act(self, s: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():  # its `move` warns about large gains every step
            warnings.simplefilter("ignore")
            return np.asarray(self.policy.get_action(s), dtype=np.float64)


class _Staged(_Controller):
    """approach -> descend (open) -> close -> carry, with re-grasp when the object drops."""

    #: Grasp point = object position (state[4:7]) + this offset (override ``grasp_point``).
    grasp_offset = np.zeros(3)
    hover = 0.1  # approach height above the grasp point (m)
    xy_tol = 0.015  # xy alignment that starts the descent
    z_tol = 0.012  # height error that starts closing
    close_steps = 8
    close_effort = 1.0
    open_effort = -1.0
    close_press = False  # keep pushing down while closing
    gain = 10.0

    def reset(self) -> None:
        self.stage = "approach"
        self._k = 0
        self._zhist: list[float] = []
        self._hand_z0 = 0.0
        self._obj_z0 = 0.0

    def grasp_point(self, s: np.ndarray) -> np.ndarray:
        return s[4:7] + self.grasp_offset

    def carry(self, s: np.ndarray, hand: np.ndarray) -> tuple[np.ndarray, float]:
        """``(hand target xyz, gripper effort)`` once the object is held."""
        raise NotImplementedError

    def dropped(self, s: np.ndarray, hand: np.ndarray) -> bool:
        return False

    def act(self, s: np.ndarray) -> np.ndarray:
        hand = s[:3]
        g = self.grasp_point(s)
        if self.stage == "carry" and self.dropped(s, hand):
            self.stage = "approach"
        if self.stage == "approach":
            if np.linalg.norm(hand[:2] - g[:2]) < self.xy_tol:
                self.stage, self._zhist = "descend", []
            else:
                target = np.array([g[0], g[1], g[2] + self.hover])
                return np.array([*_move(hand, target, self.gain), self.open_effort])
        if self.stage == "descend":
            if np.linalg.norm(hand[:2] - g[:2]) > 2.5 * self.xy_tol and hand[2] > g[2] + 0.03:
                self.stage = "approach"  # the object moved: re-align from above
                target = np.array([g[0], g[1], hand[2] + 0.05])
                return np.array([*_move(hand, target, self.gain), self.open_effort])
            self._zhist.append(float(hand[2]))
            stuck = len(self._zhist) > 6 and self._zhist[-6] - hand[2] < 0.002
            if abs(hand[2] - g[2]) < self.z_tol or stuck:
                self.stage, self._k = "close", 0
            else:
                return np.array([*_move(hand, g, self.gain), self.open_effort])
        if self.stage == "close":
            self._k += 1
            if self._k >= self.close_steps:
                self.stage = "carry"
                self._hand_z0, self._obj_z0 = float(hand[2]), float(s[6])
            m = _move(hand, g, self.gain)
            if not self.close_press:
                m[2] = 0.0
            return np.array([*m, self.close_effort])
        target, effort = self.carry(s, hand)
        return np.array([*_move(hand, target, self.gain), effort])


class _Disassemble(_Staged):
    """Grasp the wrench handle (centre of the handle box, site ``RoundNut-8``), lift it off.

    When the handle points away from the robot (+y) the grasp moves a little along the handle
    toward the nut, where the arm can still reach low enough.
    """

    inward = 0.03

    def grasp_point(self, s: np.ndarray) -> np.ndarray:
        site, peg_xy = s[4:7], s[-3:-1]
        u = site[:2] - peg_xy
        u = u / (np.linalg.norm(u) + 1e-9)
        xy = site[:2] - self.inward * max(0.0, float(u[1])) * u
        return np.array([xy[0], xy[1], site[2] + 0.01])

    def carry(self, s, hand):
        return np.array([hand[0], hand[1], s[-1] + 0.08]), 1.0

    def dropped(self, s, hand):
        return hand[2] - self._hand_z0 > 0.04 and s[6] - self._obj_z0 < 0.01


class _SweepInto(_Staged):
    """Grasp the puck with the gripper open until low, then drag it to the hole."""

    grasp_offset = np.array([-0.005, 0.0, 0.01])
    hover = 0.12
    xy_tol = 0.02
    z_tol = 0.02
    gain = 25.0
    close_effort = 0.7

    def carry(self, s, hand):
        return s[-3:].copy(), self.close_effort

    def dropped(self, s, hand):
        return bool(np.linalg.norm(hand[:2] - s[4:6]) > 0.05)


class _BinPicking(_Staged):
    """MetaWorld's bin-picking grasp (y clamped away from the bin walls), pressing while closing."""

    hover = 0.12
    xy_tol = 0.015
    z_tol = 0.01
    gain = 25.0
    close_effort = 0.8
    close_press = True
    close_steps = 12
    target_bin = np.array([0.12, 0.7, 0.02])

    def grasp_point(self, s):
        g = s[4:7] + np.array([0.0, 0.0, 0.03])
        g[1] = max(0.675, min(g[1], 0.725))
        return g

    def carry(self, s, hand):
        b = self.target_bin
        if np.linalg.norm(hand[:2] - b[:2]) > 0.02:
            if hand[2] < 0.15:
                return np.array([hand[0], hand[1], 0.2]), self.close_effort
            return np.array([b[0], b[1], 0.18]), self.close_effort
        return b.copy(), self.close_effort

    def dropped(self, s, hand):
        return bool(np.linalg.norm(hand - s[4:7]) > 0.08)


class _ShelfPlace(_Staged):
    """Grasp the block, lift above the shelf, move the *block* over the goal, lower it."""

    grasp_offset = np.array([-0.005, 0.0, 0.015])
    hover = 0.12
    xy_tol = 0.02
    z_tol = 0.015
    gain = 25.0
    close_steps = 10

    def carry(self, s, hand):
        block, goal = s[4:7], s[-3:]
        d = goal - block
        clear = goal[2] + 0.09
        if np.linalg.norm(d[:2]) > 0.03:
            if hand[2] < clear - 0.02:
                return np.array([hand[0], hand[1], clear + 0.02]), 1.0
            return np.array([hand[0] + d[0], hand[1] + d[1], clear]), 1.0
        return hand + d, 1.0

    def dropped(self, s, hand):
        return bool(np.linalg.norm(hand - s[4:7]) > 0.1)


class _BoxClose(_Controller):
    """MetaWorld's box-close approach and grasp; once the lid is lifted it stays latched and
    the *lid* (not the hand) is steered onto the box, so a lid hanging off-centre still lands.
    """

    def reset(self) -> None:
        self.stage = "approach"

    def act(self, s):
        hand, grip, lid, goal = s[:3], s[3], s[4:7], s[-3:]
        pos_lid = lid + np.array([0.0, 0.0, 0.02])
        near_xy = np.linalg.norm(hand[:2] - pos_lid[:2]) <= 0.01
        if self.stage != "carry" and lid[2] > 0.04 and grip < 0.6:
            if np.linalg.norm(hand[:2] - lid[:2]) < 0.03:
                self.stage = "carry"
        if self.stage == "carry" and (np.linalg.norm(hand - lid) > 0.12 or lid[2] < 0.03):
            self.stage = "approach"  # dropped
        if self.stage == "carry":
            if hand[2] < 0.14:
                target = np.array([hand[0], hand[1], 0.16])
            else:
                target = hand + (goal - lid)
                target[2] = max(target[2], 0.14)
            return np.array([*_move(hand, target, 15.0), 1.0])
        if not near_xy:
            target = np.array([pos_lid[0], pos_lid[1], 0.2])
        elif abs(hand[2] - pos_lid[2]) > 0.05:
            target = pos_lid
        else:  # at the handle: lift (the latch above takes over once the lid follows)
            target = np.array([hand[0], hand[1], 0.15])
        effort = 1.0 if near_xy and abs(hand[2] - pos_lid[2]) <= 0.13 else 0.5
        return np.array([*_move(hand, target, 25.0), effort])


#: Tasks whose MetaWorld policy is replaced (see the module docstring for why).
IMPROVED: dict[str, type[_Controller]] = {
    "box-close": _BoxClose,
    "disassemble": _Disassemble,
    "sweep-into": _SweepInto,
    "bin-picking": _BinPicking,
    "shelf-place": _ShelfPlace,
}


class MetaWorldExpert:
    """A scripted MetaWorld expert as a :class:`~toolkit.envs.base.Policy`.

    ``select_action(obs)`` reads ``obs["state"]`` (or takes the 39-d state itself) and returns
    a float32 ``(4,)`` action in [-1, 1]. ``stage`` names the current phase (None for
    MetaWorld's stateless policies).
    """

    def __init__(self, task: str, stock: bool = False) -> None:
        self.task = task
        self.stock = bool(stock) or task not in IMPROVED
        self._ctrl: _Controller = _Stock(task) if self.stock else IMPROVED[task]()
        self.reset()

    @property
    def stage(self) -> str | None:
        return self._ctrl.stage

    def reset(self) -> None:
        self._ctrl.reset()

    def select_action(self, obs: dict[str, Any] | np.ndarray) -> np.ndarray:
        s = obs["state"] if isinstance(obs, dict) else obs
        a = self._ctrl.act(np.asarray(s, dtype=np.float64))
        return np.clip(np.asarray(a, dtype=np.float32), -1.0, 1.0)

    def __repr__(self) -> str:
        kind = "metaworld.policies" if self.stock else "toolkit staged"
        return f"MetaWorldExpert({self.task!r}, {kind})"


def make_expert(task: str, stock: bool = False) -> MetaWorldExpert:
    """The expert of ``task``; ``stock=True`` forces MetaWorld's own policy."""
    return MetaWorldExpert(task, stock=stock)
