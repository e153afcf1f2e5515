"""Point-MAE reconstruction loss: L2 Chamfer distance per masked patch (CLAR Eq. 1)."""

from __future__ import annotations

from torch import Tensor, nn

from toolkit.ops.chamfer import chamfer_distance
from toolkit.registry import OBJECTIVES
from toolkit.utils.errors import ShapeError

__all__ = ["ChamferMAELoss"]


@OBJECTIVES.register_module()
class ChamferMAELoss(nn.Module):
    """Squared-L2 Chamfer distance between predicted and ground-truth masked patches.

    Point-MAE (``models/Point_MAE.py``) reshapes the predicted and the ground-truth masked
    patches (in their local frames, i.e. minus their centers) to ``(B M, k, 3)`` and calls
    ``ChamferDistanceL2``: ``mean(d1) + mean(d2)`` over all ``B M k`` squared nearest-neighbour
    distances of each direction. Every patch holds the same number of points, so this equals
    the mean over patches of the per-patch Chamfer distance of CLAR's Eq. 1, which is what is
    computed here (:func:`toolkit.ops.chamfer.chamfer_distance`, pure torch).

    Args:
        name: Output key suffix: the loss is ``loss_{name}``. Default ``"mae"``.
    """

    def __init__(self, name: str = "mae") -> None:
        super().__init__()
        self.name = name

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """``pred (B, M, K, 3)``, ``target (B, M, K', 3)`` -> ``{loss_{name}: scalar}``.

        Any leading shape works as long as both agree (``(B M, K, 3)`` too): patch ``i`` of
        ``pred`` is compared with patch ``i`` of ``target`` only.
        """
        if pred.ndim < 3 or pred.shape[-1] != 3 or target.shape[-1] != 3:
            raise ShapeError(
                f"ChamferMAELoss: pred and target must be (B, M, K, 3), got pred "
                f"{tuple(pred.shape)}, target {tuple(target.shape)}"
            )
        if pred.shape[:-2] != target.shape[:-2]:
            raise ShapeError(
                f"ChamferMAELoss: pred and target must hold the same patches (leading dims), got "
                f"pred {tuple(pred.shape)}, target {tuple(target.shape)}"
            )
        if pred.shape[:-2].numel() == 0 or pred.shape[-2] == 0 or target.shape[-2] == 0:
            raise ShapeError(
                f"ChamferMAELoss: no masked patch / point to reconstruct, got pred "
                f"{tuple(pred.shape)}, target {tuple(target.shape)}"
            )
        a = pred.reshape(-1, pred.shape[-2], 3)
        b = target.reshape(-1, target.shape[-2], 3)
        loss = chamfer_distance(a, b, norm=2, squared=True, reduction="mean").mean()
        return {f"loss_{self.name}": loss.to(pred.dtype)}
