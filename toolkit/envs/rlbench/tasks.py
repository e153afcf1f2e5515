"""RLBench tasks used by CLAR: the four evaluation tasks and the nine pretraining tasks.

Names are RLBench's own (``rlbench/tasks/<name>.py``, the dataset folder names); the paper's
hyphenated spellings (``close-box``) are accepted everywhere and mapped to them.
"""

from __future__ import annotations

__all__ = ["DESCRIPTIONS", "EVAL_TASKS", "PRETRAIN_TASKS", "TASKS", "canonical_task"]

#: CLAR Table I / II (RLBench column): front camera, keyframe waypoints.
EVAL_TASKS = ("close_box", "close_laptop_lid", "water_plants", "toilet_seat_down")

#: CLAR Sec. III-C: RLBench part of the pretraining data (besides RH20T).
PRETRAIN_TASKS = (
    "close_jar",
    "insert_onto_square_peg",
    "move_hanger",
    "open_drawer",
    "push_buttons",
    "put_groceries_in_cupboard",
    "stack_blocks",
    "stack_cups",
    "turn_oven_on",
)

TASKS = EVAL_TASKS + PRETRAIN_TASKS

#: Fallback instructions (the first of RLBench's variation-0 descriptions for the evaluation
#: tasks, the task name for the others). Stored episodes and live resets carry their own, which
#: win wherever they are known.
DESCRIPTIONS = {
    "close_box": "close box",
    "close_laptop_lid": "close laptop lid",
    "water_plants": "water plant",
    "toilet_seat_down": "toilet seat down",
    **{t: t.replace("_", " ") for t in PRETRAIN_TASKS},
}


def canonical_task(task: str) -> str:
    """``close-box`` -> ``close_box`` (RLBench's spelling)."""
    return str(task).strip().replace("-", "_")
