"""Pretraining objectives (OBJECTIVES registry): each returns a dict of ``loss_*`` terms."""

from toolkit.models.objectives.chamfer_mae import ChamferMAELoss
from toolkit.models.objectives.infonce import InfoNCELoss
from toolkit.models.objectives.local_alignment import LocalAlignmentLoss
from toolkit.models.objectives.pose_loss import PoseGripperLoss
from toolkit.models.objectives.siglip import SigLIPLoss, TriModalSigLIPLoss

__all__ = [
    "ChamferMAELoss",
    "InfoNCELoss",
    "LocalAlignmentLoss",
    "PoseGripperLoss",
    "SigLIPLoss",
    "TriModalSigLIPLoss",
]
