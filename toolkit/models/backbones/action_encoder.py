"""CLAMP's action-history encoder h: a Transformer encoder with MAP over the last H actions."""

from __future__ import annotations

from typing import Any, Literal

import torch
from timm.layers import AttentionPoolLatent, trunc_normal_
from timm.models.vision_transformer import Block
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from toolkit.models.layers.init import init_vit_weights
from toolkit.models.utils import PretrainedMixin
from toolkit.registry import BACKBONES
from toolkit.utils.errors import ShapeError

__all__ = ["ACTION_ARCH_SETTINGS", "ActionHistoryEncoder", "history_padding_mask"]

#: ``paper``: 2 layers, width 768, 12 heads, FFN 2048, dropout 0.1 (CLAMP Sec. III-B, App. C;
#: about 18M parameters with the MAP head); ``tiny``: our CPU / test size.
ACTION_ARCH_SETTINGS: dict[str, dict[str, Any]] = {
    "tiny": dict(embed_dim=64, depth=2, num_heads=2, ffn_dim=128, dropout=0.1),
    "paper": dict(embed_dim=768, depth=2, num_heads=12, ffn_dim=2048, dropout=0.1),
}


def history_padding_mask(steps: Tensor, history: int) -> Tensor:
    """Valid entries of a zero-padded action history.

    Args:
        steps: ``(B,)`` integer time step ``t`` of each sample (0 = first step of its episode).
        history: H.

    Returns:
        ``(B, H)`` bool: entry ``j`` holds ``a_{t-1-j}``, valid iff ``j < t``.
    """
    j = torch.arange(history, device=steps.device)
    return j.unsqueeze(0) < steps.reshape(-1, 1)


