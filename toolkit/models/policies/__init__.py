"""Policies (MODELS registry): the rollout contract is reset() / select_action(obs)."""

from toolkit.models.policies.act_policy import ACTPolicy
from toolkit.models.policies.chunk_policy import ChunkPolicy, ObservationTokenizer
from toolkit.models.policies.diffusion_policy import DiffusionPolicy
from toolkit.models.policies.normalization import Normalizer
from toolkit.models.policies.point_cloud_policy import PointCloudPolicy

__all__ = [
    "ACTPolicy",
    "ChunkPolicy",
    "DiffusionPolicy",
    "Normalizer",
    "ObservationTokenizer",
    "PointCloudPolicy",
]
