"""FGD: focal and global distillation for detectors (Yang et al., "Focal and
Global Knowledge Distillation for Detectors", CVPR 2022)."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import constant_init, kaiming_init
from torch import Tensor

from mmkd.registry import MODELS
from mmkd.taps import MultiLevel, as_levels
from mmkd.task_modules.focal_region import FocalRegion
from mmkd.utils.config_checks import check_number
from .levelwise import AlignedLevelwiseLoss
from .utils import fp32_math


def attention(feat: Tensor, temp: float) -> Tuple[Tensor, Tensor]:
    """FGD's spatial and channel attention of a feature map.

    Args:
        feat (Tensor): ``(N, C, H, W)``.
        temp (float): The temperature ``T``.

    Returns:
        tuple[Tensor, Tensor]: ``S = H·W · softmax_{HW}(mean_C |F| / T)``,
        ``(N, H, W)``, and ``A = C · softmax_C(mean_{HW} |F| / T)``,
        ``(N, C)``.
    """
    n, c, h, w = feat.shape
    value = feat.abs()
    spatial = value.mean(dim=1).reshape(n, -1) / temp
    spatial = (h * w * F.softmax(spatial, dim=1)).reshape(n, h, w)
    channel = c * F.softmax(value.mean(dim=(2, 3)) / temp, dim=1)
    return spatial, channel


class GlobalContextBlock(nn.Module):
    """FGD's relation module (a GcBlock): ``R(F) = F + W_2 ReLU(LN(W_1
    ctx))``, ``ctx = sum_j softmax_j(W_k F)_j F_j`` the attention-pooled
    context of the map. Initialised as the official code: ``W_k``
    Kaiming (fan-in), the last convolution 0 (R is the identity at first).

    Args:
        channels (int): ``C``; the bottleneck has ``C // 2``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_mask = nn.Conv2d(channels, 1, kernel_size=1)
        self.channel_add = nn.Sequential(
            nn.Conv2d(channels, channels // 2, kernel_size=1),
            nn.LayerNorm([channels // 2, 1, 1]), nn.ReLU(inplace=True),
            nn.Conv2d(channels // 2, channels, kernel_size=1))
        kaiming_init(self.conv_mask, mode='fan_in')
        constant_init(self.channel_add[-1], val=0)

    def forward(self, feat: Tensor) -> Tensor:
        """``(N, C, H, W)`` in, ``R(F)`` of the same shape out."""
        n, c, h, w = feat.shape
        weights = F.softmax(self.conv_mask(feat).reshape(n, 1, h * w), dim=2)
        context = torch.bmm(feat.reshape(n, c, h * w),
                            weights.transpose(1, 2)).reshape(n, c, 1, 1)
        return feat + self.channel_add(context)


@MODELS.register_module()
class FGDLoss(AlignedLevelwiseLoss):
    """Focal distillation (foreground and background apart, weighted by the
    teacher's attention) and global distillation (the relation between
    locations, through a GcBlock) of a detector's FPN features.

    Per level, with ``F_S`` the student feature (mapped to the teacher's
    channels by a 1×1 convolution when they differ), ``F_T`` the teacher's,
    ``M_fg``, ``M_bg`` the masks of :class:`~mmkd.task_modules.FocalRegion`
    (the ground-truth boxes, scale-normalised), ``S``, ``A`` the spatial and
    channel attention (:func:`attention`, temperature ``temp``) and
    ``R_S``, ``R_T`` two learnt GcBlocks (:class:`GlobalContextBlock`):

        L_fg   = sum M_fg · S_T · A_T · (F_S − F_T)² / N
        L_bg   = sum M_bg · S_T · A_T · (F_S − F_T)² / N
        L_at   = (sum |A_S − A_T| + sum |S_S − S_T|) / N
        L_rela = sum (R_S(F_S) − R_T(F_T))² / N
        L      = loss_weight · (α L_fg + β L_bg + γ L_at + λ L_rela)

    (sums over the batch, channels and locations). Both feature terms weigh
    with the teacher's attention, as the paper and the official code do;
    the teacher's GcBlock learns too (its input is the fixed teacher
    feature). The align layer and the two GcBlocks are learnt with the
    student, one set per level (the official configs give every FPN level
    its own loss), and are not part of the exported student. The levels of
    a multi-level tap are summed, as the official configs' one loss per
    level.

    Exact to the official code (yzd-v/FGD, ``FeatureLoss``) but for: boxes
    scaled by the padded batch input size (see
    :class:`~mmkd.task_modules.FocalRegion`), the teacher detached, and
    ``loss_weight`` (1 is the official loss) multiplying the whole.

    Official settings (2x schedules, gradient clipping 35): RetinaNet
    (P3-P7) ``temp=0.5, alpha=1e-3, beta=5e-4, gamma=5e-4,
    lambda_rela=5e-6``; Faster R-CNN (P2-P5, P6 not distilled) ``alpha=5e-5,
    beta=2.5e-5, gamma=5e-5, lambda_rela=5e-7``.

    The loss needs the ground-truth boxes:
    ``extra_inputs=dict(data_samples='data_samples')``.

    Args:
        student_channels (int): Channels of the student map.
        teacher_channels (int): Channels of the teacher map.
        temp (float): The attention's temperature ``T``. Defaults to 0.5.
        alpha (float): Weight of the foreground term. Defaults to 1e-3.
        beta (float): Weight of the background term. Defaults to 5e-4.
        gamma (float): Weight of the attention term. Defaults to 1e-3 (the
            official default; its RetinaNet config uses 5e-4).
        lambda_rela (float): Weight of the global term. Defaults to 5e-6.
        loss_weight (float): Multiplier of the whole loss. Defaults to 1.0.
        num_levels (int): Levels of the tap. Defaults to 1.
        level_reduction (str, optional): ``'sum'`` (default, official) or
            ``'mean'`` over the levels.
    """

    def __init__(self,
                 student_channels: int,
                 teacher_channels: int,
                 temp: float = 0.5,
                 alpha: float = 1e-3,
                 beta: float = 5e-4,
                 gamma: float = 1e-3,
                 lambda_rela: float = 5e-6,
                 loss_weight: float = 1.0,
                 num_levels: int = 1,
                 level_reduction: Optional[str] = None) -> None:
        super().__init__(student_channels, teacher_channels, num_levels,
                         level_reduction)
        owner = 'FGDLoss'
        self.temp = check_number(
            temp, 'temp', low=0, low_open=True, owner=owner,
            hint='It is the attention temperature (official: 0.5).')
        for key, value in (('alpha', alpha), ('beta', beta),
                           ('gamma', gamma), ('lambda_rela', lambda_rela)):
            setattr(self, key, check_number(
                value, key, low=0, owner=owner,
                hint='It weighs one of the four terms (0 switches it off).'))
        self.loss_weight = loss_weight
        self.region = FocalRegion()
        self.relation_student = nn.ModuleList(
            GlobalContextBlock(teacher_channels)
            for _ in range(self.num_levels))
        self.relation_teacher = nn.ModuleList(
            GlobalContextBlock(teacher_channels)
            for _ in range(self.num_levels))

    def forward_level(self, student: Tensor, teacher: Tensor, level: int,
                      data_samples: Sequence) -> Tensor:
        """The FGD loss of one pair of maps.

        Args:
            student (Tensor): ``(N, C_s, H, W)`` student feature.
            teacher (Tensor): ``(N, C_t, H, W)`` teacher feature.
            level (int): The level (its align layer and GcBlocks).
            data_samples (Sequence): mmdet data samples of the batch: their
                ``gt_instances.bboxes`` and ``batch_input_shape``.

        Returns:
            Tensor: Scalar loss, multiplied by ``loss_weight``.
        """
        self.check_level_pair(student, teacher)
        if len(data_samples) != student.shape[0]:
            raise ValueError(
                f'FGDLoss: {len(data_samples)} data samples for a batch of '
                f"{student.shape[0]}; give extra_inputs=dict(data_samples="
                "'data_samples').")
        n = student.shape[0]
        with fp32_math(self.align[level](student), teacher.detach()) as (
                feat_s, feat_t):
            return self._level_loss(feat_s, feat_t, level, data_samples, n)

    def diagnostic_regions(self, student: MultiLevel, teacher: MultiLevel,
                           data_samples: Sequence) -> Dict[str, List[Tensor]]:
        """FGD's foreground on each level (see
        :mod:`mmkd.engine.diagnostics.regions`), from the arguments of
        :meth:`forward`.

        Returns:
            dict: ``'foreground'`` -> one ``(N, H, W)`` bool mask per level
            (``M_fg > 0``).
        """
        input_size = data_samples[0].metainfo['batch_input_shape']
        masks = []
        for feat in as_levels(student, 'FGDLoss student maps'):
            fg, _ = self.region(
                [s.gt_instances.bboxes.to(feat.device) for s in data_samples],
                feat.shape[-2:], input_size)
            masks.append(fg > 0)
        return dict(foreground=masks)

    def _level_loss(self, feat_s: Tensor, feat_t: Tensor, level: int,
                    data_samples: Sequence, n: int) -> Tensor:
        """The weighted loss of one level from the aligned fp32 maps."""
        fg, bg = self.region(
            [s.gt_instances.bboxes.to(feat_s.device) for s in data_samples],
            feat_s.shape[-2:], data_samples[0].metainfo['batch_input_shape'])
        spatial_t, channel_t = attention(feat_t, self.temp)
        spatial_s, channel_s = attention(feat_s, self.temp)
        # S_T · A_T · (F_S − F_T)², summed by mask
        weight = spatial_t[:, None] * channel_t[:, :, None, None]
        sq_diff = weight * (feat_s - feat_t).pow(2)
        loss_fg = (sq_diff * fg[:, None]).sum() / n
        loss_bg = (sq_diff * bg[:, None]).sum() / n
        loss_at = ((channel_s - channel_t).abs().sum() +
                   (spatial_s - spatial_t).abs().sum()) / n
        loss_rela = (self.relation_student[level](feat_s) -
                     self.relation_teacher[level](feat_t)).pow(2).sum() / n
        loss = (self.alpha * loss_fg + self.beta * loss_bg +
                self.gamma * loss_at + self.lambda_rela * loss_rela)
        return loss * self.loss_weight
