"""Base class for every trainable model the Runner builds (pretrainers and policies)."""

from __future__ import annotations

from typing import Any

import torch
from mmengine.model import BaseModel


class ToolkitModel(BaseModel):
    """An mmengine ``BaseModel`` whose batches are plain dicts of tensors.

    The Runner calls ``forward(**batch, mode=...)``; subclasses implement

    - ``loss(batch) -> dict[str, Tensor]``: entries whose key contains ``loss`` are summed by
      mmengine into the optimized loss; other entries are logged.
    - ``predict(batch) -> Any``: what validation metrics consume.
    """

    def forward(self, mode: str = "tensor", **batch: Any) -> Any:
        if mode == "loss":
            return self.loss(batch)
        if mode in ("predict", "tensor"):
            return self.predict(batch)
        raise ValueError(f"unknown forward mode '{mode}'; expected 'loss', 'predict' or 'tensor'")

    def loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def predict(self, batch: dict[str, Any]) -> Any:
        raise NotImplementedError
