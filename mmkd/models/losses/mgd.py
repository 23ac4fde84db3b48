"""MGD: masked generative distillation (Yang et al., "Masked Generative
Distillation", ECCV 2022), for detection and segmentation."""
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

from mmkd.registry import MODELS
from mmkd.utils.config_checks import check_number
from .levelwise import AlignedLevelwiseLoss
from .utils import fp32_math


def generation_block(channels: int) -> nn.Sequential:
    """MGD's generator: 3×3 conv, ReLU, 3×3 conv, at the teacher's
    channels (PyTorch's default initialisation, as the official code)."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, kernel_size=3, padding=1))


@MODELS.register_module()
class MGDLoss(AlignedLevelwiseLoss):
    """The student's feature, with random locations masked out, must
    generate the teacher's whole feature.

    Per level, with ``F_S`` the student feature (mapped to the teacher's
    channels by a 1×1 convolution when they differ), ``M`` an ``(N, 1, H,
    W)`` random mask that drops each location with probability
    ``mask_ratio`` (the same locations on every channel), and ``G`` the
    generation block (3×3 conv, ReLU, 3×3 conv):

        L = loss_weight · sum_{n,c,h,w} (G(F_S · M) − F_T)² / N

    ``loss_weight`` is the paper's α_mgd, ``mask_ratio`` its λ_mgd. The
    align and generation layers are learnt with the student (one set per
    level: the official code gives every FPN level its own loss); they are
    not part of the exported student. The levels of a multi-level tap are
    summed, as the official configs' one loss per level.

    Exact to the official code (yzd-v/MGD, ``FeatureLoss`` of ``det/`` and
    ``seg/``) but for: the mask is drawn on the feature's device (official:
    on the CPU, then moved: the same distribution, another random stream),
    the squared error is summed in fp32 with autocast off, and the teacher
    is detached.

    Official settings: RetinaNet (P3-P7) ``loss_weight=2e-5``,
    ``mask_ratio=0.65``; Faster R-CNN (P2-P5) ``5e-7``, ``0.45``;
    segmentation (the last backbone stage, e.g. 512 → 2048 channels)
    ``2e-5``, ``0.75``, beside a channel-wise logit term.

    Args:
        student_channels (int): Channels of the student map.
        teacher_channels (int): Channels of the teacher map.
        loss_weight (float): α_mgd. Defaults to 2e-5.
        mask_ratio (float): λ_mgd, the share of locations dropped, in
            [0, 1]. Defaults to 0.65.
        num_levels (int): Levels of the tap (one align and generation block
            each). Defaults to 1.
        level_reduction (str, optional): ``'sum'`` (default, official) or
            ``'mean'`` over the levels.
    """

    def __init__(self,
                 student_channels: int,
                 teacher_channels: int,
                 loss_weight: float = 2e-5,
                 mask_ratio: float = 0.65,
                 num_levels: int = 1,
                 level_reduction: Optional[str] = None) -> None:
        super().__init__(student_channels, teacher_channels, num_levels,
                         level_reduction)
        owner = 'MGDLoss'
        self.mask_ratio = check_number(
            mask_ratio, 'mask_ratio', low=0, high=1, owner=owner,
            hint='It is the share of locations masked out (official: 0.65 '
            'for RetinaNet, 0.45 for Faster R-CNN, 0.75 for segmentation).')
        self.loss_weight = loss_weight
        self.generation = nn.ModuleList(
            generation_block(teacher_channels)
            for _ in range(self.num_levels))

    def forward_level(self, student: Tensor, teacher: Tensor,
                      level: int = 0) -> Tensor:
        """The MGD loss of one pair of maps.

        Args:
            student (Tensor): ``(N, C_s, H, W)`` student feature.
            teacher (Tensor): ``(N, C_t, H, W)`` teacher feature.
            level (int): The level (its align and generation block).

        Returns:
            Tensor: Scalar fp32 loss, multiplied by ``loss_weight``.
        """
        self.check_level_pair(student, teacher)
        feat = self.align[level](student)
        n, _, h, w = teacher.shape
        keep = torch.rand((n, 1, h, w), device=feat.device) <= \
            1 - self.mask_ratio
        generated = self.generation[level](feat * keep.to(feat.dtype))
        with fp32_math(generated, teacher.detach()) as (g, t):
            loss = (g - t).pow(2).sum() / n
        return loss * self.loss_weight
