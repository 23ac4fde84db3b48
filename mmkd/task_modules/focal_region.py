"""FGD's foreground and background masks (Yang et al., "Focal and Global
Knowledge Distillation for Detectors", CVPR 2022, Sec. 3.1): a box-based
region of a detector's feature map, as FGFI's imitation region is."""
from typing import Sequence, Tuple

import torch
from torch import Tensor

from mmkd.registry import TASK_UTILS


@TASK_UTILS.register_module()
class FocalRegion:
    """The scale-normalised foreground mask and the background mask of one
    feature level, for a batch of images (boxes and a feature size in, two
    ``(N, H, W)`` float masks out; no model).

    For each image, every ground-truth box ``[x1, y1, x2, y2]`` (input
    pixels) is scaled to the ``H×W`` map: ``x' = x / W_in · W``, ``y' = y /
    H_in · H``, and covers the cells ``floor(y1') .. ceil(y2')`` ×
    ``floor(x1') .. ceil(x2')`` (both ends included, cut at the map's
    border), each with the value ``1 / ((ceil(y2') + 1 − floor(y1')) ·
    (ceil(x2') + 1 − floor(x1')))``; where boxes overlap the larger value,
    i.e. the smaller box, wins:

        M_fg[i, j] = max over the boxes covering (i, j) of 1 / area
        M_bg[i, j] = 1[M_fg = 0] / sum 1[M_fg = 0]   (0 where all is
                                                      foreground)

    so that every box, small or large, weighs about 1 in the loss, and the
    background as a whole weighs 1. Every box is put on every level (no
    scale assignment), as the official code does.

    The one deviation from the official code (yzd-v/FGD, ``FeatureLoss``):
    boxes are scaled by the padded batch input size (``batch_input_shape``,
    i.e. the level's stride) where the official code divides by the
    unpadded ``img_shape`` and multiplies by the padded map's size, which
    stretches the boxes of an image padded into a larger batch. For a batch
    without padding the two are the same.
    """

    def __call__(self, boxes: Sequence[Tensor], feat_size: Sequence[int],
                 input_size: Sequence[int]) -> Tuple[Tensor, Tensor]:
        """Args:
            boxes (Sequence[Tensor]): Per image, ``(G_i, 4)`` boxes ``x1,
                y1, x2, y2`` in input pixels (any ``G_i``, 0 included).
            feat_size (Sequence[int]): ``(H, W)`` of the level.
            input_size (Sequence[int]): ``(H_in, W_in)``, the batch's padded
                input size.

        Returns:
            tuple[Tensor, Tensor]: ``M_fg`` and ``M_bg``, each ``(N, H, W)``
            float32, on the boxes' device.
        """
        h, w = (int(v) for v in feat_size)
        h_in, w_in = (int(v) for v in input_size)
        device = boxes[0].device if len(boxes) else torch.device('cpu')
        fg = torch.zeros((len(boxes), h, w), device=device)
        for i, image_boxes in enumerate(boxes):
            # float32 arithmetic in the official order: x / W_in * W
            b = image_boxes.detach().float()
            w_min = torch.floor(b[:, 0] / w_in * w).int().tolist()
            w_max = torch.ceil(b[:, 2] / w_in * w).int().tolist()
            h_min = torch.floor(b[:, 1] / h_in * h).int().tolist()
            h_max = torch.ceil(b[:, 3] / h_in * h).int().tolist()
            for y0, y1, x0, x1 in zip(h_min, h_max, w_min, w_max):
                area = 1.0 / ((y1 + 1 - y0) * (x1 + 1 - x0))
                # max(cells, area): the smaller box wins
                fg[i, max(y0, 0):y1 + 1, max(x0, 0):x1 + 1].clamp_(min=area)
        background = (fg == 0).float()
        count = background.sum(dim=(1, 2), keepdim=True)
        bg = background / count.clamp(min=1)
        return fg, bg
