"""PointNet++ with single-scale grouping (Qi et al., NeurIPS 2017)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from toolkit.models.layers import (
    SharedMLP,
    check_point_mask,
    drop_full_mask,
    masked_max,
    push_invalid_far,
)
from toolkit.models.utils import PretrainedMixin
from toolkit.ops.neighbors import ball_query, group_points
from toolkit.ops.sampling import farthest_point_sample
from toolkit.registry import BACKBONES

__all__ = ["PointNet2", "SetAbstraction"]


class SetAbstraction(nn.Module):
    """One PointNet++ set-abstraction level (single-scale grouping).

    Sample ``num_centers`` centers by farthest point sampling (started at point 0), gather up to
    ``num_samples`` neighbours within ``radius`` of each (ball query; short balls repeat their
    first neighbour), concatenate the neighbours' xyz relative to the center with their
    features, apply a shared MLP (Linear, BN, ReLU per layer) and max-pool over the neighbours.
    With ``group_all=True`` the whole cloud is one group (absolute xyz, as in the reference) and
    the single "center" is the origin.

    Reference: yanx27/Pointnet_Pointnet2_pytorch ``models/pointnet2_utils.py::
    PointNetSetAbstraction``.

    Args:
        num_centers: Centers sampled by FPS (ignored when ``group_all``).
        radius: Ball-query radius, in the cloud's units (ignored when ``group_all``).
        num_samples: Neighbours per center (ignored when ``group_all``).
        in_dim: Feature channels of the input points (0 for raw xyz).
        mlp_dims: Shared MLP widths.
        group_all: Pool the whole cloud into one feature. Default False.
        fps_backend: Backend for :func:`toolkit.ops.sampling.farthest_point_sample`.
    """

    def __init__(
        self,
        num_centers: int | None,
        radius: float | None,
        num_samples: int | None,
        in_dim: int,
        mlp_dims: Sequence[int],
        group_all: bool = False,
        fps_backend: str = "torch",
    ) -> None:
        super().__init__()
        if not group_all and (num_centers is None or radius is None or num_samples is None):
            raise ValueError("num_centers, radius and num_samples are required unless group_all")
        self.num_centers = num_centers
        self.radius = radius
        self.num_samples = num_samples
        self.group_all = group_all
        self.fps_backend = fps_backend
        self.mlp = SharedMLP(in_dim + 3, mlp_dims, norm="batch")
        self.out_dim = self.mlp.out_dim

    def forward(
        self, xyz: Tensor, feats: Tensor | None, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Abstract a set.

        Args:
            xyz: (B, N, 3) point positions.
            feats: (B, N, C) point features, or None.
            mask: (B, N) bool valid points, or None: invalid points are never sampled or
                grouped.

        Returns:
            ``(centers (B, S, 3), features (B, S, out_dim))``; S = 1 when ``group_all``.
        """
        b = xyz.shape[0]
        if self.group_all:
            grouped = xyz if feats is None else torch.cat([xyz, feats], dim=-1)
            if mask is None:  # fused last block + max: same output, cheaper backward
                pooled = self.mlp.forward_max(grouped)[1]
            else:
                pooled = masked_max(self.mlp(grouped), mask)
            return xyz.new_zeros(b, 1, 3), pooled.unsqueeze(1)
        idx = farthest_point_sample(xyz, self.num_centers, backend=self.fps_backend, mask=mask)
        centers = group_points(xyz, idx)  # (B, S, 3)
        ref_xyz = xyz if mask is None else push_invalid_far(xyz, mask)
        nbr = ball_query(centers, ref_xyz, self.radius, self.num_samples)  # (B, S, K)
        grouped = group_points(xyz, nbr) - centers.unsqueeze(2)  # (B, S, K, 3)
        if feats is not None:
            grouped = torch.cat([grouped, group_points(feats, nbr)], dim=-1)
        return centers, self.mlp.forward_max(grouped)[1]  # max over the K neighbours


