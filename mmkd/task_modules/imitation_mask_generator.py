"""The FGFI imitation-region estimator (Wang et al., CVPR 2019, Sec. 3.1)."""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from mmkd.registry import TASK_UTILS
from mmkd.utils.config_checks import (ConfigValueError, check_number,
                                      check_positive_int, describe)

#: One stride per level: an int, or ``(stride_w, stride_h)`` as in mmdet's
#: ``AnchorGenerator.strides``.
StrideType = Union[int, Tuple[int, int]]


@TASK_UTILS.register_module()
class ImitationMaskGenerator:
    """Compute the fine-grained imitation mask of an image from its ground
    truth boxes and the student's anchors.

    For each ground-truth box the locations whose anchors overlap it well,
    relative to the best-overlapping anchor, are kept; the image's mask is the
    union over boxes. The algorithm, for one image:

    1. For every gt box ``g`` and every anchor ``a`` of every level (all
       anchors, including those crossing the image border, as the official
       code does), compute ``IoU(g, a)`` with :func:`mmcv.ops.bbox_overlaps`
       (``mode='iou'``, ``offset=0``: areas are ``(x2 - x1) * (y2 - y1)``).
    2. ``M_g`` = the largest of these IoUs: over the anchors of all levels
       (``max_iou_scope='all'``) or over the anchors of each level separately
       (``max_iou_scope='level'``).
    3. Threshold ``F_g = psi * M_g``; keep the anchors with ``IoU > F_g``
       (strict, as in the official code).
    4. A location is kept for ``g`` when any of its ``K`` anchors is kept.
    5. The image's mask is the OR of the masks of all boxes.

    Consequences of the strict comparison: ``psi = 1`` keeps nothing;
    ``psi = 0`` keeps every location one of whose anchors overlaps some box;
    a box with ``M_g = 0`` (outside the image, or overlapping no anchor)
    contributes nothing (``IoU > 0`` holds for no anchor), and so does a box of
    zero width or height (its IoU is 0 with every anchor). An anchor whose IoU
    equals ``psi * M_g`` exactly is not kept.

    Why ``'all'`` is the default: FGFI's region is "the anchors that fit this
    object well". The official code (single level) takes ``M`` over every
    anchor the RPN has. On an FPN, taking ``M`` per level would give every
    box a region on every level, even on levels whose anchors are far from
    its scale (a 20-pixel box against the 512-pixel anchors of the stride-64
    level, scale 8, has a best IoU of about 0.0015, and half of that keeps
    every anchor it touches): that is mostly background, which is what the
    method avoids. With ``'all'`` a box is imitated on the levels whose
    anchors match its scale, as FPN's own assignment does, and keeps far
    fewer locations than ``'level'`` (measured: docs/benchmarks.md).
    ``'level'`` is offered for comparison.

    Note:
        Memory: the IoUs are computed for a chunk of ``box_chunk_size`` boxes
        at a time (vectorised over the boxes of a chunk and all anchors; no
        Python loop over boxes), so memory does not grow with the number of
        boxes in an image. Per chunk the extra memory is about
        ``box_chunk_size * (A_max + sum_l H_l W_l) * 4`` bytes, ``A_max``
        being the largest level's anchor count: the IoUs of one level, plus,
        per level, the best IoU over the ``K`` anchors of each location (kept
        for all levels of the chunk, because with ``'all'`` the maximum over
        all levels must be known before any level is thresholded). For an
        800x1333 input (padded to 800x1344), 5 FPN levels (strides 4 to 64)
        and ``K = 3``: about 1.2 MB per box, 19 MB for the default 16 boxes.
        mmcv's CUDA kernel writes the IoUs directly; its CPU kernel builds
        ``(B, A, 2)`` temporaries with torch ops, several times more per box
        of a chunk (measured: docs/benchmarks.md).

    Args:
        psi (float): The threshold factor ``psi`` in ``[0, 1]``; the paper
            uses 0.5. Defaults to 0.5.
        max_iou_scope (str): ``'all'`` (``M`` over all levels) or
            ``'level'`` (``M`` per level). Defaults to ``'all'``.
        box_chunk_size (int): Boxes processed at once; bounds the memory
            (see the note). Defaults to 16.
    """

    def __init__(self,
                 psi: float = 0.5,
                 max_iou_scope: str = 'all',
                 box_chunk_size: int = 16) -> None:
        owner = 'ImitationMaskGenerator'
        self.psi = check_number(
            psi, 'psi', low=0, high=1, owner=owner,
            hint='psi scales the best IoU of each box into the threshold '
            'of its region (the paper uses 0.5).')
        if max_iou_scope not in ('all', 'level'):
            raise ConfigValueError('max_iou_scope', "'all' or 'level'",
                                   describe(max_iou_scope), owner=owner)
        self.max_iou_scope = max_iou_scope
        self.box_chunk_size = check_positive_int(
            box_chunk_size, 'box_chunk_size', owner=owner,
            hint='It bounds the memory (boxes per IoU chunk; default 16).')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(psi={self.psi}, '
                f'max_iou_scope={self.max_iou_scope!r}, '
                f'box_chunk_size={self.box_chunk_size})')

    def __call__(self, gt_bboxes: Tensor, anchors: Sequence[Tensor],
                 featmap_sizes: Sequence[Sequence[int]]) -> List[Tensor]:
        """Compute one image's imitation mask on every level.

        Args:
            gt_bboxes (Tensor): ``(G, 4)`` ground-truth boxes, ``x1, y1, x2,
                y2`` in the coordinates of the anchors (the network input);
                mmdet's ``HorizontalBoxes`` are accepted too. ``G`` may be 0.
            anchors (Sequence[Tensor]): One ``(H_l * W_l * K_l, 4)`` tensor per
                level, in the order of mmdet's ``AnchorGenerator.grid_priors``
                (location-major: row ``(y * W_l + x) * K_l + k``).
            featmap_sizes (Sequence[Sequence[int]]): ``(H_l, W_l)`` per level.

        Returns:
            list[Tensor]: One ``(H_l, W_l)`` bool mask per level, on the
            anchors' device; all False when there are no boxes.
        """
        from mmcv.ops import bbox_overlaps

        sizes = self._check_levels(anchors, featmap_sizes)
        device = anchors[0].device if len(anchors) else gt_bboxes.device
        hits = [
            torch.zeros(h * w, dtype=torch.bool, device=device)
            for h, w, _ in sizes
        ]
        boxes = self._check_boxes(gt_bboxes)
        if boxes.numel():
            boxes = boxes.to(device=device, dtype=torch.float32)
            # Zero-area boxes have IoU 0 with every anchor (M = 0): they keep
            # nothing, and dropping them avoids 0/0 with a zero-area anchor.
            wh = boxes[:, 2:] - boxes[:, :2]
            boxes = boxes[(wh > 0).all(dim=1)]
        levels = [(lvl, a.to(torch.float32), h * w, k)
                  for lvl, (a, (h, w, k)) in enumerate(zip(anchors, sizes))
                  if h * w > 0]
        for start in range(0, boxes.shape[0], self.box_chunk_size):
            chunk = boxes[start:start + self.box_chunk_size]
            num = chunk.shape[0]
            # Per level: (B, H*W), the best IoU over the K anchors of each
            # location; "some anchor > F" is "the best anchor > F".
            loc_best = []
            for lvl, level_anchors, hw, k in levels:
                ious = bbox_overlaps(chunk, level_anchors, mode='iou')
                best = ious.view(num, hw, k).amax(dim=2)
                if self.max_iou_scope == 'level':
                    thr = self.psi * best.amax(dim=1, keepdim=True)
                    hits[lvl] |= (best > thr).any(dim=0)
                else:
                    loc_best.append((lvl, best))
            if self.max_iou_scope == 'all' and loc_best:
                max_iou = torch.stack(
                    [best.amax(dim=1) for _, best in loc_best]).amax(dim=0)
                thr = self.psi * max_iou[:, None]
                for lvl, best in loc_best:
                    hits[lvl] |= (best > thr).any(dim=0)
        return [hit.view(h, w) for hit, (h, w, _) in zip(hits, sizes)]

    def generate_batch(
            self,
            batch_gt_bboxes: Sequence[Tensor],
            anchors: Sequence[Tensor],
            featmap_sizes: Sequence[Sequence[int]],
            valid_masks: Optional[Sequence[Tensor]] = None) -> List[Tensor]:
        """Compute the imitation masks of a batch of images.

        The anchors are shared by the batch (mmdet generates them for the
        padded batch input). Locations that are padding for an image are
        cleared with ``valid_masks`` (see :func:`valid_location_masks`).

        Args:
            batch_gt_bboxes (Sequence[Tensor]): ``N`` tensors ``(G_n, 4)``
                (e.g. ``[s.gt_instances.bboxes for s in data_samples]``).
            anchors (Sequence[Tensor]): As in :meth:`__call__`.
            featmap_sizes (Sequence[Sequence[int]]): As in :meth:`__call__`.
            valid_masks (Sequence[Tensor], optional): One ``(N, H_l, W_l)``
                bool tensor per level, False where a location is outside the
                image. Defaults to None (every location valid).

        Returns:
            list[Tensor]: One ``(N, H_l, W_l)`` bool mask per level.
        """
        per_image = [
            self(gt_bboxes, anchors, featmap_sizes)
            for gt_bboxes in batch_gt_bboxes
        ]
        num_levels = len(featmap_sizes)
        if per_image:
            masks = [
                torch.stack([image[lvl] for image in per_image])
                for lvl in range(num_levels)
            ]
        else:
            device = anchors[0].device if len(anchors) else None
            masks = [
                torch.zeros((0, int(h), int(w)),
                            dtype=torch.bool,
                            device=device) for h, w in featmap_sizes
            ]
        if valid_masks is None:
            return masks
        if len(valid_masks) != num_levels:
            raise ValueError(
                f'ImitationMaskGenerator.generate_batch: valid_masks has '
                f'{len(valid_masks)} levels but featmap_sizes has '
                f'{num_levels}; give one (N, H, W) mask per level.')
        for lvl, (mask, valid) in enumerate(zip(masks, valid_masks)):
            if tuple(valid.shape) != tuple(mask.shape):
                raise ValueError(
                    f'ImitationMaskGenerator.generate_batch: valid_masks['
                    f'{lvl}] has shape {tuple(valid.shape)}, expected '
                    f'{tuple(mask.shape)} (N images, H, W of level {lvl}).')
        return [
            mask & valid.to(device=mask.device, dtype=torch.bool)
            for mask, valid in zip(masks, valid_masks)
        ]

    @staticmethod
    def _check_boxes(gt_bboxes: Tensor) -> Tensor:
        """Validate ``(G, 4)`` xyxy boxes and return them as a tensor."""
        from mmdet.structures.bbox import get_box_tensor
        gt_bboxes = get_box_tensor(gt_bboxes)  # mmdet's HorizontalBoxes
        if not isinstance(gt_bboxes, Tensor):
            raise TypeError(
                'ImitationMaskGenerator gt_bboxes: expected a (G, 4) Tensor, '
                f'found {type(gt_bboxes)}.')
        if gt_bboxes.numel() == 0:
            return gt_bboxes.reshape(0, 4)
        if gt_bboxes.dim() != 2 or gt_bboxes.shape[1] != 4:
            raise ValueError(
                'ImitationMaskGenerator gt_bboxes: expected shape (G, 4) in '
                f'x1, y1, x2, y2 order, found {tuple(gt_bboxes.shape)}.')
        bad = (gt_bboxes[:, 2] < gt_bboxes[:, 0]) | (
            gt_bboxes[:, 3] < gt_bboxes[:, 1])
        if bad.any():
            index = int(bad.nonzero()[0, 0])
            raise ValueError(
                'ImitationMaskGenerator gt_bboxes: boxes must be x1, y1, x2, '
                f'y2 with x2 >= x1 and y2 >= y1, found box {index} = '
                f'{gt_bboxes[index].tolist()}. Convert cxcywh/xywh boxes to '
                'xyxy first.')
        return gt_bboxes

    @staticmethod
    def _check_levels(
            anchors: Sequence[Tensor],
            featmap_sizes: Sequence[Sequence[int]]
    ) -> List[Tuple[int, int, int]]:
        """Validate the anchors against the feature sizes.

        Returns:
            list[tuple[int, int, int]]: ``(H_l, W_l, K_l)`` per level.
        """
        if len(anchors) != len(featmap_sizes):
            raise ValueError(
                f'ImitationMaskGenerator: {len(anchors)} anchor levels but '
                f'{len(featmap_sizes)} featmap_sizes; give one (H, W) per '
                'level of anchors.')
        sizes = []
        for lvl, (level_anchors, size) in enumerate(zip(anchors,
                                                        featmap_sizes)):
            h, w = (int(s) for s in size)
            if level_anchors.dim() != 2 or level_anchors.shape[1] != 4:
                raise ValueError(
                    f'ImitationMaskGenerator anchors[{lvl}]: expected shape '
                    f'(H*W*K, 4), found {tuple(level_anchors.shape)}.')
            num = level_anchors.shape[0]
            if h * w == 0:
                if num:
                    raise ValueError(
                        f'ImitationMaskGenerator: level {lvl} has an empty '
                        f'feature map {(h, w)} but {num} anchors.')
                sizes.append((h, w, 0))
                continue
            if num == 0 or num % (h * w):
                raise ValueError(
                    f'ImitationMaskGenerator: level {lvl} has {num} anchors, '
                    f'not a positive multiple of H*W = {h}*{w} = {h * w}. '
                    'The anchors must come from the same featmap_sizes '
                    '(mmdet AnchorGenerator.grid_priors(featmap_sizes)).')
            sizes.append((h, w, num // (h * w)))
        return sizes


def valid_location_masks(img_shapes: Sequence[Sequence[int]],
                         featmap_sizes: Sequence[Sequence[int]],
                         strides: Sequence[StrideType],
                         device: Union[str, torch.device, None] = None
                         ) -> List[Tensor]:
    """Per-level masks of the feature locations inside each image.

    The semantics of mmdet's ``AnchorGenerator.valid_flags``, per location:
    on a level of stride ``(s_w, s_h)`` a location ``(y, x)`` is valid for an
    image of size ``(h, w)`` when ``y < min(ceil(h / s_h), H)`` and ``x <
    min(ceil(w / s_w), W)``. Pass ``img_shape`` (the image without padding;
    the stricter choice) or ``pad_shape`` (what mmdet's anchor heads use) from
    the data samples' metainfo.

    Args:
        img_shapes (Sequence[Sequence[int]]): ``N`` shapes ``(h, w, ...)``.
        featmap_sizes (Sequence[Sequence[int]]): ``(H_l, W_l)`` per level.
        strides (Sequence[int | tuple[int, int]]): Per level, an int or
            ``(stride_w, stride_h)`` (mmdet's ``AnchorGenerator.strides``).
        device (str | torch.device, optional): Device of the masks.

    Returns:
        list[Tensor]: One ``(N, H_l, W_l)`` bool tensor per level.
    """
    if len(strides) != len(featmap_sizes):
        raise ValueError(
            f'valid_location_masks: {len(strides)} strides but '
            f'{len(featmap_sizes)} featmap_sizes; give one stride per level.')
    masks = []
    for size, stride in zip(featmap_sizes, strides):
        feat_h, feat_w = (int(s) for s in size)
        if isinstance(stride, (int, float)):
            stride_w = stride_h = stride
        else:
            stride_w, stride_h = stride[0], stride[1]
        rows = torch.arange(feat_h, device=device)
        cols = torch.arange(feat_w, device=device)
        level = []
        for shape in img_shapes:
            valid_h = min(int(math.ceil(shape[0] / stride_h)), feat_h)
            valid_w = min(int(math.ceil(shape[1] / stride_w)), feat_w)
            level.append((rows[:, None] < valid_h) & (cols[None, :] < valid_w))
        if level:
            masks.append(torch.stack(level))
        else:
            masks.append(
                torch.zeros((0, feat_h, feat_w),
                            dtype=torch.bool,
                            device=device))
    return masks
