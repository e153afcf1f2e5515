"""The ALOHA Unleashed-style diffusion head: a Transformer encoder-decoder that predicts the
noise of an action chunk (CLAMP Sec. III-C; specs.md "Diffusion Policy").

Encoder: the observation tokens (per-camera ResNet maps, optional frozen CLAMP tokens,
proprioception) plus their position embeddings. Decoder: the noised ``C x A`` chunk, linearly
embedded, plus a learnable per-index position embedding and the diffusion timestep's embedding
(sinusoidal + MLP by default; the paper's one-hot form as an option), cross-attending to
the encoder output; a linear layer reads out the noise. The encoder runs once per chunk at
inference, the decoder once per denoising step (:meth:`encode` / :meth:`decode`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from toolkit.models.layers.pos_embed import sine_pos_1d
from toolkit.registry import HEADS
from toolkit.utils.errors import ConfigError, ShapeError

__all__ = ["DiffusionTransformerHead"]


@HEADS.register_module()
class DiffusionTransformerHead(nn.Module):
    """Noise prediction ``eps(noisy chunk, t | observation tokens)``.

    Args:
        action_dim: A (ALOHA: 14 joint targets). chunk_size: C (50).
        d_model / nhead / num_encoder_layers / num_decoder_layers / dim_feedforward /
            dropout: paper 768 / 8 / 4 / 7 / 3200 / 0.1.
        num_train_timesteps: the DDPM scheduler's T.
        time_embedding: ``"sinusoidal"`` (sinusoids of t -> MLP, as Diffusion Policy) or
            ``"onehot"`` (a learned table = a linear map of the one-hot timestep, the paper's
            wording). A table row only learns when its timestep is drawn (1 in T samples);
            measured on one expert episode the sinusoidal form trains several times faster.
    """

    def __init__(
        self,
        action_dim: int = 14,
        chunk_size: int = 50,
        d_model: int = 768,
        nhead: int = 8,
        num_encoder_layers: int = 4,
        num_decoder_layers: int = 7,
        dim_feedforward: int = 3200,
        dropout: float = 0.1,
        num_train_timesteps: int = 100,
        time_embedding: str = "sinusoidal",
    ) -> None:
        super().__init__()
        if time_embedding not in ("sinusoidal", "onehot"):
            raise ConfigError(
                "DiffusionTransformerHead.time_embedding: 'sinusoidal' or 'onehot', got "
                f"{time_embedding!r}"
            )
        self.time_embedding = time_embedding
        self.action_dim, self.chunk_size, self.d_model = action_dim, chunk_size, d_model
        enc = nn.TransformerEncoderLayer(
            d_model,
            nhead,
            dim_feedforward,
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        dec = nn.TransformerDecoderLayer(
            d_model,
            nhead,
            dim_feedforward,
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            enc, num_encoder_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )
        self.decoder = nn.TransformerDecoder(dec, num_decoder_layers, norm=nn.LayerNorm(d_model))
        self.action_in = nn.Linear(action_dim, d_model)
        self.query_pos = nn.Parameter(torch.zeros(1, chunk_size, d_model))
        if time_embedding == "onehot":
            self.time_embed = nn.Embedding(num_train_timesteps, d_model)
        else:
            self.register_buffer(
                "time_table", sine_pos_1d(num_train_timesteps, d_model), persistent=False
            )
            self.time_embed = nn.Sequential(
                nn.Linear(d_model, 4 * d_model), nn.SiLU(), nn.Linear(4 * d_model, d_model)
            )
        self.action_out = nn.Linear(d_model, action_dim)
        nn.init.trunc_normal_(self.query_pos, std=0.02)
        if time_embedding == "onehot":
            nn.init.normal_(self.time_embed.weight, std=0.02)

    def encode(self, tokens: Tensor, pos: Tensor, pad_mask: Tensor | None = None) -> Tensor:
        """``tokens`` (B, S, D) + ``pos`` (B or 1, S, D) -> memory (B, S, D).

        ``pad_mask`` (B, S) bool, True = ignore this token.
        """
        if tokens.ndim != 3 or tokens.shape[-1] != self.d_model:
            raise ShapeError(
                f"DiffusionTransformerHead: tokens must be (B, S, {self.d_model}), "
                f"got {tuple(tokens.shape)}"
            )
        return self.encoder(tokens + pos, src_key_padding_mask=pad_mask)

    def decode(
        self,
        noisy: Tensor,
        timesteps: Tensor,
        memory: Tensor,
        pad_mask: Tensor | None = None,
    ) -> Tensor:
        """Noise estimate (B, C, A) of ``noisy`` (B, C, A) at ``timesteps`` (B,) or scalar."""
        b, c, a = noisy.shape
        if (c, a) != (self.chunk_size, self.action_dim):
            raise ShapeError(
                f"DiffusionTransformerHead: noisy chunk must be (B, {self.chunk_size}, "
                f"{self.action_dim}), got {tuple(noisy.shape)}"
            )
        t = torch.as_tensor(timesteps, device=noisy.device).long().reshape(-1).expand(b)
        temb = self.time_embed(t if self.time_embedding == "onehot" else self.time_table[t])
        x = self.action_in(noisy) + self.query_pos + temb[:, None, :]
        x = self.decoder(x, memory, memory_key_padding_mask=pad_mask)
        return self.action_out(x)

    def forward(
        self, noisy: Tensor, timesteps: Tensor, tokens: Tensor, pos: Tensor, pad_mask=None
    ) -> Tensor:
        return self.decode(noisy, timesteps, self.encode(tokens, pos, pad_mask), pad_mask)
