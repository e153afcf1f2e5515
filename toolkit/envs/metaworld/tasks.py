"""MetaWorld task lists (CLAR / Lift3D protocol) and per-task metadata.

Task names are MetaWorld's without the version suffix (``"hammer"`` is ``hammer-v3``).
The difficulty split is the one in the CLAR paper (Sec. IV), itself from Seo et al. 2022.
"""

from __future__ import annotations

#: MetaWorld environment version used for every task.
VERSION = "v3"

EASY: tuple[str, ...] = ("reach", "lever-pull", "handle-pull", "peg-unplug-side", "dial-turn")
MEDIUM: tuple[str, ...] = ("hammer", "sweep-into", "bin-picking", "push-wall", "box-close")
HARD: tuple[str, ...] = ("assembly", "hand-insert", "shelf-place", "pick-place-wall", "disassemble")

#: The 15 single-task CLAR benchmark tasks, easy -> hard.
CLAR_TASKS: tuple[str, ...] = EASY + MEDIUM + HARD
#: CLAR's multi-task set (18 paraphrased instructions over these three tasks).
MULTITASK: tuple[str, ...] = ("button-press", "reach", "lever-pull")
#: The ablation subset used in the CLAR paper.
ABLATION: tuple[str, ...] = ("hammer", "bin-picking", "assembly", "shelf-place")
#: Every task this suite builds (the 15 CLAR tasks + button-press), in a stable order.
TASKS: tuple[str, ...] = CLAR_TASKS + ("button-press",)

DIFFICULTY: dict[str, str] = {
    **{t: "easy" for t in EASY},
    **{t: "medium" for t in MEDIUM},
    **{t: "hard" for t in HARD},
    "button-press": "easy",
}

#: Named groups accepted wherever a task list is (``--tasks clar``).
TASK_GROUPS: dict[str, tuple[str, ...]] = {
    "all": TASKS,
    "clar": CLAR_TASKS,
    "easy": EASY,
    "medium": MEDIUM,
    "hard": HARD,
    "multitask": MULTITASK,
    "ablation": ABLATION,
}

#: One instruction per task (paraphrasing the task definitions of the MetaWorld paper, App. A).
DESCRIPTIONS: dict[str, str] = {
    "reach": "reach the goal position",
    "lever-pull": "pull the lever up",
    "handle-pull": "pull the handle up",
    "peg-unplug-side": "unplug the peg sideways",
    "dial-turn": "turn the dial",
    "hammer": "hammer the nail into the wall",
    "sweep-into": "sweep the puck into the hole",
    "bin-picking": "pick the puck from one bin and place it into the other bin",
    "push-wall": "push the puck past the wall to the goal",
    "box-close": "grasp the lid and close the box with it",
    "assembly": "pick up the nut and place it onto the peg",
    "hand-insert": "insert the gripper into the hole",
    "shelf-place": "pick up the block and place it onto the shelf",
    "pick-place-wall": "pick up the puck, go around the wall and place it at the goal",
    "disassemble": "pick the nut off the peg",
    "button-press": "press the button",
}

#: Names of the objects whose positions fill the 39-d state (slots obs[4:7], obs[11:14]).
OBJECTS: dict[str, tuple[str, ...]] = {
    "reach": ("puck",),
    "lever-pull": ("lever",),
    "handle-pull": ("handle",),
    "peg-unplug-side": ("peg",),
    "dial-turn": ("dial",),
    "hammer": ("hammer", "nail"),
    "sweep-into": ("puck",),
    "bin-picking": ("puck",),
    "push-wall": ("puck",),
    "box-close": ("lid",),
    "assembly": ("nut",),
    "hand-insert": ("puck",),
    "shelf-place": ("block",),
    "pick-place-wall": ("puck",),
    "disassemble": ("nut",),
    "button-press": ("button",),
}


def env_id(task: str) -> str:
    """MetaWorld's registry key of the goal-observable single-task env."""
    return f"{task}-{VERSION}-goal-observable"


def expand_tasks(names: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Expand group names (``clar``, ``easy``...) and comma lists; keep order, drop repeats.

    Unknown names are returned as-is (the suite's ``check_task`` reports them).
    """
    if names is None:
        return list(CLAR_TASKS)
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for item in names:
        for name in str(item).split(","):
            name = name.strip()
            if not name:
                continue
            for t in TASK_GROUPS.get(name, (name,)):
                if t not in out:
                    out.append(t)
    return out
