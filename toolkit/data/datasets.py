"""Every registered dataset / transform; the DATASETS registry imports this module lazily."""

from toolkit.data.clamp_dataset import ClampPretrainDataset
from toolkit.data.policy_dataset import PointCloudBCDataset
from toolkit.data.pretrain_dataset import PointCloudPretrainDataset

__all__ = ["ClampPretrainDataset", "PointCloudBCDataset", "PointCloudPretrainDataset"]
