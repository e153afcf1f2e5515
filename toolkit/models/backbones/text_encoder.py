"""CLAMP's text encoder g: open_clip's CLIP text transformer, trained from scratch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from open_clip.tokenizer import SimpleTokenizer
from open_clip.transformer import TextTransformer
from torch import Tensor, nn

from toolkit.models.utils import PretrainedMixin
from toolkit.registry import BACKBONES
from toolkit.utils.errors import ShapeError

__all__ = ["ClampTextEncoder", "TEXT_ARCH_SETTINGS"]

#: ``paper``: 12 layers, width 768, 12 heads, MLP 3072, 256 tokens, 768-d output (CLAMP Sec.
#: III-B, App. C); ``tiny``: our CPU / test size.
TEXT_ARCH_SETTINGS: dict[str, dict[str, Any]] = {
    "tiny": dict(width=64, layers=2, heads=2, mlp_ratio=4.0, context_length=256, output_dim=64),
    "paper": dict(width=768, layers=12, heads=12, mlp_ratio=4.0, context_length=256, output_dim=768),
}  # fmt: skip

_CONTEXT_CACHE: dict[int, SimpleTokenizer] = {}


def _tokenizer(context_length: int) -> SimpleTokenizer:
    # building the BPE tables takes ~0.5 s: share one tokenizer per context length
    if context_length not in _CONTEXT_CACHE:
        _CONTEXT_CACHE[context_length] = SimpleTokenizer(context_length=context_length)
    return _CONTEXT_CACHE[context_length]


@BACKBONES.register_module()
class ClampTextEncoder(PretrainedMixin, nn.Module):
    """CLIP text transformer (open_clip ``TextTransformer``) with open_clip's BPE tokenizer.

    Trained from scratch (``pretrained`` weights are not used). CLIP's recipe: token + learned
    position embedding, causal pre-LN Transformer, final LayerNorm, the EOT token's feature
    (``pool_type="argmax"``: EOT has the largest id) through a linear projection to
    ``output_dim``. The tokenizer is open_clip's ``SimpleTokenizer`` (CLIP BPE, 49,408 tokens,
    bundled in the package: works offline); it lower-cases, pads with 0 and truncates to
    ``context_length`` keeping EOT last. Any context length works (it only sizes the position
    embedding and the causal mask); CLAMP uses 256. Digits are single BPE tokens, so a position
    like ``0.123`` costs 5 tokens: keep texts under the context length (see
    :meth:`count_tokens`).

    Note on size: CLAMP reports 277M parameters for its 12-layer 768-wide text encoder, which
    points at a ~250k-token vocabulary (big_vision's SentencePiece); with CLIP's 49k BPE the
    ``paper`` preset has about 123M. The transformer itself is identical in size.

    Args:
        arch: ``"paper"`` (default) | ``"tiny"``; the arguments below default to the preset.
        width, layers, heads, mlp_ratio: Transformer size.
        context_length: Tokens per text (default 256).
        output_dim: Width of ``pooled``.
        causal: CLIP's causal mask (True) or bidirectional attention.
        grad_checkpointing: Activation checkpointing of the blocks.
    """

    def __init__(
        self,
        arch: Literal["paper", "tiny"] = "paper",
        width: int | None = None,
        layers: int | None = None,
        heads: int | None = None,
        mlp_ratio: float | None = None,
        context_length: int | None = None,
        output_dim: int | None = None,
        causal: bool = True,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if arch not in TEXT_ARCH_SETTINGS:
            raise ValueError(
                f"ClampTextEncoder: unknown arch '{arch}'; expected {sorted(TEXT_ARCH_SETTINGS)}"
            )
        given = dict(
            width=width, layers=layers, heads=heads, mlp_ratio=mlp_ratio,
            context_length=context_length, output_dim=output_dim,
        )  # fmt: skip
        cfg = {k: (TEXT_ARCH_SETTINGS[arch][k] if v is None else v) for k, v in given.items()}
        self.context_length = int(cfg["context_length"])
        self.tokenizer = _tokenizer(self.context_length)
        self.transformer = TextTransformer(
            context_length=self.context_length,
            vocab_size=self.tokenizer.vocab_size,
            width=int(cfg["width"]),
            heads=int(cfg["heads"]),
            layers=int(cfg["layers"]),
            mlp_ratio=float(cfg["mlp_ratio"]),
            output_dim=int(cfg["output_dim"]),
            no_causal_mask=not causal,
            pool_type="argmax",
            output_tokens=True,
        )
        self.set_grad_checkpointing(grad_checkpointing)
        self.out_dim = int(cfg["output_dim"])
        self.token_dim = int(cfg["width"])
        self.num_tokens = self.context_length

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Toggle activation checkpointing of the blocks."""
        self.grad_checkpointing = enable
        self.transformer.set_grad_checkpointing(enable)

    def no_weight_decay(self) -> set[str]:
        """The position embedding (open_clip's choice)."""
        return {"transformer.positional_embedding"}

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        """``texts`` -> ``(B, context_length)`` int64 token ids (0 = padding)."""
        if isinstance(texts, str):
            raise ShapeError("ClampTextEncoder: texts must be a list of strings, got one str")
        return self.tokenizer(list(texts), context_length=self.context_length)

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` needs, with SOT and EOT (more than ``context_length`` = truncated)."""
        return len(self.tokenizer.encode(text)) + 2

    def forward(self, texts: Sequence[str] | Tensor) -> dict[str, Tensor]:
        """Encode texts.

        Args:
            texts: ``B`` strings, or token ids ``(B, context_length)`` from :meth:`tokenize`
                (e.g. tokenized in data-loader workers).

        Returns:
            ``dict(tokens (B, L, width)`` after the final LayerNorm (unpooled), ``pooled
            (B, output_dim)`` (EOT feature, projected), ``mask (B, L)`` bool (non-padding))``.
        """
        device = self.transformer.positional_embedding.device
        ids = texts if isinstance(texts, Tensor) else self.tokenize(texts)
        if ids.ndim != 2 or ids.shape[1] != self.context_length or ids.is_floating_point():
            raise ShapeError(
                f"ClampTextEncoder: token ids must be integer (B, {self.context_length}), got "
                f"{ids.dtype} {tuple(ids.shape)}"
            )
        ids = ids.to(device=device, dtype=torch.long)
        pooled, tokens = self.transformer(ids)
        return dict(tokens=tokens, pooled=pooled, mask=ids != 0)
