"""PointNet (Qi et al., CVPR 2017): shared per-point MLP + symmetric max pooling."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from toolkit.models.layers import SharedMLP, check_point_mask, drop_full_mask, masked_max
from toolkit.models.utils import PretrainedMixin
from toolkit.registry import BACKBONES

__all__ = ["PointNet", "TNet", "feature_transform_regularizer"]


def _on_valid_rows(fn: Callable[[Tensor], Tensor], x: Tensor, mask: Tensor | None) -> Tensor:
    """Apply a per-row module to the valid rows of ``x`` (B, N, C) only.

    BatchNorm statistics (train mode) then come from valid points only, so padding a cloud
    never changes the output. Invalid rows of the result are 0.
    """
    if mask is None:
        return fn(x)
    y = fn(x[mask])  # (P, C')
    out = y.new_zeros(*x.shape[:-1], y.shape[-1])
    out[mask] = y
    return out


class TNet(nn.Module):
    """PointNet's spatial/feature transformer: predicts a ``k x k`` matrix from the cloud.

    Shared MLP ``k -> 64 -> 128 -> 1024`` (BN, ReLU), max pool, FC ``1024 -> 512 -> 256`` (BN,
    ReLU), FC ``256 -> k*k`` plus the identity. As in the original TensorFlow code
    (charlesq34/pointnet ``transform_nets.py``) the last FC starts at zero, so the transform
    is the identity at initialization.

    Args:
        k: Matrix size (3 for the input transform, 64 for the feature transform).
        mlp_dims: Shared MLP widths. Default ``(64, 128, 1024)``.
        fc_dims: Hidden FC widths after pooling. Default ``(512, 256)``.
    """

    def __init__(
        self,
        k: int = 3,
        mlp_dims: Sequence[int] = (64, 128, 1024),
        fc_dims: Sequence[int] = (512, 256),
    ) -> None:
        super().__init__()
        self.k = k
        self.mlp = SharedMLP(k, mlp_dims, norm="batch")
        self.fc = SharedMLP(mlp_dims[-1], fc_dims, norm="batch")
        self.out = nn.Linear(fc_dims[-1], k * k)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x`` (B, N, k), ``mask`` (B, N) | None -> transform (B, k, k)."""
        if mask is None:  # fused last block + max (identical output, cheaper backward)
            pooled = self.mlp.forward_max(x)[1]
        else:
            pooled = masked_max(_on_valid_rows(self.mlp, x, mask), mask)
        eye = torch.eye(self.k, dtype=x.dtype, device=x.device)
        return self.out(self.fc(pooled)).view(-1, self.k, self.k) + eye


def feature_transform_regularizer(trans: Tensor) -> Tensor:
    """PointNet's orthogonality loss ``mean_b ||I - A_b A_b^T||_F^2`` for (B, k, k) transforms."""
    eye = torch.eye(trans.shape[-1], dtype=trans.dtype, device=trans.device)
    diff = torch.bmm(trans, trans.transpose(1, 2)) - eye
    return diff.square().sum(dim=(1, 2)).mean()


