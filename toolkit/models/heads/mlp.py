"""MLP action heads."""

from __future__ import annotations

import torch
import torch.nn as nn

from toolkit.registry import HEADS


@HEADS.register_module()
class BNMLPHead(nn.Module):
    """Lift3D-style BN-MLP actor: BatchNorm1d on the input, ReLU MLP, small last layer.

    Reference: Lift3D (PKU-HMI-Lab/LIFT3D) MetaWorld actor, as used by CLAR's policy (Fig. 3):
    ``BatchNorm1d(in) -> Linear(in, 256) -> ReLU -> ... -> Linear(256, action_dim)`` with the last
    layer's weights scaled by ``last_layer_scale`` so initial actions are near zero.

    Args:
        in_dim: size of the concatenated [visual feature, proprio (, language)] input.
        out_dim: action size (4 for MetaWorld; 8 for RLBench pose + gripper).
        hidden_dims: widths of the hidden layers.
        input_norm: BatchNorm1d on the input (the Lift3D default); off for tiny batches.
        last_layer_scale: multiplies the last layer's initial weights and bias.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dims: tuple[int, ...] = (256, 256, 256),
        input_norm: bool = True,
        last_layer_scale: float = 1e-2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.BatchNorm1d(in_dim)] if input_norm else []
        prev = in_dim
        for h in hidden_dims:
            layers += [nn.Linear(prev, h), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = h
        last = nn.Linear(prev, out_dim)
        with torch.no_grad():
            last.weight.mul_(last_layer_scale)
            last.bias.mul_(last_layer_scale)
        layers.append(last)
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_dim) -> (B, out_dim)."""
        return self.net(x)
