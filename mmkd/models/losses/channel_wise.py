"""Channel-wise distillation (CWD, Shu et al., "Channel-wise Knowledge
Distillation for Dense Prediction", ICCV 2021, Sec. 3.2)."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from mmkd.utils.config_checks import check_choice, check_optional
from .levelwise import LevelwiseLoss
from .utils import check_map_pair, check_tau, fp32_math, resize_to


@MODELS.register_module()
class ChannelWiseLoss(LevelwiseLoss):
    """Each channel's spatial distribution of the student imitates the
    teacher's.

    Where SKD's :class:`PixelWiseLoss` takes a softmax over the channels
    (classes) at each location, CWD takes it over the ``H·W`` locations of
    each channel: every channel map becomes a distribution that says where
    that channel (class score, or feature) is most active. With
    ``y_{n,c}`` the map of channel ``c`` of sample ``n`` and
    ``φ(y) = softmax(y / tau)`` over the ``H·W`` locations ``i``:

        L = tau² / (N·C) · sum_{n,c} sum_i φ(y^T_{n,c})_i
            · (log φ(y^T_{n,c})_i - log φ(y^S_{n,c})_i)

    i.e. ``tau²`` times the mean over samples and channels of
    ``KL(teacher ‖ student)``. This is the paper's Eq. (4) with its ``1/C``,
    averaged over the batch as in the official code
    (irfanICMLL/TorchDistiller, ``CriterionCWD``) and MMRazor's
    ``ChannelWiseDivergence``. The ``tau²`` factor (Hinton et al.) keeps the
    gradient scale roughly independent of ``tau``; note that for
    ``tau != 1`` this differs from :class:`PixelWiseLoss`, which has no
    ``tau²``.

    Steps:
        1. A teacher map of another ``H×W`` is resized bilinearly to the
           student's.
        2. Both are divided by ``tau`` and put through ``log_softmax`` over
           the flattened ``H·W`` locations, in fp32 with autocast off
           (stable for activations of any size).
        3. The KL of each channel is summed over locations, then summed over
           channels and samples and divided by ``N·C``, times ``tau²``.

    The channel counts must match: channel ``c`` of the student imitates
    channel ``c`` of the teacher. For logits both predict the same classes;
    for features, a connector (the paper: a 1×1 convolution) maps the
    student's channels to the teacher's first. A 1×1 map gives every
    channel a one-point distribution, so the loss is 0 there. The teacher
    is a target, so no gradient flows into it.

    Memory: the fp32 log-probabilities of both maps, ``2·N·C·H·W`` floats
    (plus their autograd buffers), e.g. 64 MiB for 512 channels of a
    64×128 map with N = 2.

    Args:
        tau (float): Temperature, finite and > 0. The paper and MMRazor's
            Cityscapes reproduction use 1 on the logits. Defaults to 1.0.
        loss_weight (float): Multiplier of the loss (MMRazor's Cityscapes
            PSPNet reproduction: 5). Defaults to 1.0.
        normalize (str, optional): ``'batch'``: each channel of both maps
            is standardised over the batch's samples and locations first
            (zero mean, unit variance: a BatchNorm without affine
            parameters or running statistics, eps 1e-5), as mmyolo's RTMDet
            distillation does to the neck features (its ``NormConnector``
            on the teacher, a normalising connector on the student); the
            teacher is standardised before any resize. None (default):
            the maps as they are.
        level_reduction (str, optional): How the levels of a multi-level tap
            (e.g. a detector's classification head on every FPN level)
            combine: ``'sum'`` (default; MMRazor's CWD detection configs
            give one loss per level, each with the full weight) or
            ``'mean'``; see
            :class:`~mmkd.models.losses.levelwise.LevelwiseLoss`.
    """

    def __init__(self,
                 tau: float = 1.0,
                 loss_weight: float = 1.0,
                 normalize: Optional[str] = None,
                 level_reduction: Optional[str] = None) -> None:
        super().__init__(level_reduction)
        self.tau = check_tau(tau, 'ChannelWiseLoss',
                             '1 is the published value on the logits')
        self.loss_weight = loss_weight
        self.normalize = check_optional(
            check_choice, normalize, 'normalize', ('batch', ),
            owner='ChannelWiseLoss',
            hint="'batch' standardises each channel over the batch first.")

    def forward_level(self, student: Tensor, teacher: Tensor,
                      level: int = 0) -> Tensor:
        """The channel-wise distillation loss of one pair of maps.

        Args:
            student (Tensor): ``(N, C, H, W)`` student logits or features
                (after the connector, if any).
            teacher (Tensor): ``(N, C, H_t, W_t)`` teacher logits or
                features, resized to ``H×W`` when the sizes differ.
            level (int): The level's index (unused).

        Returns:
            Tensor: Scalar fp32 loss, already multiplied by ``loss_weight``.
        """
        c_s, _ = check_map_pair(
            student, teacher, 'ChannelWiseLoss', same_channels='channel c of '
            'the student imitates channel c of the teacher')
        n_s, _, h, w = student.shape
        with fp32_math(student, teacher.detach()) as (s, t):
            if self.normalize == 'batch':
                s, t = standardise(s), standardise(t)
            t = resize_to(t, (h, w))
            # one distribution over the H·W locations per (sample, channel)
            log_p_t = F.log_softmax(t.flatten(2) / self.tau, dim=2)
            log_p_s = F.log_softmax(s.flatten(2) / self.tau, dim=2)
            # p^T · (log p^T - log p^S); where p^T underflows to 0 the term
            # is 0 · finite = 0, so huge activations give no NaN.
            kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum()
            loss = kl * self.tau**2 / (n_s * c_s)
        return loss * self.loss_weight


def standardise(x: Tensor) -> Tensor:
    """``(N, C, H, W)`` with each channel at zero mean and unit variance
    over ``N·H·W`` (biased variance, eps 1e-5: ``BatchNorm2d(C,
    affine=False, track_running_stats=False)`` in training)."""
    return F.batch_norm(x, None, None, training=True, eps=1e-5)
