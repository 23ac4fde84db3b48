"""Feature hint loss: mean squared error between an (adapted) student tap and
a teacher tap (FitNets-style hint learning, FGFI's full-feature variant)."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .levelwise import LevelwiseLoss
from .utils import fp32_math


@MODELS.register_module()
class FeatureMSELoss(LevelwiseLoss):
    """``loss_weight · mean((s − t)²)`` over all elements of a map pair.

    The levels of a multi-level tap are averaged by default
    (``level_reduction='mean'``): FitNets and FGFI's official code hint one
    map, and mmkd's FGFI configs and demo weights were set for the mean.

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        level_reduction (str, optional): ``'mean'`` (default) or ``'sum'``
            over the levels; see
            :class:`~mmkd.models.losses.levelwise.LevelwiseLoss`.

    Inputs (:meth:`forward`): ``student`` and ``teacher`` of equal shapes,
    one tensor or a sequence over levels.
    """

    default_level_reduction = 'mean'

    def __init__(self,
                 loss_weight: float = 1.0,
                 level_reduction: Optional[str] = None) -> None:
        super().__init__(level_reduction)
        self.loss_weight = loss_weight

    def forward_level(self, student: Tensor, teacher: Tensor,
                      level: int = 0) -> Tensor:
        """Args:
            student (Tensor): ``(N, C, H, W)`` (any shape).
            teacher (Tensor): Same shape as student.
            level (int): The level's index (unused).

        Returns:
            Tensor: Scalar weighted loss.
        """
        if student.shape != teacher.shape:
            raise ValueError(
                f'FeatureMSELoss: student shape {tuple(student.shape)} '
                f'differs from teacher shape {tuple(teacher.shape)}; add a '
                'connector or tap matching maps.')
        with fp32_math(student, teacher) as (s32, t32):
            return self.loss_weight * F.mse_loss(s32, t32)
