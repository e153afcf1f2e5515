"""Mini-PointNet group tokenizer of Point-BERT / Point-MAE."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["MiniPointNet"]


class MiniPointNet(nn.Module):
    """Embed each local point group (patch) into one token.

    Point-MAE (Pang et al., ECCV 2022), ``models/Point_MAE.py::Encoder`` (same as Point-BERT's):
    ``Conv1d in->h, BN, ReLU, Conv1d h->f``; max-pool; concatenate the pooled (global) feature to
    every point (2f); ``Conv1d 2f->u, BN, ReLU, Conv1d u->out``; max-pool. The reference sizes
    are ``h, f, u = 128, 256, 512``. Submodule names (``first_conv``, ``second_conv``) follow the
    reference so its checkpoints map one to one.

    Args:
        out_dim: Token width. Default 384.
        in_dim: Per-point input channels. Default 3 (xyz relative to the group center).
        hidden_dim: ``h``, first hidden width. Default 128.
        feat_dim: ``f``, first-stage feature width. Default 256.
        fuse_dim: ``u``, hidden width after concatenating the global feature. Default 512.
        norm_layer: Norm class for the hidden layers. Default ``nn.BatchNorm1d``.
        act_layer: Activation class. Default ``nn.ReLU``.
    """

    def __init__(
        self,
        out_dim: int = 384,
        in_dim: int = 3,
        hidden_dim: int = 128,
        feat_dim: int = 256,
        fuse_dim: int = 512,
        norm_layer: type[nn.Module] = nn.BatchNorm1d,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.first_conv = nn.Sequential(
            nn.Conv1d(in_dim, hidden_dim, 1),
            norm_layer(hidden_dim),
            act_layer(),
            nn.Conv1d(hidden_dim, feat_dim, 1),
        )
        self.second_conv = nn.Sequential(
            nn.Conv1d(2 * feat_dim, fuse_dim, 1),
            norm_layer(fuse_dim),
            act_layer(),
            nn.Conv1d(fuse_dim, out_dim, 1),
        )

    def forward(self, groups: Tensor) -> Tensor:
        """``groups`` (B, G, K, C) -> tokens (B, G, out_dim)."""
        b, g, k, c = groups.shape
        x = groups.reshape(b * g, k, c).transpose(1, 2)  # (BG, C, K)
        x = self.first_conv(x)  # (BG, f, K)
        pooled = x.amax(dim=2, keepdim=True)
        x = torch.cat([pooled.expand(-1, -1, k), x], dim=1)  # (BG, 2f, K)
        x = self.second_conv(x).amax(dim=2)  # (BG, out)
        return x.reshape(b, g, self.out_dim)
