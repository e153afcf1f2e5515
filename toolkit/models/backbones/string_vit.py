"""CLAMP's image encoder: a ViT over tiled depth + XYZ views with Cayley-STRING attention.

CLAMP (Sec. III-B, III-D; Appendix C) renders five virtual views ``(D, X, Y, Z)`` of a merged
point cloud, tiles them into one ``224 x 1120 x 4`` image and runs a ViT-B/16 whose patch tokens
attend across views through STRING with each token at the mean world XYZ of the points it sees.
Pooling is multihead attention pooling (MAP).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from timm.layers import AttentionPoolLatent, PatchEmbed, trunc_normal_
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from toolkit.models.layers.init import init_vit_weights
from toolkit.models.layers.string_attention import STRING_MODES, StringBlock, StringMode
from toolkit.models.utils import PretrainedMixin
from toolkit.ops.render import patch_coordinates, tile_views
from toolkit.registry import BACKBONES
from toolkit.utils.errors import ShapeError

__all__ = ["ARCH_SETTINGS", "StringViT"]

#: Size presets. ``b16`` is the paper's (ViT-B/16, MLP 3072, 224 x 1120 tiled input = five
#: 224 x 224 views -> 14 x 70 = 980 tokens); ``s16`` (ViT-S/16) and ``tiny`` (five 64 x 64
#: views -> 4 x 20 = 80 tokens) are our reductions for CPU runs and tests.
ARCH_SETTINGS: dict[str, dict[str, Any]] = {
    "tiny": dict(embed_dim=64, depth=2, num_heads=2, mlp_ratio=4.0, patch_size=16, img_size=(64, 320)),
    "s16": dict(embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0, patch_size=16, img_size=(224, 1120)),
    "b16": dict(embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, patch_size=16, img_size=(224, 1120)),
}  # fmt: skip


@BACKBONES.register_module()
class StringViT(PretrainedMixin, nn.Module):
    """Multi-view ViT with Cayley-STRING 3D position encoding and MAP pooling (CLAMP's f).

    Input: ``views (B, V, 4, H, W)`` from :func:`toolkit.ops.render.render_views` (channels
    depth, X, Y, Z in metres) or the tiled ``(B, 4, H, V*W)`` (:func:`~toolkit.ops.render.
    tile_views`). Views are tiled first, so the token order is the tiled image's row-major
    patch grid (``H/p`` rows of ``V*W/p`` tokens), whichever form comes in. A 4-channel patch
    embedding (timm ``PatchEmbed``, a stride-``p`` conv; ``W`` divisible by ``p`` keeps every
    patch inside one view) gives the tokens; each token's 3D coordinate is the mean XYZ of the
    valid pixels of its patch (:func:`~toolkit.ops.render.patch_coordinates`); a patch with no
    valid pixel has ``coord_mask`` False and, by default, gets no rotation (``empty_patches``).
    Pre-LN timm blocks with :class:`~toolkit.models.layers.string_attention.StringAttention`,
    a final LayerNorm, then timm's ``AttentionPoolLatent`` (MAP: one learned latent query,
    attention, projection, ``x + MLP(LN(x))``). No class token; no absolute position embedding
    unless ``abs_pos_embed`` (the XYZ channels already carry absolute position).

    ``forward`` returns ``dict(tokens (B, T, D)`` after the final norm, unpooled (what the
    diffusion policy consumes), ``pooled (B, out_dim)``, ``coords (B, T, 3)``, ``coord_mask
    (B, T))``.

    Args:
        arch: ``"tiny"`` | ``"s16"`` | ``"b16"`` (default, the paper). The arguments below
            that default to None take the preset's value.
        embed_dim: Width D.
        depth: Blocks.
        num_heads: Heads.
        mlp_ratio: Block MLP ratio (paper: 3072 / 768 = 4).
        patch_size: Patch size p.
        img_size: ``(H, V*W)`` of the tiled input; only checked (and needed) with
            ``abs_pos_embed``; sets ``num_tokens``.
        string_mode: ``"string"`` (CLAMP) | ``"rope"`` (P = I) | ``"none"`` (the "w/o STRING"
            ablation). Default ``"string"``.
        min_wavelength, max_wavelength: Initial RoPE wavelength range in metres
            (default 0.02, 2.0; see :mod:`toolkit.models.layers.string_attention`).
        empty_patches: Coordinate of tokens whose patch shows no point: ``"no_rotation"``
            (default: ``r = 0``, no rotation) or ``"centroid"`` (the mean coordinate of the
            sample's valid patches, which keeps every logit translation-invariant).
        abs_pos_embed: Add a learned absolute position embedding (T, D) (e.g. for the "w/o
            STRING" ablation with some token-order information). Default False.
        out_dim: Width of ``pooled`` (MAP output projection). Default D.
        pool_num_heads: MAP heads. Default ``num_heads``.
        qkv_bias: Bias in qkv. Default True (timm / big_vision ViT).
        drop_path_rate: Max stochastic depth (linear over blocks). Default 0.
        fill_value: ``fill_value`` the views were rendered with (empty pixels). Default 0.
        grad_checkpointing: Activation checkpointing of the blocks. Default False.
    """

    def __init__(
        self,
        arch: Literal["tiny", "s16", "b16"] = "b16",
        embed_dim: int | None = None,
        depth: int | None = None,
        num_heads: int | None = None,
        mlp_ratio: float | None = None,
        patch_size: int | None = None,
        img_size: tuple[int, int] | None = None,
        string_mode: StringMode = "string",
        min_wavelength: float = 0.02,
        max_wavelength: float = 2.0,
        empty_patches: Literal["no_rotation", "centroid"] = "no_rotation",
        abs_pos_embed: bool = False,
        out_dim: int | None = None,
        pool_num_heads: int | None = None,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        fill_value: float = 0.0,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if arch not in ARCH_SETTINGS:
            raise ValueError(f"StringViT: unknown arch '{arch}'; expected {sorted(ARCH_SETTINGS)}")
        if string_mode not in STRING_MODES:
            raise ValueError(f"StringViT: string_mode must be one of {STRING_MODES}")
        if empty_patches not in ("no_rotation", "centroid"):
            raise ValueError("StringViT: empty_patches must be 'no_rotation' or 'centroid'")
        given = dict(
            embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
            patch_size=patch_size, img_size=img_size,
        )  # fmt: skip
        cfg = {k: (ARCH_SETTINGS[arch][k] if v is None else v) for k, v in given.items()}
        self.arch = arch
        self.embed_dim = dim = int(cfg["embed_dim"])
        self.patch_size = p = int(cfg["patch_size"])
        self.img_size = (int(cfg["img_size"][0]), int(cfg["img_size"][1]))
        self.grid_size = (self.img_size[0] // p, self.img_size[1] // p)
        self.string_mode = string_mode
        self.empty_patches = empty_patches
        self.fill_value = float(fill_value)
        self.grad_checkpointing = grad_checkpointing

        self.patch_embed = PatchEmbed(
            img_size=None, patch_size=p, in_chans=4, embed_dim=dim, strict_img_size=False
        )
        self.pos_embed = (
            nn.Parameter(torch.zeros(1, self.grid_size[0] * self.grid_size[1], dim))
            if abs_pos_embed
            else None
        )
        rates = torch.linspace(0, drop_path_rate, int(cfg["depth"])).tolist()
        self.blocks = nn.ModuleList(
            StringBlock(
                dim,
                int(cfg["num_heads"]),
                mode=string_mode,
                min_wavelength=min_wavelength,
                max_wavelength=max_wavelength,
                mlp_ratio=float(cfg["mlp_ratio"]),
                qkv_bias=qkv_bias,
                drop_path=rate,
                norm_layer=nn.LayerNorm,
            )
            for rate in rates
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.apply(init_vit_weights)  # before the pool: it initializes its own latent
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=0.02)
        self.out_dim = dim if out_dim is None else int(out_dim)
        self.attn_pool = AttentionPoolLatent(
            dim,
            out_features=self.out_dim,
            num_heads=pool_num_heads or int(cfg["num_heads"]),
            mlp_ratio=float(cfg["mlp_ratio"]),
            norm_layer=nn.LayerNorm,
        )
        self.token_dim = dim
        self.num_tokens = self.grid_size[0] * self.grid_size[1]

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Toggle activation checkpointing of the blocks (timm's contract)."""
        self.grad_checkpointing = enable

    def no_weight_decay(self) -> set[str]:
        """STRING parameters (decay would pull P to I and the frequencies to 0), the MAP
        latent and the position embedding."""
        names = {"attn_pool.latent"} | ({"pos_embed"} if self.pos_embed is not None else set())
        for name, _ in self.named_parameters():
            if name.endswith((".cayley_a", ".freqs")):
                names.add(name)
        return names

    # ------------------------------------------------------------------ inputs
    def tile(self, views: Tensor) -> Tensor:
        """``(B, V, 4, H, W)`` or ``(B, 4, H, V*W)`` -> the tiled ``(B, 4, H, V*W)``."""
        if views.ndim == 5 and views.shape[2] == 4:
            w = views.shape[-1]
            if w % self.patch_size:
                raise ShapeError(
                    f"StringViT: view width {w} must be divisible by patch_size "
                    f"{self.patch_size} (patches must not straddle views)"
                )
            return tile_views(views)
        if views.ndim == 4 and views.shape[1] == 4:
            return views
        raise ShapeError(
            f"StringViT: views must be (B, V, 4, H, W) or tiled (B, 4, H, V*W), got "
            f"{tuple(views.shape)}"
        )

    def patch_coords(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """Tiled ``(B, 4, H, W)`` -> ``coords (B, T, 3)`` float32, ``coord_mask (B, T)`` bool."""
        with torch.no_grad():
            coords, valid = patch_coordinates(image.float(), self.patch_size, self.fill_value)
        return coords.flatten(1, 2), valid.flatten(1, 2)

    def _fill_empty(self, coords: Tensor, coord_mask: Tensor) -> tuple[Tensor, Tensor]:
        if self.empty_patches == "no_rotation":
            return coords, coord_mask
        w = coord_mask.unsqueeze(-1).to(coords.dtype)
        centroid = (coords * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1.0)
        return torch.where(coord_mask.unsqueeze(-1), coords, centroid), torch.ones_like(coord_mask)

    # ------------------------------------------------------------------ forward
    def forward_features(
        self, views: Tensor, coords: Tensor | None = None, coord_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Tokens after the final norm ``(B, T, D)``, ``coords (B, T, 3)``, ``coord_mask``."""
        image = self.tile(views)
        b, _, h, w = image.shape
        if h % self.patch_size or w % self.patch_size:
            raise ShapeError(
                f"StringViT: image {h}x{w} is not divisible by patch_size {self.patch_size}"
            )
        t = (h // self.patch_size) * (w // self.patch_size)
        if coords is None:
            coords, auto_mask = self.patch_coords(image)
            coord_mask = auto_mask if coord_mask is None else coord_mask
        elif coord_mask is None:
            coord_mask = torch.ones(coords.shape[:2], dtype=torch.bool, device=coords.device)
        if coords.shape != (b, t, 3) or coord_mask.shape != (b, t):
            raise ShapeError(
                f"StringViT: coords / coord_mask must be (B, T, 3) / (B, T) with T={t} tokens, "
                f"got {tuple(coords.shape)} / {tuple(coord_mask.shape)}"
            )
        coords = coords.to(image.device, torch.float32)
        coord_mask = coord_mask.to(image.device, torch.bool)
        x = self.patch_embed(image.to(self.patch_embed.proj.weight.dtype))  # e.g. float64 views
        if self.pos_embed is not None:
            if x.shape[1] != self.pos_embed.shape[1]:
                raise ShapeError(
                    f"StringViT: abs_pos_embed was built for img_size {self.img_size} "
                    f"({self.pos_embed.shape[1]} tokens), got {h}x{w} ({x.shape[1]} tokens)"
                )
            x = x + self.pos_embed
        rc, rm = self._fill_empty(coords, coord_mask)
        pe = None if self.string_mode == "none" else rc
        for blk in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(blk, x, pe, rm, use_reentrant=False)
            else:
                x = blk(x, pe, rm)
        return self.norm(x), coords, coord_mask

    def forward(
        self, views: Tensor, coords: Tensor | None = None, coord_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Encode views.

        Args:
            views: ``(B, V, 4, H, W)`` or tiled ``(B, 4, H, V*W)``; channels (depth, X, Y, Z).
            coords: Optional precomputed token coordinates ``(B, T, 3)`` (default: per-patch
                mean XYZ of the valid pixels).
            coord_mask: Optional ``(B, T)`` bool (default: patches with a valid pixel, or all
                True when ``coords`` is given).

        Returns:
            ``dict(tokens (B, T, D), pooled (B, out_dim), coords (B, T, 3), coord_mask (B, T))``.
        """
        tokens, coords, coord_mask = self.forward_features(views, coords, coord_mask)
        return dict(
            tokens=tokens, pooled=self.attn_pool(tokens), coords=coords, coord_mask=coord_mask
        )
