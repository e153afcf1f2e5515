"""Point-MAE (Pang et al., ECCV 2022): masked autoencoding of point-cloud patches.

The backbone of CLAR: patches from FPS centers + kNN, a mini-PointNet tokenizer, a pre-LN
Transformer encoder with a center positional MLP added before every block, and (for
pretraining) a Transformer decoder that predicts the masked patches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from toolkit.models.layers import MiniPointNet, check_point_mask
from toolkit.models.layers.init import init_vit_weights
from toolkit.models.utils import PretrainedMixin
from toolkit.ops.neighbors import sample_and_group
from toolkit.registry import BACKBONES

__all__ = ["PointMAE", "PointMAEDecoder", "random_token_mask", "convert_point_mae_official"]

#: Size presets. ``base`` is the paper / Pang-Yatian/Point-MAE ``cfgs/pretrain.yaml`` model;
#: ``small`` and ``tiny`` are our own reductions (UNVERIFIED by any paper) for quick runs and
#: CPU tests.
ARCH_SETTINGS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        embed_dim=96, depth=2, num_heads=3, decoder_depth=1, decoder_num_heads=3,
        num_groups=32, group_size=16, tokenizer_dims=(32, 64, 128),
    ),
    "small": dict(
        embed_dim=192, depth=6, num_heads=3, decoder_depth=2, decoder_num_heads=3,
        num_groups=64, group_size=32, tokenizer_dims=(64, 128, 256),
    ),
    "base": dict(
        embed_dim=384, depth=12, num_heads=6, decoder_depth=4, decoder_num_heads=6,
        num_groups=64, group_size=32, tokenizer_dims=(128, 256, 512),
    ),
}  # fmt: skip


def _pos_mlp(dim: int, hidden: int = 128) -> nn.Sequential:
    """Center positional embedding ``Linear 3 -> 128, GELU, Linear 128 -> dim``."""
    return nn.Sequential(nn.Linear(3, hidden), nn.GELU(), nn.Linear(hidden, dim))


def _blocks(
    dim: int, depth: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop_path_rate: float
) -> nn.ModuleList:
    """Pre-LN ViT blocks (timm ``Block``) with drop path rising linearly 0 -> rate."""
    rates = torch.linspace(0, drop_path_rate, depth).tolist() if depth > 0 else []
    return nn.ModuleList(
        Block(
            dim=dim,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path=rate,
            norm_layer=nn.LayerNorm,  # torch default eps 1e-5, as the reference
            act_layer=nn.GELU,
        )
        for rate in rates
    )


def _gather(x: Tensor, idx: Tensor) -> Tensor:
    """``x`` (B, G, *) gathered along dim 1 by ``idx`` (B, M) -> (B, M, *)."""
    view = idx.view(*idx.shape, *([1] * (x.dim() - 2)))
    return torch.gather(x, 1, view.expand(-1, -1, *x.shape[2:]))


def random_token_mask(
    batch_size: int,
    num_tokens: int,
    ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Per-sample random mask with exactly ``int(ratio * num_tokens)`` True (= masked) entries.

    Matches Point-MAE's ``_mask_center_rand`` (count ``int(ratio * G)``), but draws from
    ``generator`` (on its own device) so a fixed seed gives the same mask on any device.

    Returns:
        (batch_size, num_tokens) bool, True = masked.
    """
    num_mask = int(ratio * num_tokens)
    gen_device = generator.device if generator is not None else device
    noise = torch.rand(batch_size, num_tokens, generator=generator, device=gen_device)
    ids = noise.argsort(dim=1)[:, :num_mask].to(device)
    mask = torch.zeros(batch_size, num_tokens, dtype=torch.bool, device=device)
    return mask.scatter_(1, ids, True)


def _run_blocks(blocks: nn.ModuleList, x: Tensor, pos: Tensor, ckpt: bool) -> Tensor:
    """``x = block(x + pos)`` for every block (Point-MAE adds the positions before each)."""
    for blk in blocks:
        if ckpt and torch.is_grad_enabled():
            x = checkpoint(blk, x + pos, use_reentrant=False)
        else:
            x = blk(x + pos)
    return x


