"""A user's plugin module living OUTSIDE the toolkit package (test-only components).

It registers into the toolkit's registries exactly as docs/adding_a_backbone.md tells users to,
and is loaded through ``custom_imports`` in tests/plugins/tiny_config.py.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.hooks import Hook
from torch.utils.data import Dataset

from toolkit.models.base import ToolkitModel
from toolkit.registry import BACKBONES, DATASETS, HOOKS, MODELS


@BACKBONES.register_module()
class TinyMLPBackbone(nn.Module):
    """Test-only backbone: a 2-layer MLP over a flat vector."""

    def __init__(self, in_dim: int = 8, hidden: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Dropout(dropout))
        self.out_dim = hidden

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.net(x)
        return dict(tokens=h[:, None], pooled=h)


@MODELS.register_module()
class TinyRegressor(ToolkitModel):
    """Test-only model: backbone + linear head, MSE loss."""

    def __init__(self, backbone: dict, out_dim: int = 1) -> None:
        super().__init__()
        self.backbone = BACKBONES.build(backbone)
        self.head = nn.Linear(self.backbone.out_dim, out_dim)

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        pred = self.head(self.backbone(batch["x"])["pooled"])
        return {"loss_mse": F.mse_loss(pred, batch["y"])}

    def predict(self, batch: dict) -> torch.Tensor:
        return self.head(self.backbone(batch["x"])["pooled"])


@DATASETS.register_module()
class TinyRegressionDataset(Dataset):
    """Test-only dataset: y = sin(w . x) with fixed random x, w."""

    def __init__(self, n: int = 32, dim: int = 8, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        w = torch.randn(dim, generator=g)
        self.y = torch.sin(self.x @ w)[:, None]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


@HOOKS.register_module()
class CrashAtIterHook(Hook):
    """Test-only: simulate an interruption (a killed job) at a given global iteration."""

    def __init__(self, at_iter: int = -1) -> None:
        self.at_iter = at_iter

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter == self.at_iter:
            raise SystemExit(17)
