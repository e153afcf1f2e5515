"""Policies (MODELS registry): the rollout contract is reset() / select_action(obs)."""

from toolkit.models.policies.normalization import Normalizer
from toolkit.models.policies.point_cloud_policy import PointCloudPolicy

__all__ = ["Normalizer", "PointCloudPolicy"]