class PointMAEDecoder(nn.Module):
    """Point-MAE's reconstruction decoder: mask tokens + Transformer + per-patch point head.

    Input ``[visible tokens ; mask tokens]`` with the decoder's own center positional MLP added
    before every block; the outputs of the mask tokens go through LayerNorm and a
    ``Conv1d(dim, 3 * group_size, 1)`` head giving each masked patch's points relative to its
    center. Init as the reference: xavier-uniform Linear / unit LayerNorm in the blocks and the
    final norm, ``trunc_normal(0.02)`` mask token, PyTorch defaults for the positional MLP and
    the head (the reference never re-initializes those two).

    Args:
        embed_dim: Token width (equal to the encoder's in Point-MAE).
        depth: Blocks. Default 4.
        num_heads: Attention heads. Default 6.
        group_size: Points predicted per patch. Default 32.
        mlp_ratio: MLP hidden ratio. Default 4.0.
        qkv_bias: Bias in the qkv projection. Default False.
        drop_path_rate: Max drop-path rate (linear over depth). Default 0.1.
    """

    def __init__(
        self,
        embed_dim: int = 384,
        depth: int = 4,
        num_heads: int = 6,
        group_size: int = 32,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        drop_path_rate: float = 0.1,
    ) -> None:
        super().__init__()
        self.group_size = group_size
        self.grad_checkpointing = False
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = _pos_mlp(embed_dim)
        self.blocks = _blocks(embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate)
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Conv1d(embed_dim, 3 * group_size, 1)
        self.blocks.apply(self._init_xavier)
        self.norm.apply(self._init_xavier)
        trunc_normal_(self.mask_token, std=0.02)

    @staticmethod
    def _init_xavier(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, visible: Tensor, visible_centers: Tensor, masked_centers: Tensor) -> Tensor:
        """Predict masked patches.

        Args:
            visible: (B, V, D) encoded visible tokens.
            visible_centers: (B, V, 3) their centers.
            masked_centers: (B, M, 3) centers of the masked patches.

        Returns:
            (B, M, group_size, 3) predicted points relative to each masked center.
        """
        b, m = masked_centers.shape[:2]
        x = torch.cat([visible, self.mask_token.expand(b, m, -1)], dim=1)
        pos = self.pos_embed(torch.cat([visible_centers, masked_centers], dim=1))
        x = _run_blocks(self.blocks, x, pos, self.grad_checkpointing)
        x = self.norm(x[:, -m:])
        return self.head(x.transpose(1, 2)).transpose(1, 2).reshape(b, m, self.group_size, 3)


