"""PKD: distillation by the Pearson correlation of normalised features (Cao
et al., "PKD: General Distillation Framework for Object Detectors via
Pearson Correlation Coefficient", NeurIPS 2022)."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .levelwise import LevelwiseLoss
from .utils import check_map_pair, fp32_math

#: Added to each channel's standard deviation, as in the official code.
STD_EPS = 1e-6


def channel_standardise(feat: Tensor) -> Tensor:
    """Give every channel zero mean and unit variance over the batch and
    the locations together.

    Args:
        feat (Tensor): ``(N, C, H, W)``.

    Returns:
        Tensor: ``(F − μ_c) / (σ_c + 1e-6)``, ``μ_c`` and ``σ_c`` (the
        unbiased standard deviation) over the ``N·H·W`` values of channel
        ``c``; same shape.
    """
    flat = feat.transpose(0, 1).flatten(1)  # (C, N·H·W)
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, keepdim=True)
    flat = (flat - mean) / (std + STD_EPS)
    n, c, h, w = feat.shape
    return flat.reshape(c, n, h, w).transpose(0, 1)


@MODELS.register_module()
class PKDLoss(LevelwiseLoss):
    """The student's standardised features imitate the teacher's.

    Per level, with ``F̂`` the feature standardised per channel over the
    batch and the locations (:func:`channel_standardise`):

        L = loss_weight · mean_{n,c,h,w} (F̂_S − F̂_T)² / 2

    which is ``loss_weight · (1 − r)`` up to the ``1e-6`` and the unbiased
    variance, ``r`` the Pearson correlation of the two maps averaged over
    the channels: the student matches the teacher's pattern, not its scale,
    so features of very different magnitude (another detector family) can
    be compared without an adaptation layer. The levels of a multi-level
    tap (the FPN outputs) are summed, as in the official code
    (MMRazor's ``PKDLoss``, by PKD's authors), the weight applying to each
    level.

    As the official code: a student map of another height is resized
    bilinearly to the teacher's (``resize_student=True``; False resizes the
    teacher's to the student's); the channels must match. Differences: the
    math runs in fp32 with autocast off, and the teacher is detached.

    Official settings (MMRazor): ``loss_weight=6`` for Faster R-CNN R101 →
    R50 (FPN levels P2-P5), 10 for RetinaNet X101 → R50 (P3-P6).

    Args:
        loss_weight (float): Multiplier of each level's loss. Defaults to
            1.0.
        resize_student (bool): Resize the student map to the teacher's size
            (True, official) or the teacher map to the student's. Defaults to
            True.
        level_reduction (str, optional): ``'sum'`` (default, official) or
            ``'mean'`` over the levels.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 resize_student: bool = True,
                 level_reduction: Optional[str] = None) -> None:
        super().__init__(level_reduction)
        self.loss_weight = loss_weight
        self.resize_student = bool(resize_student)

    def forward_level(self, student: Tensor, teacher: Tensor,
                      level: int = 0) -> Tensor:
        """The PKD loss of one pair of maps.

        Args:
            student (Tensor): ``(N, C, H_s, W_s)`` student feature.
            teacher (Tensor): ``(N, C, H_t, W_t)`` teacher feature.
            level (int): The level's index (unused).

        Returns:
            Tensor: Scalar fp32 loss, multiplied by ``loss_weight``.
        """
        check_map_pair(
            student, teacher, 'PKDLoss', same_channels='PKD correlates '
            'channel c of the student with channel c of the teacher')
        with fp32_math(student, teacher.detach()) as (s, t):
            if s.shape[-2:] != t.shape[-2:]:
                if self.resize_student:
                    s = F.interpolate(s, t.shape[-2:], mode='bilinear')
                else:
                    t = F.interpolate(t, s.shape[-2:], mode='bilinear')
            loss = F.mse_loss(channel_standardise(s),
                              channel_standardise(t)) / 2
        return loss * self.loss_weight
