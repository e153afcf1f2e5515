"""Hooks every toolkit run uses."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook

from toolkit.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the torch / numpy / python RNG states in every checkpoint and restore them on resume.

    mmengine re-seeds only at start-up, so without this a resumed run draws different dropout
    masks, masking ratios and augmentations than the uninterrupted run would have.
    """

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        state = {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),  # noqa: NPY002 (the legacy global stream is what libraries use)
            "python": random.getstate(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["rng_state"] = state

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        state = checkpoint.get("rng_state")
        if not state:
            runner.logger.warning("checkpoint has no rng_state: random streams will differ")
            return
        torch.set_rng_state(state["torch"])
        np.random.set_state(state["numpy"])  # noqa: NPY002
        random.setstate(state["python"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