@BACKBONES.register_module()
class ActionHistoryEncoder(PretrainedMixin, nn.Module):
    """Transformer encoder + MAP over the previous actions ``(a_{t-1}, ..., a_{t-H})`` (CLAMP h).

    ``Linear(A -> D)`` embedding, a learned position embedding ``(H, D)``, dropout, pre-LN timm
    blocks (attention and MLP dropout = ``dropout``; MLP hidden = ``ffn_dim``), a final
    LayerNorm, then timm's ``AttentionPoolLatent`` (MAP). The padding mask is a key mask in
    every attention (blocks and MAP), so the valid entries' outputs and the pooled embedding do
    not depend on what the padded entries hold.

    Design choices (UNVERIFIED by the paper): pre-LN blocks as big_vision's encoder; entry 0 is
    the most recent action (``a_{t-1}``), padding at the end. A history with no valid entry at
    all (``t = 0``) is encoded with its (zero) entries unmasked: the paper feeds zero-padded
    actions and an all-masked softmax would be undefined.

    Args:
        action_dim: A (14 for bimanual ALOHA joint positions).
        history: H, number of past actions. Default 50 (CLAMP: the action chunk size).
        arch: ``"paper"`` (default) | ``"tiny"``; the arguments below default to the preset.
        embed_dim: Width D.
        depth: Blocks.
        num_heads: Heads.
        ffn_dim: MLP hidden width.
        dropout: Dropout of the embedding, attention weights and projections.
        out_dim: Width of ``pooled``. Default D.
        grad_checkpointing: Activation checkpointing of the blocks.
    """

    def __init__(
        self,
        action_dim: int = 14,
        history: int = 50,
        arch: Literal["paper", "tiny"] = "paper",
        embed_dim: int | None = None,
        depth: int | None = None,
        num_heads: int | None = None,
        ffn_dim: int | None = None,
        dropout: float | None = None,
        out_dim: int | None = None,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if arch not in ACTION_ARCH_SETTINGS:
            raise ValueError(
                f"ActionHistoryEncoder: unknown arch '{arch}'; expected "
                f"{sorted(ACTION_ARCH_SETTINGS)}"
            )
        given = dict(
            embed_dim=embed_dim, depth=depth, num_heads=num_heads, ffn_dim=ffn_dim, dropout=dropout
        )
        cfg = {k: (ACTION_ARCH_SETTINGS[arch][k] if v is None else v) for k, v in given.items()}
        dim, ffn = int(cfg["embed_dim"]), int(cfg["ffn_dim"])
        drop = float(cfg["dropout"])
        if action_dim <= 0 or history <= 0:
            raise ValueError(
                f"ActionHistoryEncoder: action_dim and history must be positive, got "
                f"{action_dim}, {history}"
            )
        self.action_dim, self.history = int(action_dim), int(history)
        self.grad_checkpointing = grad_checkpointing
        self.embed = nn.Linear(action_dim, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, history, dim))
        self.pos_drop = nn.Dropout(drop)
        mlp_ratio = ffn / dim
        if int(dim * mlp_ratio) != ffn:  # timm takes int(dim * ratio); guard the rounding
            mlp_ratio = (ffn + 0.5) / dim
        self.blocks = nn.ModuleList(
            Block(
                dim,
                int(cfg["num_heads"]),
                mlp_ratio=mlp_ratio,
                qkv_bias=True,
                attn_drop=drop,
                proj_drop=drop,
                norm_layer=nn.LayerNorm,
            )
            for _ in range(int(cfg["depth"]))
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.apply(init_vit_weights)
        trunc_normal_(self.pos_embed, std=0.02)
        self.out_dim = dim if out_dim is None else int(out_dim)
        self.attn_pool = AttentionPoolLatent(
            dim, out_features=self.out_dim, num_heads=int(cfg["num_heads"]), norm_layer=nn.LayerNorm
        )
        # boolean key masks need the SDPA path (timm's manual path would add them as numbers)
        for mod in self.modules():
            if hasattr(mod, "fused_attn"):
                mod.fused_attn = True
        self.token_dim = dim
        self.num_tokens = self.history

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Toggle activation checkpointing of the blocks (timm's contract)."""
        self.grad_checkpointing = enable

    def no_weight_decay(self) -> set[str]:
        """The position embedding and the MAP latent."""
        return {"pos_embed", "attn_pool.latent"}

    def forward(self, actions: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Encode action histories.

        Args:
            actions: ``(B, H, A)``, entry 0 = ``a_{t-1}``; padded entries (zeros) anywhere.
            mask: ``(B, H)`` bool, True = valid entry; None = all valid.

        Returns:
            ``dict(tokens (B, H, D)`` (after the final norm; padded rows are computed but
            meaningless), ``pooled (B, out_dim)``, ``mask (B, H)`` (the mask used))``.
        """
        if actions.ndim != 3 or tuple(actions.shape[1:]) != (self.history, self.action_dim):
            raise ShapeError(
                f"ActionHistoryEncoder: actions must be (B, H, A) = (B, {self.history}, "
                f"{self.action_dim}), got {tuple(actions.shape)}"
            )
        b = actions.shape[0]
        if mask is None:
            mask = torch.ones(b, self.history, dtype=torch.bool, device=actions.device)
        elif mask.shape != (b, self.history) or mask.dtype != torch.bool:
            raise ShapeError(
                f"ActionHistoryEncoder: mask must be bool (B, H) = ({b}, {self.history}), got "
                f"{mask.dtype} {tuple(mask.shape)}"
            )
        # an empty history (episode start) is encoded as its zero entries, all unmasked
        keys = mask | ~mask.any(dim=1, keepdim=True)
        attn_mask = keys.view(b, 1, 1, self.history)
        x = self.pos_drop(self.embed(actions.to(self.embed.weight.dtype)) + self.pos_embed)
        for blk in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(blk, x, attn_mask, use_reentrant=False)
            else:
                x = blk(x, attn_mask=attn_mask)
        tokens = self.norm(x)
        return dict(tokens=tokens, pooled=self.attn_pool(tokens, attn_mask=attn_mask), mask=mask)