@BACKBONES.register_module()
class PointNet(PretrainedMixin, nn.Module):
    """PointNet encoder (Qi et al., "PointNet: Deep Learning on Point Sets for 3D
    Classification and Segmentation", CVPR 2017).

    Reference: the PyTorch port yanx27/Pointnet_Pointnet2_pytorch ``models/pointnet_utils.py::
    PointNetEncoder``, which Lift3D (PKU-HMI-Lab/LIFT3D) uses as its PointNet baseline:
    per-point ``3 -> 64 -> 128 -> 1024`` with BatchNorm and ReLU (no ReLU after the last layer,
    as in that port; the original TF code has one: ``last_act=True``), optional input (3x3) and
    feature (64x64) T-Nets, max pool. Lift3D then appends ``FC 1024 -> 512 -> 256`` with BN and
    ReLU: ``head_dims=(512, 256)`` reproduces that baseline feature (with both T-Nets on).

    Output of ``forward(points (B, N, 3), mask (B, N) | None)``:

    - ``tokens`` (B, N, ``token_dim``): per-point features before pooling (one token per input
      point; T = N, so ``num_tokens`` is None). Rows of padded points are 0.
    - ``pooled`` (B, ``out_dim``): max over valid points (then the optional head).
    - ``centers`` (B, N, 3): the input points (token positions).
    - ``token_mask`` (B, N): the input ``mask``, only when one was given.
    - ``input_transform`` (B, 3, 3) / ``feature_transform`` (B, 64, 64) when the T-Nets are on;
      add ``feature_transform_regularizer(out["feature_transform"])`` (weight 0.001 in the
      paper) to the loss.

    Masks are exact: BatchNorm statistics use valid points only, pooling ignores padded ones.

    Args:
        mlp_dims: Shared per-point MLP widths. Default ``(64, 128, 1024)``.
        input_transform: Use the 3x3 input T-Net. Default False.
        feature_transform: Use the feature T-Net after the first layer. Default False.
        last_act: ReLU after the last per-point layer. Default False (yanx27 port).
        head_dims: Optional MLP (Linear, BN, ReLU, Dropout) on the pooled feature. Default ().
        head_dropout: Dropout after each head layer. Default 0.0.
    """

    def __init__(
        self,
        mlp_dims: Sequence[int] = (64, 128, 1024),
        input_transform: bool = False,
        feature_transform: bool = False,
        last_act: bool = False,
        head_dims: Sequence[int] = (),
        head_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        mlp_dims = tuple(mlp_dims)
        if not mlp_dims:
            raise ValueError("PointNet needs at least one per-point layer (mlp_dims is empty)")
        single = len(mlp_dims) == 1
        self.input_tnet = TNet(3) if input_transform else None
        self.mlp1 = SharedMLP(3, mlp_dims[:1], last_act=last_act or not single)
        self.feature_tnet = TNet(mlp_dims[0]) if feature_transform else None
        self.mlp2 = SharedMLP(mlp_dims[0], mlp_dims[1:], last_act=last_act) if not single else None
        self.head: nn.Module | None = None
        if head_dims:
            layers: list[nn.Module] = []
            prev = mlp_dims[-1]
            for dim in head_dims:
                layers += [SharedMLP(prev, (dim,), norm="batch"), nn.Dropout(head_dropout)]
                prev = dim
            self.head = nn.Sequential(*layers)
        self.token_dim = mlp_dims[-1]
        self.out_dim = tuple(head_dims)[-1] if head_dims else mlp_dims[-1]
        self.num_tokens: int | None = None

    def forward(self, points: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        check_point_mask(points, mask)
        token_mask, mask = mask, drop_full_mask(mask)  # all valid: the faster unmasked path
        out: dict[str, Tensor] = {}
        x = points
        if self.input_tnet is not None:
            trans = self.input_tnet(x, mask)
            x = torch.bmm(x, trans)
            out["input_transform"] = trans
        # Without a mask the last per-point block and the max-pool run fused (SharedMLP.
        # forward_max): the same outputs, a much cheaper backward in training.
        if self.mlp2 is None and self.feature_tnet is None and mask is None:
            x, pooled = self.mlp1.forward_max(x)
        else:
            x = _on_valid_rows(self.mlp1, x, mask)
            if self.feature_tnet is not None:
                trans_feat = self.feature_tnet(x, mask)
                x = torch.bmm(x, trans_feat)
                out["feature_transform"] = trans_feat
            if self.mlp2 is not None and mask is None:
                x, pooled = self.mlp2.forward_max(x)
            else:
                if self.mlp2 is not None:
                    x = _on_valid_rows(self.mlp2, x, mask)
                pooled = masked_max(x, mask)
        if self.head is not None:
            pooled = self.head(pooled)
        out.update(tokens=x, pooled=pooled, centers=points)
        if token_mask is not None:
            out["token_mask"] = token_mask
        return out
