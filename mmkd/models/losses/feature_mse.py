"""Feature hint loss: mean squared error between an (adapted) student tap and
a teacher tap (FitNets-style hint learning, FGFI's full-feature variant)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from mmkd.taps import MultiLevel
from .utils import fp32_math, level_pairs


@MODELS.register_module()
class FeatureMSELoss(nn.Module):
    """``loss_weight · mean((s − t)²)`` over all elements (of all levels).

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0.

    Inputs (:meth:`forward`): ``student`` and ``teacher`` of equal shapes,
    one tensor or a sequence over levels (averaged over levels).
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student: MultiLevel, teacher: MultiLevel) -> Tensor:
        """Args:
            student (Tensor | Sequence[Tensor]): ``(N, C, H, W)`` per level.
            teacher (Tensor | Sequence[Tensor]): Same shapes as student.

        Returns:
            Tensor: Scalar weighted loss.
        """
        students, teachers = level_pairs(student, teacher, 'FeatureMSELoss')
        total = []
        for level, (s, t) in enumerate(zip(students, teachers)):
            if s.shape != t.shape:
                raise ValueError(
                    f'FeatureMSELoss: level {level}: student shape '
                    f'{tuple(s.shape)} differs from teacher shape '
                    f'{tuple(t.shape)}; add a connector or tap matching maps.')
            with fp32_math(s, t) as (s32, t32):
                total.append(F.mse_loss(s32, t32))
        return self.loss_weight * torch.stack(total).mean()
