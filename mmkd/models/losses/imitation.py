"""FGFI's fine-grained feature imitation loss (Wang et al., CVPR 2019)."""
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mmkd.registry import MODELS
from mmkd.taps import MultiLevel, as_levels
from .utils import check_dims, fp32_math, level_pairs


@MODELS.register_module()
class ImitationLoss(nn.Module):
    """Masked L2 imitation of the teacher's features (FGFI, Eq. 2).

    With ``s`` the (adapted) student feature, ``t`` the teacher's, ``I`` the
    imitation mask and ``N_p = sum I`` the number of mask locations over the
    batch and all levels:

        L = 1 / (2 N_p) * sum_levels sum_{n,i,j} I_nij sum_c (s - t)_ncij^2

    The student must already have the teacher's channels (the FGFI
    adaptation layer, :class:`mmkd.models.connectors.ConvConnector`). The
    teacher is a target: no gradient flows into it. When the mask is empty
    (``N_p = 0``) the loss is exactly 0, still attached to the student's
    graph. Computed in fp32 with autocast off.

    Args:
        loss_weight (float): Multiplier of the loss (``lambda``; the official
            code uses 0.01). Defaults to 1.0.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student_feats: MultiLevel, teacher_feats: MultiLevel,
                masks: MultiLevel) -> Tensor:
        """Compute the imitation loss.

        Args:
            student_feats (Tensor | Sequence[Tensor]): ``(N, C, H, W)`` or one
                such map per level, after the adaptation layer.
            teacher_feats (Tensor | Sequence[Tensor]): Same structure and
                shapes as ``student_feats``.
            masks (Tensor | Sequence[Tensor]): ``(N, H, W)`` per level, bool
                or 0/1 (e.g. from ``ImitationMaskGenerator.generate_batch``
                in :mod:`mmkd.task_modules`).

        Returns:
            Tensor: The scalar loss, multiplied by ``loss_weight``.
        """
        students, teachers, level_masks = self._check_inputs(
            student_feats, teacher_feats, masks)
        total = None
        num_pos = None
        for student, teacher, mask in zip(students, teachers, level_masks):
            with fp32_math(student, teacher.detach(),
                           mask.to(student.device)) as (s, t, m):
                sq_dist = (s - t).pow(2).sum(dim=1)  # (N, H, W)
                level_total = (sq_dist * m).sum()
                level_pos = m.sum()
            total = level_total if total is None else total + level_total
            num_pos = level_pos if num_pos is None else num_pos + level_pos
        # An empty mask makes ``total`` exactly 0: divide by 1 instead of 0.
        denom = torch.where(num_pos > 0, num_pos, torch.ones_like(num_pos))
        return self.loss_weight * total / (2.0 * denom)

    def diagnostic_regions(self, student_feats: MultiLevel,
                           teacher_feats: MultiLevel,
                           masks: MultiLevel) -> Dict[str, List[Tensor]]:
        """The region the loss imitates (see
        :mod:`mmkd.engine.diagnostics.regions`), from the arguments of
        :meth:`forward`.

        Returns:
            dict: ``'mask'`` -> one ``(N, H, W)`` bool mask per level.
        """
        return dict(mask=[m != 0 for m in as_levels(
            masks, 'ImitationLoss masks')])

    @staticmethod
    def _check_inputs(
        student_feats: MultiLevel, teacher_feats: MultiLevel, masks: MultiLevel
    ) -> Tuple[List[Tensor], List[Tensor], List[Tensor]]:
        """Turn the inputs into per-level lists and check their shapes."""
        students, teachers = level_pairs(student_feats, teacher_feats,
                                         'ImitationLoss',
                                         ('student_feats', 'teacher_feats'))
        level_masks = as_levels(masks, 'ImitationLoss masks')
        if len(level_masks) != len(students):
            raise ValueError(
                f'ImitationLoss: {len(level_masks)} mask levels for '
                f'{len(students)} feature levels; give one (N, H, W) mask '
                'per level.')
        for lvl, (s, t, m) in enumerate(zip(students, teachers, level_masks)):
            check_dims(s, 4, f'ImitationLoss student feature (level {lvl})')
            check_dims(t, 4, f'ImitationLoss teacher feature (level {lvl})')
            if s.shape[0] != t.shape[0] or s.shape[2:] != t.shape[2:]:
                raise ValueError(
                    f'ImitationLoss level {lvl}: student feature '
                    f'{tuple(s.shape)} and teacher feature {tuple(t.shape)} '
                    'differ in batch or spatial size; imitate maps of the '
                    'same stride (or resize one of them first).')
            if s.shape[1] != t.shape[1]:
                raise ValueError(
                    f'ImitationLoss level {lvl}: the student feature has '
                    f'{s.shape[1]} channels and the teacher feature '
                    f'{t.shape[1]}; a connector must map the student\'s C_s '
                    f'= {s.shape[1]} channels to the teacher\'s C_t = '
                    f'{t.shape[1]} (e.g. ConvConnector).')
            expected = (s.shape[0], ) + tuple(s.shape[2:])
            if tuple(m.shape) != expected:
                raise ValueError(
                    f'ImitationLoss level {lvl}: expected a mask of shape '
                    f'{expected} (N, H, W of the features), found '
                    f'{tuple(m.shape)}.')
        return students, teachers, level_masks
