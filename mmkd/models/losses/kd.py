"""Classic output distillation (Hinton et al., 2015) for dense predictors."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from mmkd.taps import MultiLevel
from mmkd.utils.config_checks import (ConfigValueError, check_optional,
                                      check_positive_int, describe)
from .utils import check_tau, fp32_math, level_pairs


@MODELS.register_module()
class KDLoss(nn.Module):
    """Knowledge distillation on classification logits.

    Softmax classifiers (default): with ``p^T = softmax(z^T / tau)`` and
    ``p^S = softmax(z^S / tau)`` over the class dimension,

        L = tau^2 * mean_samples KL(p^T || p^S)
          = tau^2 * mean_samples sum_c p^T_c (log p^T_c - log p^S_c)

    where a sample is one class-probability vector (one row of an ``(M, C)``
    input, one location (and anchor) of a dense map). ``tau^2`` keeps the
    gradient scale independent of ``tau`` (Hinton et al.).

    Sigmoid classifiers (``use_sigmoid=True``, e.g. RetinaNet): every logit is
    its own binary problem with ``p^T = sigmoid(z^T / tau)`` as soft target:

        L = tau^2 * mean_logits [p^T (log p^T - log p^S)
                                 + (1 - p^T) (log(1 - p^T) - log(1 - p^S))]

    the binary KL, i.e. the BCE with soft targets minus the teacher's entropy
    (same gradient; 0 when the two agree).

    Multi-level inputs (one map per FPN level) are averaged over all samples
    of all levels together. The teacher is a target (no gradient into it).
    Computed in fp32 with autocast off; stable for huge logits (log-softmax /
    softplus forms).

    Args:
        tau (float): Temperature, finite and > 0. Defaults to 1.0.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        class_dim (int): The dimension holding the classes: -1 for ``(M, C)``
            (default), 1 for dense maps ``(N, C, H, W)``.
        use_sigmoid (bool): Sigmoid classifier (binary KL per logit) instead
            of softmax. Defaults to False.
        num_classes (int, optional): For softmax dense maps of several anchors
            per location, ``(N, K*C, H, W)`` in mmdet's layout (channel
            ``k * C + c``): the class dimension is split into ``K`` groups of
            ``num_classes`` and the softmax taken within each group. Defaults
            to None (the whole class dimension is one distribution). Ignored
            with ``use_sigmoid``.
    """

    def __init__(self,
                 tau: float = 1.0,
                 loss_weight: float = 1.0,
                 class_dim: int = -1,
                 use_sigmoid: bool = False,
                 num_classes: Optional[int] = None) -> None:
        super().__init__()
        self.tau = check_tau(tau, 'KDLoss', '1 leaves the logits unchanged')
        self.num_classes = check_optional(
            check_positive_int, num_classes, 'num_classes', owner='KDLoss',
            hint='Give the classes per anchor of an (N, K*C, H, W) map, '
            'or None when the class dimension is one distribution.')
        if not isinstance(class_dim, int) or isinstance(class_dim, bool):
            raise ConfigValueError(
                'class_dim', 'an int', describe(class_dim),
                'Use -1 for (M, C) logits, 1 for (N, C, H, W) maps.',
                owner='KDLoss')
        self.loss_weight = loss_weight
        self.class_dim = class_dim
        self.use_sigmoid = use_sigmoid

    def forward(self, student_logits: MultiLevel,
                teacher_logits: MultiLevel) -> Tensor:
        """Compute the distillation loss.

        Args:
            student_logits (Tensor | Sequence[Tensor]): ``(..., C)``, or
                ``(N, C, H, W)`` / ``(N, K*C, H, W)`` with ``class_dim=1``; or
                one such tensor per level.
            teacher_logits (Tensor | Sequence[Tensor]): Same structure and
                shapes as ``student_logits``.

        Returns:
            Tensor: The scalar loss, multiplied by ``loss_weight``.
        """
        students, teachers = level_pairs(
            student_logits, teacher_logits, 'KDLoss',
            ('student_logits', 'teacher_logits'))
        total = None
        count = 0
        for lvl, (student, teacher) in enumerate(zip(students, teachers)):
            if student.shape != teacher.shape:
                raise ValueError(
                    f'KDLoss level {lvl}: student logits '
                    f'{tuple(student.shape)} and teacher logits '
                    f'{tuple(teacher.shape)} differ; both must have the same '
                    'shape (same classes, anchors and map size).')
            if student.dim() == 0:
                raise ValueError(
                    f'KDLoss level {lvl}: expected logits with a class '
                    'dimension, found a 0-d tensor.')
            with fp32_math(student, teacher.detach()) as (s, t):
                s = s / self.tau
                t = t / self.tau
                if self.use_sigmoid:
                    level_sum = self._binary_kl(s, t).sum()
                    count += s.numel()
                else:
                    s, t = self._classes_last(s, lvl), self._classes_last(
                        t, lvl)
                    log_p_s = F.log_softmax(s, dim=-1)
                    log_p_t = F.log_softmax(t, dim=-1)
                    level_sum = (log_p_t.exp() * (log_p_t - log_p_s)).sum()
                    count += s.numel() // max(s.shape[-1], 1)
            total = level_sum if total is None else total + level_sum
        loss = total * (self.tau**2) / max(count, 1)
        return self.loss_weight * loss

    @staticmethod
    def _binary_kl(s: Tensor, t: Tensor) -> Tensor:
        """Elementwise KL(Bernoulli(sigmoid(t)) || Bernoulli(sigmoid(s)))."""
        p_t = torch.sigmoid(t)
        # log sigmoid(x) = -softplus(-x); log(1 - sigmoid(x)) = -softplus(x).
        return (p_t * (F.softplus(-s) - F.softplus(-t)) + (1 - p_t) *
                (F.softplus(s) - F.softplus(t)))

    def _classes_last(self, x: Tensor, lvl: int) -> Tensor:
        """Move the class dimension last, split into anchor groups if asked."""
        x = x.movedim(self.class_dim, -1)
        if self.num_classes is None:
            return x
        size = x.shape[-1]
        if size % self.num_classes:
            raise ConfigValueError(
                'num_classes', f'a divisor of the {size} channels of the '
                f'class dimension (dim {self.class_dim}) at level {lvl}',
                repr(self.num_classes),
                'The class dimension has K*C channels: C classes for each '
                'of K anchors.', owner='KDLoss')
        return x.reshape(*x.shape[:-1], size // self.num_classes,
                         self.num_classes)