@BACKBONES.register_module()
class PointNet2(PretrainedMixin, nn.Module):
    """PointNet++ SSG encoder (Qi et al., "PointNet++: Deep Hierarchical Feature Learning on
    Point Sets in a Metric Space", NeurIPS 2017).

    Reference: yanx27/Pointnet_Pointnet2_pytorch ``models/pointnet2_cls_ssg.py`` (Lift3D's
    PointNet++ baseline): SA(512 centers, r 0.2, 32 nbrs, MLP 64-64-128) -> SA(128, r 0.4, 64,
    128-128-256) -> global SA(256-512-1024). Lift3D appends FC 1024 -> 512 -> 256 (BN, ReLU):
    ``head_dims=(512, 256)``.

    Units: the reference radii 0.2 / 0.4 assume clouds normalized to the unit sphere. Our
    manipulation clouds are metric (metres, robot/world frame, about 1 m across), so the
    defaults here are 0.05 / 0.1 m. Pass ``radii=(0.2, 0.4)`` for normalized clouds or to
    reproduce the reference exactly.

    Output of ``forward(points (B, N, 3), mask (B, N) | None)``:

    - ``tokens`` (B, ``num_tokens``, ``token_dim``): last local SA level's features.
    - ``centers`` (B, ``num_tokens``, 3): their FPS centers.
    - ``pooled`` (B, ``out_dim``): global SA feature (then the optional head).
    - ``levels``: list of ``(centers, features)`` per local SA level.

    Tokens use only coordinates relative to their centers, so they are translation invariant;
    the global level sees absolute center coordinates (as in the reference), so ``pooled`` is
    not. Masks are exact: padded points are never sampled or grouped, and a padded cloud gives
    the output of its valid points alone. A cloud with fewer valid points than
    ``num_centers[0]`` still works: FPS then repeats its first center (``toolkit.ops``).

    Args:
        num_centers: Centers per local SA level. Default ``(512, 128)``.
        radii: Ball-query radius per level (cloud units). Default ``(0.05, 0.1)`` (metres).
        num_samples: Neighbours per center per level. Default ``(32, 64)``.
        mlp_dims: Shared MLP widths per level. Default ``((64, 64, 128), (128, 128, 256))``.
        global_mlp_dims: Global SA widths. Default ``(256, 512, 1024)``.
        head_dims: Optional MLP (Linear, BN, ReLU, Dropout) on the pooled feature. Default ().
        head_dropout: Dropout after each head layer. Default 0.0.
        fps_backend: FPS backend (see :mod:`toolkit.ops.sampling`). Default ``"torch"``.
    """

    def __init__(
        self,
        num_centers: Sequence[int] = (512, 128),
        radii: Sequence[float] = (0.05, 0.1),
        num_samples: Sequence[int] = (32, 64),
        mlp_dims: Sequence[Sequence[int]] = ((64, 64, 128), (128, 128, 256)),
        global_mlp_dims: Sequence[int] = (256, 512, 1024),
        head_dims: Sequence[int] = (),
        head_dropout: float = 0.0,
        fps_backend: str = "torch",
    ) -> None:
        super().__init__()
        n = len(num_centers)
        if n == 0 or not (len(radii) == len(num_samples) == len(mlp_dims) == n):
            raise ValueError(
                "num_centers, radii, num_samples and mlp_dims need one entry per SA level; got "
                f"{len(num_centers)}, {len(radii)}, {len(num_samples)}, {len(mlp_dims)}"
            )
        self.sa_levels = nn.ModuleList()
        in_dim = 0
        for s, r, k, dims in zip(num_centers, radii, num_samples, mlp_dims):
            sa = SetAbstraction(s, r, k, in_dim, dims, fps_backend=fps_backend)
            self.sa_levels.append(sa)
            in_dim = sa.out_dim
        self.global_sa = SetAbstraction(None, None, None, in_dim, global_mlp_dims, group_all=True)
        self.head: nn.Module | None = None
        if head_dims:
            layers: list[nn.Module] = []
            prev = self.global_sa.out_dim
            for dim in head_dims:
                layers += [SharedMLP(prev, (dim,), norm="batch"), nn.Dropout(head_dropout)]
                prev = dim
            self.head = nn.Sequential(*layers)
        self.token_dim = in_dim
        self.num_tokens = int(num_centers[-1])
        self.out_dim = tuple(head_dims)[-1] if head_dims else self.global_sa.out_dim

    def forward(self, points: Tensor, mask: Tensor | None = None) -> dict[str, Tensor | list]:
        check_point_mask(points, mask)
        mask = drop_full_mask(mask)  # all valid: the faster unmasked path (same result)
        xyz, feats = points, None
        levels = []
        for i, sa in enumerate(self.sa_levels):
            xyz, feats = sa(xyz, feats, mask if i == 0 else None)
            levels.append((xyz, feats))
        _, pooled = self.global_sa(xyz, feats)
        pooled = pooled.squeeze(1)
        if self.head is not None:
            pooled = self.head(pooled)
        return dict(tokens=feats, pooled=pooled, centers=xyz, levels=levels)
