"""Weighted end-effector pose + gripper loss of the RLBench policy protocol (Lift3D / CLAR).

``L = w_pos MSE(xyz) + w_rot mean(1 - cos(q_pred, q_target)) + w_grip MSE(gripper)`` with
(w_pos, w_rot, w_grip) = (10, 0.1, 0.01) (Lift3D's RLBench harness, the protocol CLAR follows;
specs.md). Actions are ``(B, 8)``: xyz (metres), quaternion (4), gripper open.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.registry import OBJECTIVES
from toolkit.utils.errors import ShapeError

__all__ = ["PoseGripperLoss"]


@OBJECTIVES.register_module()
class PoseGripperLoss(nn.Module):
    """Position MSE + quaternion cosine + gripper MSE, each weighted, on raw-unit actions.

    Args:
        pos_weight / rot_weight / gripper_weight: term weights (10 / 0.1 / 0.01).
        sign_invariant: use ``1 - |cos|`` so ``q`` and ``-q`` (the same rotation) cost nothing;
            the default ``1 - cos`` matches the reference protocol, whose targets are
            canonicalized to ``w >= 0`` (as :mod:`toolkit.data.rlbench` writes them).
        pos_slice / quat_slice / gripper_index: where the parts sit in the action vector.

    ``forward(pred (B, A), target (B, A))`` returns ``loss_pos``, ``loss_rot``, ``loss_gripper``
    (weighted; mmengine sums every ``loss*`` key) and the unweighted ``pos_mse``, ``rot_cos``
    (mean cosine), ``gripper_mse`` for logging.
    """

    def __init__(
        self,
        pos_weight: float = 10.0,
        rot_weight: float = 0.1,
        gripper_weight: float = 0.01,
        sign_invariant: bool = False,
        pos_slice: tuple[int, int] = (0, 3),
        quat_slice: tuple[int, int] = (3, 7),
        gripper_index: int = 7,
    ) -> None:
        super().__init__()
        if quat_slice[1] - quat_slice[0] != 4 or pos_slice[1] - pos_slice[0] != 3:
            raise ValueError(
                f"PoseGripperLoss: expected 3 position and 4 quaternion entries, got {pos_slice}, {quat_slice}"
            )
        self.weights = (float(pos_weight), float(rot_weight), float(gripper_weight))
        self.sign_invariant = bool(sign_invariant)
        self.pos_slice, self.quat_slice, self.gripper_index = pos_slice, quat_slice, gripper_index
        self.min_dim = max(pos_slice[1], quat_slice[1], gripper_index + 1)

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        if pred.shape != target.shape or pred.ndim != 2 or pred.shape[1] < self.min_dim:
            raise ShapeError(
                f"PoseGripperLoss: pred and target must both be (B, >= {self.min_dim}), got pred "
                f"{tuple(pred.shape)}, target {tuple(target.shape)}"
            )
        p0, p1 = self.pos_slice
        q0, q1 = self.quat_slice
        g = self.gripper_index
        pos_mse = F.mse_loss(pred[:, p0:p1], target[:, p0:p1])
        cos = F.cosine_similarity(pred[:, q0:q1], target[:, q0:q1], dim=-1, eps=1e-8)
        rot = (1.0 - (cos.abs() if self.sign_invariant else cos)).mean()
        grip_mse = F.mse_loss(pred[:, g], target[:, g])
        wp, wr, wg = self.weights
        return {
            "loss_pos": wp * pos_mse,
            "loss_rot": wr * rot,
            "loss_gripper": wg * grip_mse,
            "pos_mse": pos_mse.detach(),
            "rot_cos": cos.detach().mean(),
            "gripper_mse": grip_mse.detach(),
        }
