"""ACT (Zhao et al. 2023, tonyzhaozh/act; specs.md "ACT"): a CVAE whose decoder is a
Transformer encoder-decoder from observation tokens to an action chunk.

- CVAE encoder (training only): a Transformer over ``[CLS, proprio, a_1 .. a_C]`` (padding
  masked) -> ``mu, log sigma^2`` of a ``latent_dim`` style variable ``z``.
- Policy: encoder tokens ``[proj(z), observation tokens...]`` (the observation tokens already
  hold proprioception and images); ``C`` learned queries decode the chunk. At inference
  ``z = 0`` (the prior's mean).
- Loss (in the policy): L1 on unpadded actions + ``kl_weight`` x KL(q(z) || N(0, I)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from toolkit.models.layers.pos_embed import sine_pos_1d
from toolkit.registry import HEADS

__all__ = ["ACTTransformer"]


def _layers(d: int, nhead: int, ffn: int, dropout: float):
    kw = dict(activation="relu", batch_first=True, norm_first=False)
    return (
        nn.TransformerEncoderLayer(d, nhead, ffn, dropout, **kw),
        nn.TransformerDecoderLayer(d, nhead, ffn, dropout, **kw),
    )


@HEADS.register_module()
class ACTTransformer(nn.Module):
    """ACT's CVAE + Transformer (paper: d 512, 8 heads, FFN 3200, 4 encoder layers, 1 decoder
    layer actually used (the reference builds 7 and reads the first), CVAE encoder 4 layers,
    z 32-d, chunk 100; CLAMP's comparison uses chunk 50).
    """

    def __init__(
        self,
        action_dim: int = 14,
        proprio_dim: int = 14,
        chunk_size: int = 50,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 4,
        num_decoder_layers: int = 1,
        num_vae_layers: int = 4,
        dim_feedforward: int = 3200,
        dropout: float = 0.1,
        latent_dim: int = 32,
    ) -> None:
        super().__init__()
        self.action_dim, self.chunk_size = action_dim, chunk_size
        self.d_model, self.latent_dim = d_model, latent_dim
        enc, dec = _layers(d_model, nhead, dim_feedforward, dropout)
        self.encoder = nn.TransformerEncoder(enc, num_encoder_layers, enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(dec, num_decoder_layers, norm=nn.LayerNorm(d_model))
        vae, _ = _layers(d_model, nhead, dim_feedforward, dropout)
        self.vae_encoder = nn.TransformerEncoder(vae, num_vae_layers, enable_nested_tensor=False)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.vae_action = nn.Linear(action_dim, d_model)
        self.vae_proprio = nn.Linear(proprio_dim, d_model)
        self.vae_out = nn.Linear(d_model, 2 * latent_dim)
        self.register_buffer(
            "vae_pos", sine_pos_1d(chunk_size + 2, d_model)[None], persistent=False
        )
        self.latent_in = nn.Linear(latent_dim, d_model)
        self.latent_pos = nn.Parameter(torch.zeros(1, 1, d_model))
        self.queries = nn.Parameter(torch.zeros(1, chunk_size, d_model))
        self.action_out = nn.Linear(d_model, action_dim)
        for p in (self.cls, self.latent_pos, self.queries):
            nn.init.normal_(p, std=0.02)

    def posterior(
        self, proprio: Tensor, actions: Tensor, is_pad: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(mu, logvar)`` (B, latent) of q(z | proprio, actions); proprio normalized (B, P),
        actions normalized (B, C, A), ``is_pad`` (B, C) True = padding."""
        b = actions.shape[0]
        x = torch.cat(
            [
                self.cls.expand(b, -1, -1),
                self.vae_proprio(proprio)[:, None],
                self.vae_action(actions),
            ],
            dim=1,
        )
        mask = None
        if is_pad is not None:
            head = torch.zeros(b, 2, dtype=torch.bool, device=x.device)
            mask = torch.cat([head, is_pad.bool()], dim=1)
        h = self.vae_encoder(x + self.vae_pos[:, : x.shape[1]], src_key_padding_mask=mask)
        mu, logvar = self.vae_out(h[:, 0]).chunk(2, dim=-1)
        return mu, logvar

    def forward(self, tokens: Tensor, pos: Tensor, z: Tensor) -> Tensor:
        """Chunk (B, C, A) (normalized) from observation ``tokens`` (B, S, D) + ``pos`` and
        the style variable ``z`` (B, latent)."""
        b = tokens.shape[0]
        lat = self.latent_in(z)[:, None]
        src = torch.cat([lat + self.latent_pos, tokens + pos.expand(b, -1, -1)], dim=1)
        memory = self.encoder(src)
        out = self.decoder(self.queries.expand(b, -1, -1), memory)
        return self.action_out(out)