@BACKBONES.register_module()
class PointMAE(PretrainedMixin, nn.Module):
    """Point-MAE encoder (+ optional MAE decoder): Pang et al., "Masked Autoencoders for Point
    Cloud Self-supervised Learning", ECCV 2022; the backbone CLAR pretrains.

    Reference: Pang-Yatian/Point-MAE ``models/Point_MAE.py`` (``Group``, ``Encoder``,
    ``MaskTransformer``, ``Point_MAE``) and ``cfgs/pretrain.yaml``. Pipeline: FPS picks
    ``num_groups`` centers (started at point 0), kNN gathers ``group_size`` points per center,
    relative to it (the ``neighborhoods``); a mini-PointNet embeds each patch; a center MLP
    ``3 -> 128 -> D`` (GELU) is added before every pre-LN block; final LayerNorm. Init as the
    reference: ``trunc_normal(0.02)`` for every Linear/Conv1d of the encoder, unit LayerNorms.

    Two paths:

    - ``forward(points, mask=None)``: encoder over ALL tokens (what policies and CLAR's
      alignment use). Returns ``tokens`` (B, G, D), ``pooled`` (B, ``out_dim``), ``centers``
      (B, G, 3), ``neighborhoods`` (B, G, K, 3).
    - ``forward_mae(points, mask=None, generator=None)``: Point-MAE pretraining. A random
      ``mask_ratio`` of the patches per sample is hidden; the encoder sees the visible ones; the
      decoder predicts the masked ones. Returns ``pred`` / ``target`` (B, M, K, 3) in each
      patch's local frame, ``mask`` (B, G; True = masked patch), ``centers``, ``neighborhoods``,
      ``visible_tokens`` (B, V, D), ``visible_idx`` (B, V), ``masked_idx`` (B, M). The loss
      (L2 Chamfer per patch) lives in the objectives; :meth:`group` lets a pretrainer group once
      and run both paths through :meth:`encode`.

    Token order: visible then masked, each in ascending patch index, as in the reference.

    Pooling (``pool``): ``"mean_max"`` (default) concatenates the token mean and max, so
    ``out_dim = 2 * embed_dim`` (768 for ``base``, the width of Point-MAE's fine-tuning feature
    ``[cls, max]`` and of Lift3D's policy-head input); ``"max"`` / ``"mean"`` give
    ``out_dim = embed_dim``.

    Point mask: padded points (``mask`` False) are never chosen as centers or neighbours, so a
    padded cloud gives the output of its valid points alone. Grouping is
    :func:`toolkit.ops.neighbors.sample_and_group`: a cloud with fewer than ``num_groups`` valid
    points repeats its first center, one with fewer than ``group_size`` repeats the nearest
    neighbour; ``N`` itself must be at least ``group_size``.

    Args:
        arch: Size preset: ``"tiny"`` (96-d, 2+1 blocks, 32 x 16 patches; tests / CPU demos),
            ``"small"`` (192-d, 6+2 blocks, 64 x 32) or ``"base"`` (the paper: 384-d, 12 blocks,
            6 heads, decoder 4 blocks, 64 x 32). Default ``"base"``. The arguments below
            default to None = take the preset's value.
        embed_dim: Token width D.
        depth: Encoder blocks.
        num_heads: Encoder heads.
        decoder_depth: Decoder blocks.
        decoder_num_heads: Decoder heads.
        num_groups: Patches G (FPS centers).
        group_size: Points per patch K (kNN).
        tokenizer_dims: Mini-PointNet ``(hidden, feat, fuse)`` widths ((128, 256, 512) in base).
        mlp_ratio: Block MLP ratio. Default 4.0.
        qkv_bias: Bias in qkv. Default False.
        drop_path_rate: Max drop-path rate of the encoder and decoder. Default 0.1.
        mask_ratio: Fraction of patches masked in ``forward_mae``. Default 0.6 (CLAR: 0.6-0.8).
        pool: ``"mean_max"`` | ``"max"`` | ``"mean"``. Default ``"mean_max"``.
        with_decoder: Build the MAE decoder. Default True; policies that only encode should
            pass False (no unused parameters). :meth:`load_pretrained` then drops ``decoder.*``.
        grad_checkpointing: Activation checkpointing in the encoder/decoder blocks. Default
            False (see :meth:`set_grad_checkpointing`).
        fps_backend: Backend for :func:`toolkit.ops.sampling.farthest_point_sample`.
    """

    def __init__(
        self,
        arch: Literal["tiny", "small", "base"] = "base",
        embed_dim: int | None = None,
        depth: int | None = None,
        num_heads: int | None = None,
        decoder_depth: int | None = None,
        decoder_num_heads: int | None = None,
        num_groups: int | None = None,
        group_size: int | None = None,
        tokenizer_dims: tuple[int, int, int] | None = None,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        drop_path_rate: float = 0.1,
        mask_ratio: float = 0.6,
        pool: Literal["mean_max", "max", "mean"] = "mean_max",
        with_decoder: bool = True,
        grad_checkpointing: bool = False,
        fps_backend: str = "torch",
    ) -> None:
        super().__init__()
        if arch not in ARCH_SETTINGS:
            raise ValueError(f"unknown arch '{arch}'; expected one of {sorted(ARCH_SETTINGS)}")
        given = dict(
            embed_dim=embed_dim, depth=depth, num_heads=num_heads, decoder_depth=decoder_depth,
            decoder_num_heads=decoder_num_heads, num_groups=num_groups, group_size=group_size,
            tokenizer_dims=tokenizer_dims,
        )  # fmt: skip
        cfg = {k: (ARCH_SETTINGS[arch][k] if v is None else v) for k, v in given.items()}
        if pool not in ("mean_max", "max", "mean"):
            raise ValueError(f"pool must be 'mean_max', 'max' or 'mean'; got '{pool}'")
        self._check_ratio(mask_ratio, cfg["num_groups"])
        self.arch = arch
        self.embed_dim = dim = int(cfg["embed_dim"])
        self.num_groups = int(cfg["num_groups"])
        self.group_size = int(cfg["group_size"])
        self.mask_ratio = mask_ratio
        self.pool = pool
        self.fps_backend = fps_backend
        self.grad_checkpointing = grad_checkpointing

        hidden, feat, fuse = cfg["tokenizer_dims"]
        self.group_embed = MiniPointNet(dim, hidden_dim=hidden, feat_dim=feat, fuse_dim=fuse)
        self.pos_embed = _pos_mlp(dim)
        self.blocks = _blocks(
            dim, cfg["depth"], cfg["num_heads"], mlp_ratio, qkv_bias, drop_path_rate
        )
        self.norm = nn.LayerNorm(dim)
        self.apply(init_vit_weights)  # before the decoder exists: it has its own init

        self.decoder: PointMAEDecoder | None = None
        if with_decoder:
            self.decoder = PointMAEDecoder(
                dim, cfg["decoder_depth"], cfg["decoder_num_heads"], self.group_size,
                mlp_ratio, qkv_bias, drop_path_rate,
            )  # fmt: skip
        self.set_grad_checkpointing(grad_checkpointing)

        self.token_dim = dim
        self.num_tokens = self.num_groups
        self.out_dim = 2 * dim if pool == "mean_max" else dim

    # ------------------------------------------------------------------ setup helpers
    @staticmethod
    def _check_ratio(ratio: float, num_groups: int) -> None:
        if not 0.0 <= ratio < 1.0 or int(ratio * num_groups) >= num_groups:
            raise ValueError(
                f"mask_ratio must be in [0, 1) and leave a visible patch; got {ratio} "
                f"with {num_groups} patches"
            )

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Toggle activation checkpointing of the Transformer blocks (timm's contract)."""
        self.grad_checkpointing = enable
        if self.decoder is not None:
            self.decoder.grad_checkpointing = enable

    def no_weight_decay(self) -> set[str]:
        """Parameter names to exclude from weight decay (timm's contract)."""
        return {"decoder.mask_token"} if self.decoder is not None else set()

    # ------------------------------------------------------------------ building blocks
    def group(self, points: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Split clouds into patches.

        Args:
            points: (B, N, 3).
            mask: (B, N) bool valid points, or None.

        Returns:
            ``(neighborhoods (B, G, K, 3) relative to their centers, centers (B, G, 3))``.
        """
        check_point_mask(points, mask)
        if points.shape[1] < self.group_size:
            raise ValueError(
                f"PointMAE needs N >= group_size = {self.group_size} points; got N={points.shape[1]}"
            )
        centers, neighborhoods, _ = sample_and_group(
            points, self.num_groups, self.group_size, fps_backend=self.fps_backend, mask=mask
        )
        return neighborhoods, centers

    def encode(self, neighborhoods: Tensor, centers: Tensor, keep: Tensor | None = None) -> Tensor:
        """Tokenize patches and run the encoder.

        Args:
            neighborhoods: (B, G, K, 3) patches relative to their centers.
            centers: (B, G, 3).
            keep: (B, V) indices of the patches to encode (visible ones), or None for all.

        Returns:
            (B, V or G, D) encoded tokens (after the final LayerNorm).
        """
        if keep is not None:
            neighborhoods, centers = _gather(neighborhoods, keep), _gather(centers, keep)
        x = self.group_embed(neighborhoods)
        pos = self.pos_embed(centers)
        x = _run_blocks(self.blocks, x, pos, self.grad_checkpointing)
        return self.norm(x)

    def pool_tokens(self, tokens: Tensor) -> Tensor:
        """(B, T, D) -> (B, out_dim) according to ``pool``."""
        if self.pool == "max":
            return tokens.amax(dim=1)
        if self.pool == "mean":
            return tokens.mean(dim=1)
        return torch.cat([tokens.mean(dim=1), tokens.amax(dim=1)], dim=-1)

    # ------------------------------------------------------------------ paths
    def forward(self, points: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Encode all patches: ``tokens`` (B, G, D), ``pooled``, ``centers``, ``neighborhoods``."""
        neighborhoods, centers = self.group(points, mask)
        tokens = self.encode(neighborhoods, centers)
        return dict(
            tokens=tokens,
            pooled=self.pool_tokens(tokens),
            centers=centers,
            neighborhoods=neighborhoods,
        )

    def forward_mae(
        self,
        points: Tensor,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
        mask_ratio: float | None = None,
        token_mask: Tensor | None = None,
        groups: tuple[Tensor, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Masked-autoencoding pass (Point-MAE pretraining).

        Args:
            points: (B, N, 3).
            mask: (B, N) bool valid points, or None.
            generator: Draws the patch mask (reproducible masks). None: global RNG.
            mask_ratio: Overrides ``self.mask_ratio`` for this call.
            token_mask: (B, G) bool patch mask to use instead of drawing one (True = masked);
                every row must mask the same number of patches.
            groups: ``(neighborhoods, centers)`` from :meth:`group` to reuse (a pretrainer that
                also encodes all patches groups once); None: group ``points`` here.

        Returns:
            dict with ``pred`` and ``target`` (B, M, K, 3) (local frames), ``mask`` (B, G),
            ``centers`` (B, G, 3), ``neighborhoods`` (B, G, K, 3), ``visible_tokens``
            (B, V, D), ``visible_idx`` (B, V), ``masked_idx`` (B, M).
        """
        if self.decoder is None:
            raise RuntimeError("forward_mae needs the decoder: build PointMAE(with_decoder=True)")
        neighborhoods, centers = self.group(points, mask) if groups is None else groups
        b, g = centers.shape[:2]
        if token_mask is None:
            ratio = self.mask_ratio if mask_ratio is None else mask_ratio
            self._check_ratio(ratio, g)
            token_mask = random_token_mask(b, g, ratio, generator, device=centers.device)
        num_mask = int(token_mask[0].sum())
        if tuple(token_mask.shape) != (b, g) or bool((token_mask.sum(1) != num_mask).any()):
            raise ValueError("token_mask must be (B, G) with the same masked count in every row")
        if num_mask in (0, g):
            raise ValueError(
                f"token_mask must leave visible and masked patches; masks {num_mask}/{g}"
            )
        order = torch.argsort(token_mask.to(torch.uint8), dim=1, stable=True)
        visible_idx, masked_idx = order[:, : g - num_mask], order[:, g - num_mask :]
        visible = self.encode(neighborhoods, centers, keep=visible_idx)
        pred = self.decoder(visible, _gather(centers, visible_idx), _gather(centers, masked_idx))
        return dict(
            pred=pred,
            target=_gather(neighborhoods, masked_idx),
            mask=token_mask,
            centers=centers,
            neighborhoods=neighborhoods,
            visible_tokens=visible,
            visible_idx=visible_idx,
            masked_idx=masked_idx,
        )

    # ------------------------------------------------------------------ checkpoints
    def convert_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Accept upstream Point-MAE checkpoints and drop decoder weights if we have none."""
        if any(k.startswith("MAE_encoder.") for k in state):
            state = convert_point_mae_official(state)
        if self.decoder is None:
            state = {k: v for k, v in state.items() if not k.startswith("decoder.")}
        return state


#: Upstream (Pang-Yatian/Point-MAE ``Point_MAE``) key prefixes -> ours.
_OFFICIAL_PREFIXES = (
    ("MAE_encoder.encoder.", "group_embed."),
    ("MAE_encoder.pos_embed.", "pos_embed."),
    ("MAE_encoder.blocks.blocks.", "blocks."),
    ("MAE_encoder.norm.", "norm."),
    ("mask_token", "decoder.mask_token"),
    ("decoder_pos_embed.", "decoder.pos_embed."),
    ("MAE_decoder.blocks.", "decoder.blocks."),
    ("MAE_decoder.norm.", "decoder.norm."),
    ("increase_dim.0.", "decoder.head."),
)


def convert_point_mae_official(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename an upstream Point-MAE pretraining state_dict (``base_model``) to :class:`PointMAE`.

    Block internals (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1/fc2``) and the
    tokenizer's ``first_conv`` / ``second_conv`` already share names. Keys that match no prefix
    are kept unchanged (so a strict load reports them).
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        new = key
        for old_prefix, new_prefix in _OFFICIAL_PREFIXES:
            if key.startswith(old_prefix):
                new = new_prefix + key[len(old_prefix) :]
                break
        out[new] = value
    return out
