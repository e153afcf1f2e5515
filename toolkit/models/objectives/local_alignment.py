"""CLAR's adaptive local alignment: 3D patches vs deformably sampled 2D features (Eqs. 5-6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.models.layers.deformable import DeformableCrossAttention
from toolkit.models.objectives.infonce import InfoNCELoss
from toolkit.ops.cameras import project_to_image
from toolkit.registry import OBJECTIVES
from toolkit.utils.errors import ShapeError

__all__ = ["LocalAlignmentLoss"]


@OBJECTIVES.register_module()
class LocalAlignmentLoss(nn.Module):
    """InfoNCE between each 3D patch feature and the 2D feature aligned to it.

    CLAR Sec. III-B: every patch center is projected into the teacher's image (normalized
    coordinates); a single-scale :class:`DeformableCrossAttention` with the encoded patch
    feature as query, the projection as reference point and the frozen teacher's feature map as
    value gives the aligned 2D feature ``F_I = sum_k A_qk v(p_q + dp_qk)`` (Eq. 5). The patch
    features (projected to ``embed_dim``) and the aligned 2D features are L2-normalized and
    contrasted with a symmetric InfoNCE (Eq. 6, open_clip's ``ClipLoss`` math): the positive of a
    patch is its own aligned feature, the negatives are the aligned features of every other valid
    patch of the (per-rank) batch, from all samples.

    A patch is valid iff its center projects inside the image in front of the camera and, when
    ``pixel_valid`` is given, onto a valid pixel (the pixel containing the projection). Invalid
    patches are dropped from the loss; their reference points are replaced by the image center
    so no NaN / inf reaches ``grid_sample``. ``pixel_valid`` is also max-pooled to the feature
    grid (a cell is valid if any of its pixels is) and passed as the attention's
    ``value_valid``, so features of background cells never enter the aligned features.

    Negatives are not gathered across ranks: the number of valid patches differs per rank and
    ``all_gather`` needs equal shapes; with ``B * G`` patches per rank there are plenty locally.

    Args:
        token_dim: Channels ``D`` of the encoded patch tokens (queries).
        feature_dim: Channels ``C`` of the teacher feature map (values); divisible by
            ``num_heads`` (the attention runs at this width).
        embed_dim: Width of the compared embeddings (attention output and token projection).
        num_heads, num_points: Deformable attention heads ``M`` and points ``K`` per head.
        init_temperature, learnable_temperature, max_logit_scale: as :class:`InfoNCELoss`.
        min_valid: Fewer valid patches than this in the batch gives a zero loss (still connected
            to every parameter, so DDP sees them used) and a valid fraction of 0.
        name: Output keys ``loss_{name}``, ``{name}_valid_fraction``, ``{name}_logit_scale``.
        proj_hidden_dim: ``None`` (default): the token projection is one Linear; an int: a
            two-layer MLP ``Linear, GELU, Linear`` with this hidden width.
    """

    def __init__(
        self,
        token_dim: int,
        feature_dim: int,
        embed_dim: int = 256,
        num_heads: int = 8,
        num_points: int = 4,
        init_temperature: float = 0.07,
        learnable_temperature: bool = True,
        max_logit_scale: float = 100.0,
        min_valid: int = 2,
        name: str = "local",
        proj_hidden_dim: int | None = None,
    ) -> None:
        super().__init__()
        if min_valid < 1:
            raise ValueError(f"LocalAlignmentLoss: min_valid must be >= 1, got {min_valid}")
        self.token_dim = token_dim
        self.feature_dim = feature_dim
        self.embed_dim = embed_dim
        self.min_valid = int(min_valid)
        self.name = name
        self.attention = DeformableCrossAttention(
            query_dim=token_dim,
            value_dim=feature_dim,
            num_heads=num_heads,
            num_points=num_points,
            out_dim=embed_dim,
        )
        if proj_hidden_dim is None:
            self.token_proj: nn.Module = nn.Linear(token_dim, embed_dim)
        else:
            self.token_proj = nn.Sequential(
                nn.Linear(token_dim, proj_hidden_dim),
                nn.GELU(),
                nn.Linear(proj_hidden_dim, embed_dim),
            )
        # gather=False: see the class docstring
        self.contrast = InfoNCELoss(
            name,
            init_temperature=init_temperature,
            learnable_temperature=learnable_temperature,
            max_logit_scale=max_logit_scale,
            gather=False,
            normalize=True,
        )

    def _check(
        self,
        tokens: Tensor,
        centers: Tensor,
        feature_map: Tensor,
        intrinsics: Tensor,
        cam_to_world: Tensor,
        pixel_valid: Tensor | None,
        image_hw: tuple[int, int],
    ) -> None:
        if tokens.ndim != 3 or tokens.shape[-1] != self.token_dim:
            raise ShapeError(
                f"LocalAlignmentLoss: tokens must be (B, G, {self.token_dim}), "
                f"got {tuple(tokens.shape)}"
            )
        B, G, _ = tokens.shape
        expected = {
            "centers": (centers, (B, G, 3)),
            "intrinsics": (intrinsics, (B, 3, 3)),
            "cam_to_world": (cam_to_world, (B, 4, 4)),
        }
        if pixel_valid is not None:
            expected["pixel_valid"] = (pixel_valid, (B, *image_hw))
        for field, (t, shape) in expected.items():
            if tuple(t.shape) != tuple(shape):
                raise ShapeError(
                    f"LocalAlignmentLoss: {field} must be {tuple(shape)}, got {tuple(t.shape)}"
                )
        if feature_map.ndim != 4 or feature_map.shape[:2] != (B, self.feature_dim):
            raise ShapeError(
                f"LocalAlignmentLoss: feature_map must be (B, {self.feature_dim}, h, w) with "
                f"B={B}, got {tuple(feature_map.shape)}"
            )

    def forward(
        self,
        tokens: Tensor,
        centers: Tensor,
        feature_map: Tensor,
        intrinsics: Tensor,
        cam_to_world: Tensor,
        image_hw: tuple[int, int],
        pixel_valid: Tensor | None = None,
        return_details: bool = False,
    ) -> dict[str, Tensor]:
        """Local alignment loss of one batch.

        Args:
            tokens: ``(B, G, D)`` encoded features of ALL patches.
            centers: ``(B, G, 3)`` world-frame patch centers.
            feature_map: ``(B, C, h, w)`` frozen teacher features of the image (detached here).
            intrinsics: ``(B, 3, 3)`` of the ``image_hw`` RGB image.
            cam_to_world: ``(B, 4, 4)`` OpenCV camera-to-world of that image.
            image_hw: ``(H, W)`` of the image.
            pixel_valid: optional ``(B, H, W)`` bool, e.g. depth inside the workspace.
            return_details: add detached ``reference_points (B, G, 2)``, ``valid (B, G)``,
                ``locations (B, G, M, K, 2)`` and ``weights (B, G, M, K)`` (for pictures).

        Returns:
            ``loss_{name}`` (scalar), ``{name}_valid_fraction`` (detached: valid patches / all),
            ``{name}_logit_scale`` (detached), and the details when asked.
        """
        H, W = (int(s) for s in image_hw)
        self._check(tokens, centers, feature_map, intrinsics, cam_to_world, pixel_valid, (H, W))
        B, G, _ = tokens.shape
        feature_map = feature_map.detach()  # the teacher is frozen

        # Geometry carries no gradient: centers come from the data (FPS of the input cloud).
        with torch.no_grad():
            uv, _, valid = project_to_image(
                centers.detach().float(), intrinsics.float(), cam_to_world.float(), (H, W)
            )
            value_valid = None
            if pixel_valid is not None:
                pixel_valid = pixel_valid.to(device=tokens.device, dtype=torch.bool)
                size = torch.tensor([W, H], device=uv.device)
                pix = (uv * size).floor().long()
                pix = torch.minimum(pix.clamp(min=0), size - 1)  # inside points are in range
                hit = pixel_valid[
                    torch.arange(B, device=uv.device)[:, None], pix[..., 1], pix[..., 0]
                ]
                valid = valid & hit
                value_valid = (
                    F.adaptive_max_pool2d(pixel_valid[:, None].float(), feature_map.shape[-2:])[
                        :, 0
                    ]
                    > 0
                )
            reference = torch.where(valid[..., None], uv, torch.full_like(uv, 0.5))

        aligned, sampling = self.attention(
            tokens,
            reference.to(tokens.dtype),
            feature_map.to(tokens.dtype),
            value_valid=value_valid,
            return_sampling=True,
        )  # (B, G, E)
        patch = self.token_proj(tokens)  # (B, G, E)

        n_valid = int(valid.sum())
        out: dict[str, Tensor] = {}
        if n_valid >= self.min_valid:
            flat = valid.reshape(-1)
            res = self.contrast(patch.reshape(B * G, -1)[flat], aligned.reshape(B * G, -1)[flat])
            out[f"loss_{self.name}"] = res[f"loss_{self.name}"]
            out[f"{self.name}_valid_fraction"] = valid.float().mean().detach()
            out[f"{self.name}_logit_scale"] = res[f"{self.name}_logit_scale"]
        else:
            # Zero loss still connected to every parameter and to tokens: DDP and unused-
            # parameter checks see the same graph as a normal step.
            params = sum(p.sum() for p in self.parameters() if p.requires_grad)
            out[f"loss_{self.name}"] = 0.0 * (patch.sum() + aligned.sum() + params)
            out[f"{self.name}_valid_fraction"] = torch.zeros((), device=tokens.device)
            out[f"{self.name}_logit_scale"] = self.contrast.logit_scale.detach().exp()
        if return_details:
            out.update(
                reference_points=reference.detach(),
                valid=valid,
                locations=sampling["locations"],
                weights=sampling["weights"],
            )
        return out
