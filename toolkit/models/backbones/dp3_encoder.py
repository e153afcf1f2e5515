"""DP3's point-cloud encoder (3D Diffusion Policy, Ze et al., RSS 2024)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from toolkit.models.layers import SharedMLP, check_point_mask, masked_max
from toolkit.models.utils import PretrainedMixin
from toolkit.registry import BACKBONES

__all__ = ["DP3Encoder"]


@BACKBONES.register_module()
class DP3Encoder(PretrainedMixin, nn.Module):
    """The lean PointNet of 3D Diffusion Policy (Ze et al., "3D Diffusion Policy:
    Generalizable Visuomotor Policy Learning via Simple 3D Representations", RSS 2024).

    Reference: YanjieZe/3D-Diffusion-Policy ``diffusion_policy_3d/model/vision/
    pointnet_extractor.py::PointNetEncoderXYZ`` with DP3's config (``use_layernorm=True``,
    ``final_norm='layernorm'``, ``out_channels=64``): per point ``Linear 3 -> 64 -> 128 -> 256``
    each followed by LayerNorm and ReLU, max pool, then ``Linear 256 -> 64`` + LayerNorm. No
    T-Nets, no BatchNorm (so batches never interact). Only the point-cloud branch is here: DP3's
    state MLP belongs to the policy. Submodule names (``mlp``, ``final_projection``) and their
    indices match the reference, so its ``extractor.*`` weights load with ``prefix="extractor."``.

    Output of ``forward(points (B, N, 3), mask (B, N) | None)``:

    - ``tokens`` (B, N, ``token_dim``): per-point features before pooling (T = N, not projected).
    - ``pooled`` (B, ``out_dim``): projected max over valid points.
    - ``centers`` (B, N, 3): the input points; ``token_mask`` (B, N): the mask, when given.

    Masks are exact (LayerNorm is per point; pooling ignores padded points).

    Args:
        mlp_dims: Per-point widths. Default ``(64, 128, 256)``.
        out_dim: Projection width. Default 64 (DP3).
        use_layernorm: LayerNorm after each per-point layer. Default True (DP3 config).
        final_norm: ``"layernorm"`` or ``"none"`` after the projection. Default ``"layernorm"``.
        use_projection: Project the pooled feature; if False ``out_dim = mlp_dims[-1]``.
            Default True.
    """

    def __init__(
        self,
        mlp_dims: Sequence[int] = (64, 128, 256),
        out_dim: int = 64,
        use_layernorm: bool = True,
        final_norm: Literal["layernorm", "none"] = "layernorm",
        use_projection: bool = True,
    ) -> None:
        super().__init__()
        mlp_dims = tuple(mlp_dims)
        self.mlp = SharedMLP(3, mlp_dims, norm="layer" if use_layernorm else "none")
        last = mlp_dims[-1]
        if not use_projection:
            self.final_projection: nn.Module = nn.Identity()
            out_dim = last
        elif final_norm == "layernorm":
            self.final_projection = nn.Sequential(nn.Linear(last, out_dim), nn.LayerNorm(out_dim))
        elif final_norm == "none":
            self.final_projection = nn.Linear(last, out_dim)
        else:
            raise ValueError(f"final_norm must be 'layernorm' or 'none'; got '{final_norm}'")
        self.token_dim = last
        self.out_dim = out_dim
        self.num_tokens: int | None = None

    def forward(self, points: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        check_point_mask(points, mask)
        if mask is not None:  # padded coordinates may be garbage or non-finite
            points = points.masked_fill(~mask.unsqueeze(-1), 0.0)
        tokens = self.mlp(points)  # (B, N, C)
        pooled = self.final_projection(masked_max(tokens, mask))
        out = dict(tokens=tokens, pooled=pooled, centers=points)
        if mask is not None:
            out["token_mask"] = mask
        return out
