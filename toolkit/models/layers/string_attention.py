"""Cayley-STRING attention: learnable 3D relative position encoding (Schenck et al. 2025).

STRING (arXiv 2502.02562) generalizes RoPE to ``R(r) = P RoPE(r) P^T`` with a learned orthogonal
``P`` per head. The left ``P`` cancels in ``q . k``, so it is enough to rotate
``q' = RoPE(r_i) P q`` and ``k' = RoPE(r_j) P k``; then ``q' . k' = (Pq)^T RoPE(r_j - r_i) (Pk)``
depends on the coordinates only through ``r_j - r_i`` (translation invariance). CLAMP (Sec.
III-B, III-D) feeds each ViT patch token the mean world XYZ of the points it sees.

Our choices for what the papers leave open (see docs/clamp_encoders.md):

- **Cayley** ``P = (I - S)(I + S)^{-1} = solve(I + S, I - S)`` (the two factors commute), with
  ``S = A - A^T`` and ``A`` initialized to 0, so ``P = I`` (plain 3D RoPE) at init. ``P`` is
  computed per head once per forward in float32 (autocast off): ``I + S`` is always invertible
  because the eigenvalues of an antisymmetric ``S`` are imaginary.
- **RoPE-Mixed** over 3D: pair ``n`` of the ``d/2`` rotation pairs turns by
  ``phi_n(r) = F[:, n] . r``, ``F`` in ``R^{3 x d/2}`` per head, learnable. Init: wavelengths
  ``lambda_n`` log-spaced from ``min_wavelength`` (2 cm) to ``max_wavelength`` (2 m), i.e. from
  a fraction of a 16-pixel patch's footprint to the size of a bimanual table-top workspace,
  along random unit directions ``u_n`` per head: ``F[:, n] = 2 pi / lambda_n u_n``.
- **Pair layout**: pair ``n`` rotates dims ``(2n, 2n + 1)`` (the paper's Lemma 3.1 blocks),
  applied as one complex multiply (``view_as_complex``; 1.8x faster on CPU than the
  real-arithmetic "rotate-half" form). Any layout is equivalent up to a fixed permutation,
  which the learned ``P`` can absorb.
- **Folding**: without qk-norm, ``P`` is folded into the q and k rows of the qkv projection
  weight (``W_q' = P W_q``: ``H d^2 C`` flops per forward, independent of the token count), so
  STRING costs the same per token as RoPE. With qk-norm, ``P`` is applied after the norm.
- **Tokens without coordinates** (``coord_mask`` False; e.g. empty patches) get ``r = 0``: no
  rotation (``P`` still applies: it is a basis change of the head). The logit between two such
  tokens is the standard one; between one of them and a token at ``r`` it depends on ``r``
  itself, so translation invariance holds among tokens that have coordinates.
- The rotation angles and the rotation are computed in float32 (angles reach hundreds of
  radians; bf16 would lose them), then cast back to the activation dtype for
  ``F.scaled_dot_product_attention`` (fused kernels still apply).

Modes: ``"string"`` (learned ``P`` and ``F``), ``"rope"`` (``P = I``, learned 3D RoPE-Mixed),
``"none"`` (no position encoding, no extra parameters: exactly timm's attention).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Attention, Block
from torch import Tensor, nn

from toolkit.utils.errors import ShapeError

__all__ = [
    "STRING_MODES",
    "StringAttention",
    "StringBlock",
    "apply_rope",
    "cayley",
    "init_rope_frequencies",
    "rope_angles",
    "rope_rotors",
]

StringMode = Literal["string", "rope", "none"]
STRING_MODES: tuple[str, ...] = ("string", "rope", "none")


def cayley(a: Tensor) -> Tensor:
    """Cayley map of ``S = A - A^T``: ``(..., d, d)`` -> orthogonal ``P = (I - S)(I + S)^{-1}``.

    Computed in float32 with autocast off (one batched ``torch.linalg.solve``); ``det P = +1``.
    """
    with torch.autocast(a.device.type, enabled=False):
        a = a.float()
        s = a - a.transpose(-1, -2)
        eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
        return torch.linalg.solve(eye + s, eye - s)


def init_rope_frequencies(
    num_heads: int,
    head_dim: int,
    min_wavelength: float = 0.02,
    max_wavelength: float = 2.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """RoPE-Mixed 3D frequencies ``(num_heads, 3, head_dim / 2)`` in radians per metre.

    Pair ``n`` gets wavelength ``lambda_n`` log-spaced in ``[min_wavelength, max_wavelength]``
    (same set for every head) and a random unit direction per head, so each head sees every
    scale along different directions.
    """
    if head_dim % 2:
        raise ValueError(f"STRING/RoPE needs an even head_dim, got {head_dim}")
    if not 0 < min_wavelength <= max_wavelength:
        raise ValueError(
            f"need 0 < min_wavelength <= max_wavelength, got {min_wavelength}, {max_wavelength}"
        )
    half = head_dim // 2
    wavelengths = torch.logspace(math.log10(min_wavelength), math.log10(max_wavelength), half)
    dirs = torch.randn(num_heads, 3, half, generator=generator)
    dirs = dirs / dirs.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return dirs * (2 * math.pi / wavelengths)


def rope_angles(coords: Tensor, freqs: Tensor, coord_mask: Tensor | None = None) -> Tensor:
    """Rotation angles ``phi = r . F``: coords ``(B, N, 3)``, freqs ``(H, 3, d/2)`` ->
    ``(B, N, H, d/2)`` float32; tokens with ``coord_mask`` False get 0 (no rotation)."""
    with torch.autocast(coords.device.type, enabled=False):
        r = coords.float()
        if coord_mask is not None:
            r = r.masked_fill(~coord_mask.unsqueeze(-1), 0.0)
        return torch.einsum("bnk,hkf->bnhf", r, freqs.float())


def rope_rotors(phi: Tensor) -> Tensor:
    """Angles ``(..., d/2)`` float32 -> unit complex numbers ``exp(i phi)`` (complex64)."""
    return torch.complex(phi.cos(), phi.sin())  # faster than torch.polar here, fwd and bwd


def apply_rope(x: Tensor, rotors: Tensor) -> Tensor:
    """Rotate pairs ``(2n, 2n + 1)`` of ``x (..., d)`` by ``rotors (..., d/2)`` (complex,
    broadcast): pair ``n`` as the complex number ``x_2n + i x_2n+1`` times ``exp(i phi_n)``.
    One complex multiply (about 2x faster on CPU than the real-arithmetic form); computed in
    float32, returned in ``x.dtype``."""
    xf = x.float()
    xc = torch.view_as_complex(xf.reshape(*xf.shape[:-1], -1, 2))
    return torch.view_as_real(xc * rotors).flatten(-2).to(x.dtype)


def _check_coords(coords: Tensor, coord_mask: Tensor | None, b: int, n: int) -> None:
    if coords.shape != (b, n, 3):
        raise ShapeError(
            f"StringAttention: coords must be (B, N, 3) = {(b, n, 3)}, got {tuple(coords.shape)}"
        )
    if coord_mask is not None and (coord_mask.shape != (b, n) or coord_mask.dtype != torch.bool):
        raise ShapeError(
            f"StringAttention: coord_mask must be bool (B, N) = {(b, n)}, got "
            f"{coord_mask.dtype} {tuple(coord_mask.shape)}"
        )


class StringAttention(Attention):
    """timm ``Attention`` with Cayley-STRING / 3D RoPE-Mixed / no position encoding.

    Same parameters and names as timm's ``Attention`` (``qkv``, ``proj``, ...) plus, per mode:
    ``"string"``: ``cayley_a`` (H, d, d) (``S = A - A^T``) and ``freqs`` (H, 3, d/2);
    ``"rope"``: ``freqs``; ``"none"``: nothing. So a timm ``Attention`` state_dict loads with
    ``strict=False`` and the result equals timm's attention wherever all coordinates are 0.

    Args:
        dim: Token width C.
        num_heads: Heads H (head width ``d = C / H``, even).
        mode: ``"string"`` | ``"rope"`` | ``"none"``. Default ``"string"``.
        min_wavelength: Shortest initial RoPE wavelength in coordinate units (metres).
            Default 0.02.
        max_wavelength: Longest initial wavelength. Default 2.0.
        learnable_frequencies: ``freqs`` is a parameter (True) or a fixed buffer.
        **kwargs: timm ``Attention`` arguments (``qkv_bias``, ``qk_norm``, ``proj_bias``,
            ``attn_drop``, ``proj_drop``, ``norm_layer``, ...).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        mode: StringMode = "string",
        min_wavelength: float = 0.02,
        max_wavelength: float = 2.0,
        learnable_frequencies: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(dim, num_heads=num_heads, **kwargs)
        if mode not in STRING_MODES:
            raise ValueError(f"StringAttention: mode must be one of {STRING_MODES}, got '{mode}'")
        if kwargs.get("gated"):
            raise ValueError("StringAttention: gated attention is not supported")
        self.mode = mode
        h, d = self.num_heads, self.head_dim
        if mode != "none":
            freqs = init_rope_frequencies(h, d, min_wavelength, max_wavelength)
            if learnable_frequencies:
                self.freqs = nn.Parameter(freqs)
            else:
                self.register_buffer("freqs", freqs)
        if mode == "string":
            self.cayley_a = nn.Parameter(torch.zeros(h, d, d))
        # P can be folded into the projection only when nothing sits between them
        self._fold = isinstance(self.q_norm, nn.Identity) and isinstance(self.k_norm, nn.Identity)

    def orthogonal(self) -> Tensor | None:
        """The per-head ``P`` (H, d, d) float32, or None when ``P = I`` (modes rope / none)."""
        return cayley(self.cayley_a) if self.mode == "string" else None

    def folded_qkv(self, p: Tensor) -> tuple[Tensor, Tensor | None]:
        """qkv weight ``(3 H d, C)`` and bias with ``P`` (H, d, d) folded into the q and k
        rows: ``W_q' = P W_q``, ``b_q' = P b_q`` (same for k). float32, autocast off."""
        h, d = self.num_heads, self.head_dim
        weight, bias = self.qkv.weight, self.qkv.bias
        with torch.autocast(weight.device.type, enabled=False):
            w = weight.float().view(3, h, d, -1)
            wqk = torch.einsum("hij,shjc->shic", p, w[:2])
            weight = torch.cat([wqk, w[2:]]).view_as(weight).to(weight.dtype)
            if bias is not None:
                bb = bias.float().view(3, h, d)
                bqk = torch.einsum("hij,shj->shi", p, bb[:2])
                bias = torch.cat([bqk, bb[2:]]).view_as(bias).to(bias.dtype)
        return weight, bias

    def _project(self, x: Tensor, p: Tensor | None) -> Tensor:
        """``x (B, N, C)`` -> qkv ``(B, N, 3, H, d)``, with ``P`` folded in when it can be."""
        b, n, _ = x.shape
        if p is not None and self._fold:
            weight, bias = self.folded_qkv(p)
        else:
            weight, bias = self.qkv.weight, self.qkv.bias
        return F.linear(x, weight, bias).view(b, n, 3, self.num_heads, self.head_dim)

    def rotate_qk(
        self, x: Tensor, coords: Tensor | None = None, coord_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Position-encoded ``q', k'`` and ``v``, each ``(B, H, N, d)``, for ``x (B, N, C)``.

        Args:
            x: Tokens.
            coords: ``(B, N, 3)`` token coordinates (metres), or None (no rotation).
            coord_mask: ``(B, N)`` bool, False = token without coordinates (``r = 0``).
        """
        b, n, _ = x.shape
        if coords is not None:
            _check_coords(coords, coord_mask, b, n)
        p = self.orthogonal()
        qkv = self._project(x, p)  # (B, N, 3, H, d)
        rotate = self.mode != "none" and coords is not None
        if rotate:  # (B, N, 1, H, d/2) complex
            rot = rope_rotors(rope_angles(coords, self.freqs, coord_mask).unsqueeze(2))
        if self._fold:  # rotate q and k together, in the projection's layout (no extra copy)
            qk = apply_rope(qkv[:, :, :2], rot) if rotate else qkv[:, :, :2]
            q, k = qk.transpose(1, 3).unbind(2)  # (B, H, N, d) each
            return q, k, qkv[:, :, 2].transpose(1, 2)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if p is not None:
            pt = p.transpose(-1, -2).to(q.dtype)
            q, k = q @ pt, k @ pt  # (P q_n)^T = q_n^T P^T for every token n
        if rotate:
            rot = rot.squeeze(2).transpose(1, 2)  # (B, H, N, d/2)
            q, k = apply_rope(q, rot), apply_rope(k, rot)
        return q, k, v

    def attention_logits(
        self, x: Tensor, coords: Tensor | None = None, coord_mask: Tensor | None = None
    ) -> Tensor:
        """Pre-softmax logits ``scale q'_i . k'_j``: ``(B, H, N, N)`` (for tests and analysis)."""
        q, k, _ = self.rotate_qk(x, coords, coord_mask)
        return (q @ k.transpose(-1, -2)) * self.scale

    def forward(
        self,
        x: Tensor,
        coords: Tensor | None = None,
        coord_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        """``x (B, N, C)`` -> ``(B, N, C)``.

        Args:
            x: Tokens.
            coords: ``(B, N, 3)`` coordinates, or None (no position encoding this call).
            coord_mask: ``(B, N)`` bool, False = no coordinates (no rotation).
            attn_mask: SDPA mask broadcastable to ``(B, H, N, N)`` (bool: True = attend).
            is_causal: SDPA causal flag.
        """
        b, n, _ = x.shape
        q, k, v = self.rotate_qk(x, coords, coord_mask)
        x = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.attn_drop.p if self.training else 0.0,
            is_causal=is_causal,
        )
        x = x.transpose(1, 2).reshape(b, n, self.attn_dim)
        x = self.norm(x)
        return self.proj_drop(self.proj(x))


class StringBlock(Block):
    """timm pre-LN ``Block`` whose attention is :class:`StringAttention`; ``forward`` passes the
    token coordinates through. Same parameter names as timm's ``Block`` (plus the STRING ones).

    Args:
        dim: Token width.
        num_heads: Heads.
        mode: ``"string"`` | ``"rope"`` | ``"none"``.
        min_wavelength, max_wavelength, learnable_frequencies: see :class:`StringAttention`.
        qkv_bias, qk_norm, proj_bias, attn_drop, proj_drop, norm_layer: as timm's ``Block``.
        **kwargs: the other timm ``Block`` arguments (``mlp_ratio``, ``drop_path``,
            ``init_values``, ``act_layer``, ``mlp_layer``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mode: StringMode = "string",
        min_wavelength: float = 0.02,
        max_wavelength: float = 2.0,
        learnable_frequencies: bool = True,
        qkv_bias: bool = True,
        qk_norm: bool = False,
        proj_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        **kwargs,
    ) -> None:
        common = dict(
            qkv_bias=qkv_bias,
            qk_norm=qk_norm,
            proj_bias=proj_bias,
            attn_drop=attn_drop,
            proj_drop=proj_drop,
            norm_layer=norm_layer,
        )
        super().__init__(dim, num_heads, **common, **kwargs)
        # timm's Block instantiates attn_layer itself (no room for our extra arguments): swap it
        self.attn = StringAttention(
            dim,
            num_heads=num_heads,
            mode=mode,
            min_wavelength=min_wavelength,
            max_wavelength=max_wavelength,
            learnable_frequencies=learnable_frequencies,
            **common,
        )

    def forward(
        self,
        x: Tensor,
        coords: Tensor | None = None,
        coord_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
    ) -> Tensor:
        """``x (B, N, C)``, ``coords (B, N, 3)``, ``coord_mask (B, N)`` -> ``(B, N, C)``."""
        x = x + self.drop_path1(
            self.ls1(self.attn(self.norm1(x), coords, coord_mask, attn_mask=attn_mask))
        )
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
