"""Pixel-wise distillation of SKD (Liu et al., CVPR 2019, Sec. 3.1)."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from mmkd.utils.config_checks import check_choice
from .levelwise import LevelwiseLoss
from .utils import check_map_pair, check_tau, fp32_math, resize_to


@MODELS.register_module()
class PixelWiseLoss(LevelwiseLoss):
    """Every pixel's class distribution of the student imitates the teacher's.

    With ``q = softmax(logits / tau)`` over the class dimension of the
    ``(N, C, H, W)`` segmentation logits:

        KL_{n,i} = sum_c q^T_{n,c,i} (log q^T_{n,c,i} - log q^S_{n,c,i})

        reduction='mean':     L = 1 / (N·H·W) · sum_{n,i} KL_{n,i}
        reduction='official': L = 1 / (H·W)   · sum_{n,i} KL_{n,i}

    ``'mean'`` (default) is independent of the batch size. ``'official'``
    reproduces the normalisation of the official code
    (irfanICMLL/structure_knowledge_distillation, ``CriterionPixelWise``),
    which sums over the batch and divides by ``H·W`` only, so it is ``N``
    times the ``'mean'`` value.

    The official code computes the cross-entropy
    ``-sum_c softmax(T)_c · log_softmax(S)_c``. It differs from the KL by the
    teacher's entropy, which is constant for the student, so the gradients
    are the same. mmkd uses the KL form so that identical inputs give exactly
    0 and the logged value shows how far apart the two are.

    Steps:
        1. Teacher logits of another ``H×W`` are resized bilinearly to the
           student's (the paper distils at the student's 1/8 resolution).
        2. Both are divided by ``tau`` and put through ``log_softmax`` in
           fp32 with autocast off (stable for large logits).
        3. The per-pixel KL is summed over classes and reduced as above.

    The KL is taken at temperature ``tau`` as it is. It is not multiplied
    by ``tau²`` as in Hinton et al.'s KD, because SKD uses ``tau = 1``, where
    the two agree. With ``tau != 1``, the gradient scale falls roughly as
    ``1 / tau²``, so raise ``loss_weight`` to make up for it. The teacher is
    a target, so no gradient flows into it.

    Args:
        tau (float): Temperature, finite and > 0. Official: 1. Defaults to 1.0.
        loss_weight (float): Multiplier of the loss (the paper's
            ``lambda_pi = 10``). Defaults to 1.0.
        reduction (str): ``'mean'`` (over batch and pixels) or ``'official'``
            (sum over batch and pixels / (H·W)). Defaults to ``'mean'``.
        level_reduction (str, optional): A multi-level tap's levels are
            ``'sum'``-med (default: SKD distils one map; several maps are
            several losses) or averaged (``'mean'``); see
            :class:`~mmkd.models.losses.levelwise.LevelwiseLoss`.
    """

    def __init__(self,
                 tau: float = 1.0,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 level_reduction: Optional[str] = None) -> None:
        super().__init__(level_reduction)
        self.reduction = check_choice(
            reduction, 'reduction', ('mean', 'official'), 'PixelWiseLoss',
            "'official' is N times 'mean' (it divides the batch's sum by H·W "
            'only).')
        self.tau = check_tau(tau, 'PixelWiseLoss', '1 is the official value')
        self.loss_weight = loss_weight

    def forward_level(self, student_logits: Tensor, teacher_logits: Tensor,
                      level: int = 0) -> Tensor:
        """The pixel-wise distillation loss of one pair of maps.

        Args:
            student_logits (Tensor): ``(N, C, H, W)`` student logits.
            teacher_logits (Tensor): ``(N, C, H_t, W_t)`` teacher logits,
                resized to ``H×W`` when the sizes differ.
            level (int): The level's index (unused).

        Returns:
            Tensor: Scalar fp32 loss, already multiplied by ``loss_weight``.
        """
        check_map_pair(
            student_logits, teacher_logits, 'PixelWiseLoss',
            ('student_logits', 'teacher_logits'),
            same_classes='pixel-wise distillation compares class '
            'probabilities')
        h, w = student_logits.shape[-2:]
        with fp32_math(student_logits, teacher_logits.detach()) as (s, t):
            t = resize_to(t, (h, w))
            log_q_t = F.log_softmax(t / self.tau, dim=1)
            log_q_s = F.log_softmax(s / self.tau, dim=1)
            # q^T · (log q^T - log q^S); where q^T underflows to 0 the term
            # is 0 · finite = 0, so huge logits give no NaN.
            kl = (log_q_t.exp() * (log_q_t - log_q_s)).sum(dim=1)
            if self.reduction == 'mean':
                loss = kl.mean()
            else:
                loss = kl.sum() / (h * w)
        return loss * self.loss_weight
