"""Single-scale deformable cross-attention (Deformable-DETR's MSDeformAttn with L = 1)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.utils.errors import ShapeError

__all__ = ["DeformableCrossAttention"]


class DeformableCrossAttention(nn.Module):
    """Each query samples ``K`` bilinear points per head around its reference point.

    Zhu et al., "Deformable DETR" (ICLR 2021), ``models/ops/modules/ms_deform_attn.py`` with one
    feature level and the pure-torch ``ms_deform_attn_core_pytorch`` path:

    - ``sampling_offsets = Linear(query_dim -> M K 2)``, ``attention_weights = Linear(query_dim
      -> M K)`` softmaxed over the ``K`` points of each head;
    - ``value = value_proj(value_map)`` split into ``M`` heads of ``embed_dim / M`` channels;
    - ``loc = ref + offset / (w, h)`` (offsets are in value-map pixels), sampled with
      ``F.grid_sample(value, 2 loc - 1, bilinear, zeros, align_corners=False)``, so ``loc`` in
      ``[0, 1]`` spans the map edge to edge and samples outside it read zeros;
    - ``out = output_proj(concat_m sum_k A_mk v_m(loc_mk))``.

    Init as the reference: offset weights 0 and offset biases on a per-head direction grid
    (``theta_m = 2 pi m / M``, scaled to max-abs component 1, times ``k + 1`` for point ``k``), so
    at init head ``m`` samples ``1, 2, .., K`` pixels from the reference along its direction;
    attention weights / biases 0 (uniform ``1 / K``); xavier-uniform value / output projections
    with zero bias.

    Args:
        query_dim: Query channels ``Cq``.
        value_dim: Value-map channels ``Cv``.
        embed_dim: Attention width (``value_proj`` output); divisible by ``num_heads``.
            Default ``value_dim``.
        num_heads: ``M``. Default 8.
        num_points: ``K`` sampling points per head. Default 4.
        out_dim: Output channels (``output_proj``). Default ``embed_dim``.
    """

    def __init__(
        self,
        query_dim: int,
        value_dim: int,
        embed_dim: int | None = None,
        num_heads: int = 8,
        num_points: int = 4,
        out_dim: int | None = None,
    ) -> None:
        super().__init__()
        embed_dim = value_dim if embed_dim is None else embed_dim
        out_dim = embed_dim if out_dim is None else out_dim
        if num_heads <= 0 or num_points <= 0:
            raise ValueError(
                f"DeformableCrossAttention: num_heads and num_points must be positive, got "
                f"num_heads={num_heads}, num_points={num_points}"
            )
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"DeformableCrossAttention: embed_dim must be divisible by num_heads, got "
                f"embed_dim={embed_dim}, num_heads={num_heads}"
            )
        self.query_dim = query_dim
        self.value_dim = value_dim
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_points = num_points
        self.out_dim = out_dim
        self.head_dim = embed_dim // num_heads
        self.sampling_offsets = nn.Linear(query_dim, num_heads * num_points * 2)
        self.attention_weights = nn.Linear(query_dim, num_heads * num_points)
        self.value_proj = nn.Linear(value_dim, embed_dim)
        self.output_proj = nn.Linear(embed_dim, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable-DETR's ``MSDeformAttn._reset_parameters`` for one level."""
        M, K = self.num_heads, self.num_points
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(M, dtype=torch.float32) * (2.0 * math.pi / M)
        grid = torch.stack([thetas.cos(), thetas.sin()], dim=-1)  # (M, 2)
        grid = grid / grid.abs().amax(dim=-1, keepdim=True)
        grid = grid[:, None, :] * torch.arange(1, K + 1, dtype=torch.float32)[None, :, None]
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.reshape(-1))  # (M, K, 2) flattened
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(
        self,
        query: Tensor,
        reference_points: Tensor,
        value_map: Tensor,
        value_valid: Tensor | None = None,
        return_sampling: bool = False,
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """Attend from each query to its neighbourhood of ``value_map``.

        Args:
            query: ``(B, Q, Cq)``.
            reference_points: ``(B, Q, 2)`` normalized ``(x, y)`` in ``[0, 1]`` (``x`` along
                the width); pixel ``(i, j)`` has its center at ``((i + .5) / w, (j + .5) / h)``.
            value_map: ``(B, Cv, h, w)``.
            value_valid: optional ``(B, h, w)`` bool, True where the value pixel is valid;
                invalid pixels are zeroed after ``value_proj`` (like the reference's
                ``input_padding_mask``), so they contribute nothing to bilinear samples.
            return_sampling: also return the sampling locations and weights.

        Returns:
            ``(B, Q, out_dim)``; with ``return_sampling`` also a dict of detached
            ``locations (B, Q, M, K, 2)`` (normalized ``(x, y)``) and ``weights (B, Q, M, K)``.
        """
        if query.ndim != 3 or query.shape[-1] != self.query_dim:
            raise ShapeError(
                f"DeformableCrossAttention: query must be (B, Q, {self.query_dim}), "
                f"got {tuple(query.shape)}"
            )
        B, Q, _ = query.shape
        if tuple(reference_points.shape) != (B, Q, 2):
            raise ShapeError(
                f"DeformableCrossAttention: reference_points must be (B, Q, 2) = {(B, Q, 2)}, "
                f"got {tuple(reference_points.shape)}"
            )
        if value_map.ndim != 4 or value_map.shape[:2] != (B, self.value_dim):
            raise ShapeError(
                f"DeformableCrossAttention: value_map must be (B, Cv, h, w) with B={B}, "
                f"Cv={self.value_dim}, got {tuple(value_map.shape)}"
            )
        h, w = value_map.shape[-2:]
        if value_valid is not None and tuple(value_valid.shape) != (B, h, w):
            raise ShapeError(
                f"DeformableCrossAttention: value_valid must be (B, h, w) = {(B, h, w)}, "
                f"got {tuple(value_valid.shape)}"
            )
        M, K, D = self.num_heads, self.num_points, self.head_dim

        value = self.value_proj(value_map.flatten(2).transpose(1, 2))  # (B, hw, E)
        if value_valid is not None:
            value = value.masked_fill(~value_valid.reshape(B, h * w, 1).bool(), 0.0)
        # (B, hw, M, D) -> (B M, D, h, w): one grid_sample call for all heads
        value = value.view(B, h * w, M, D).permute(0, 2, 3, 1).reshape(B * M, D, h, w)

        offsets = self.sampling_offsets(query).view(B, Q, M, K, 2)
        weights = self.attention_weights(query).view(B, Q, M, K).softmax(dim=-1)
        normalizer = torch.tensor([w, h], dtype=offsets.dtype, device=offsets.device)
        locations = reference_points[:, :, None, None, :].to(offsets.dtype) + offsets / normalizer

        grid = (2.0 * locations - 1.0).transpose(1, 2).reshape(B * M, Q, K, 2)
        sampled = F.grid_sample(
            value, grid.to(value.dtype), mode="bilinear", padding_mode="zeros", align_corners=False
        )  # (B M, D, Q, K)
        attn = weights.transpose(1, 2).reshape(B * M, 1, Q, K).to(sampled.dtype)
        out = (sampled * attn).sum(-1).view(B, M * D, Q).transpose(1, 2)  # (B, Q, E)
        out = self.output_proj(out)
        if not return_sampling:
            return out
        return out, {"locations": locations.detach(), "weights": weights.detach()}
