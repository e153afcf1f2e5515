"""Every registered dataset / transform; the DATASETS registry imports this module lazily."""

from toolkit.data.policy_dataset import PointCloudBCDataset

__all__ = ["PointCloudBCDataset"]
