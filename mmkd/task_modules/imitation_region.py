"""The region of a detector's feature maps that FGFI's student imitates:
the imitation region, the ground-truth boxes, or the full feature map; and
that region over the maps of a student tap, a distiller's loss input."""
import math
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from mmkd.registry import TASK_UTILS
from mmkd.utils.config_checks import (ConfigKeyError, ConfigValueError,
                                      config_errors_under, describe)
from .imitation_mask_generator import valid_location_masks

#: The regions :class:`ImitationRegion` builds.
REGIONS = ('imitation', 'gt', 'full')


@TASK_UTILS.register_module()
class ImitationRegion:
    """Build the per-level masks of the locations a student imitates, for a
    batch of images: boxes and feature sizes in, ``(N, H_l, W_l)`` bool masks
    out (as mmdet's assigners: tensors in, a result out; no model).

    The three regions of FGFI (Wang et al., CVPR 2019), for an image padded
    into a batch of input size ``(H_pad, W_pad)``:

    - ``'imitation'`` (the method, section 3.1): the locations whose anchors
      fit a ground-truth box well (:class:`ImitationMaskGenerator`: IoU >
      ψ·max IoU, OR over the anchors of a location and over the boxes), on
      the anchors of ``anchor_generator`` for the feature sizes.
    - ``'gt'`` (the paper's G): the locations covered by the ground-truth
      boxes scaled to the level: a box ``[x1, y1, x2, y2]`` covers the cells
      ``floor(x1 / s_w) .. ceil(x2 / s_w) - 1`` and ``floor(y1 / s_h) ..
      ceil(y2 / s_h) - 1`` of stride ``(s_w, s_h)``.
    - ``'full'`` (the paper's F, hint learning): every location.

    Every region is then restricted to the locations inside each image
    (:func:`valid_location_masks` of its ``img_shape``): the padding of a
    batch is never imitated.

    Strides: the anchor generator's when there is one; otherwise (``'gt'``
    and ``'full'`` need no anchors) ``(W_pad / W_l, H_pad / H_l)`` per level.

    Args:
        region (str): ``'imitation'``, ``'gt'`` or ``'full'``. Defaults to
            ``'imitation'``.
        mask_generator (ImitationMaskGenerator | dict, optional): The
            imitation-mask generator or its config (``region='imitation'``
            only; ``type`` defaults to ``'mmkd.ImitationMaskGenerator'``).
            Defaults to ``ImitationMaskGenerator(psi=0.5)``.
        anchor_generator (AnchorGenerator | dict, optional): An mmdet anchor
            generator, or its config: the student's own anchors. Required for
            ``region='imitation'``.
    """

    def __init__(self,
                 region: str = 'imitation',
                 mask_generator: Union[Mapping, object, None] = None,
                 anchor_generator: Union[Mapping, object, None] = None
                 ) -> None:
        if region not in REGIONS:
            raise ConfigValueError('region', f'one of {REGIONS}',
                                   describe(region), owner='ImitationRegion')
        self.region = region
        if isinstance(anchor_generator, Mapping):
            from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
            anchor_generator = MMDET_TASK_UTILS.build(dict(anchor_generator))
        if region == 'imitation' and anchor_generator is None:
            raise ConfigValueError(
                'anchor_generator', "the student's anchors for "
                "region='imitation' (an mmdet AnchorGenerator or its config)",
                'nothing', "Give anchor_generator, or use region='gt' or "
                "'full'.", owner='ImitationRegion')
        self.anchor_generator = anchor_generator
        self.mask_generator = None
        if region == 'imitation':
            if mask_generator is None or isinstance(mask_generator, Mapping):
                mask_generator = self._build_mask_generator(mask_generator)
            self.mask_generator = mask_generator

    @staticmethod
    def _build_mask_generator(cfg: Optional[Mapping]) -> object:
        """The generator of ``cfg`` (of type ``mmkd.ImitationMaskGenerator``
        unless it names one); ``ImitationMaskGenerator(psi=0.5)`` without
        one. Its argument errors name ``mask_generator.<arg>``."""
        cfg = dict(cfg or {})
        kind = cfg.setdefault('type', 'mmkd.ImitationMaskGenerator')
        if isinstance(kind, str) and TASK_UTILS.get(kind) is None:
            raise ConfigKeyError(
                'mask_generator.type', 'a registered task module, e.g. '
                "'mmkd.ImitationMaskGenerator'", repr(kind),
                'Check the name, or import the module that registers it.',
                owner='ImitationRegion')
        with config_errors_under('mask_generator'):
            return TASK_UTILS.build(cfg)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(region={self.region!r}, '
                f'mask_generator={self.mask_generator!r})')

    @property
    def num_levels(self) -> Optional[int]:
        """The anchor generator's level count (None without anchors)."""
        if self.anchor_generator is None:
            return None
        return self.anchor_generator.num_levels

    def strides(self, featmap_sizes: Sequence[Sequence[int]],
                input_size: Sequence[int]) -> List[Tuple[float, float]]:
        """``(s_w, s_h)`` per level: the anchor generator's, or derived from
        the padded input size ``(H_pad, W_pad)`` without anchors."""
        if self.anchor_generator is not None:
            if self.num_levels != len(featmap_sizes):
                raise ConfigValueError(
                    'anchor_generator', f'{len(featmap_sizes)} levels, one per '
                    'feature level', f'{self.num_levels} levels (strides '
                    f'{[tuple(s) for s in self.anchor_generator.strides]})',
                    "Give the student's anchor generator (its strides are "
                    'the levels of the feature maps).',
                    owner='ImitationRegion')
            return [tuple(s) for s in self.anchor_generator.strides]
        h, w = input_size[-2:]
        return [(w / fw, h / fh) for fh, fw in featmap_sizes]

    def featmap_sizes(self, input_size: Sequence[int]) -> List[Tuple[int,
                                                                    int]]:
        """``ceil(H_pad / s_h) x ceil(W_pad / s_w)`` per anchor level: the
        feature sizes of mmdet's ResNet/FPN necks on an input padded to a
        multiple of the largest stride, for computing a region without
        running the model."""
        if self.anchor_generator is None:
            raise ConfigValueError(
                'anchor_generator', 'an anchor generator (the strides of the '
                'levels) to compute featmap_sizes', 'None',
                "Give the student's anchor generator.",
                owner='ImitationRegion')
        h, w = input_size[-2:]
        return [(int(math.ceil(h / sh)), int(math.ceil(w / sw)))
                for sw, sh in self.anchor_generator.strides]

    @torch.no_grad()
    def __call__(self,
                 batch_gt_bboxes: Sequence[Tensor],
                 featmap_sizes: Sequence[Sequence[int]],
                 img_shapes: Sequence[Sequence[int]],
                 input_size: Sequence[int],
                 device: Union[str, torch.device, None] = None
                 ) -> List[Tensor]:
        """The region of a batch, on every level.

        Args:
            batch_gt_bboxes (Sequence[Tensor]): ``N`` ``(G_n, 4)`` xyxy boxes
                in input pixels (mmdet's ``HorizontalBoxes`` accepted).
            featmap_sizes (Sequence[Sequence[int]]): ``(H_l, W_l)`` per level.
            img_shapes (Sequence[Sequence[int]]): ``N`` unpadded image shapes
                ``(h, w)`` (the data samples' ``img_shape``).
            input_size (Sequence[int]): The padded batch input ``(H_pad,
                W_pad)`` (or its full shape).
            device (str | torch.device, optional): Device of the masks.

        Returns:
            list[Tensor]: One ``(N, H_l, W_l)`` bool mask per level.
        """
        from mmdet.structures.bbox import get_box_tensor
        sizes = [(int(h), int(w)) for h, w in featmap_sizes]
        strides = self.strides(sizes, input_size)
        boxes = [get_box_tensor(b).to(device) for b in batch_gt_bboxes]
        valid = valid_location_masks(img_shapes, sizes, strides,
                                     device=device)
        if self.region == 'full':
            return valid
        if self.region == 'gt':
            return [v & m for v, m in zip(
                valid, self._box_cells(boxes, sizes, strides, device))]
        anchors = self.anchor_generator.grid_priors(sizes, device=device)
        return self.mask_generator.generate_batch(boxes, anchors, sizes,
                                                  valid)

    @staticmethod
    def _box_cells(batch_boxes: Sequence[Tensor],
                   sizes: Sequence[Tuple[int, int]],
                   strides: Sequence[Tuple[float, float]],
                   device) -> List[Tensor]:
        """Per level ``(N, H_l, W_l)``: the cells the boxes cover."""
        masks = []
        for (fh, fw), (sw, sh) in zip(sizes, strides):
            level = torch.zeros((len(batch_boxes), fh, fw), dtype=torch.bool,
                                device=device)
            for i, boxes in enumerate(batch_boxes):
                for x1, y1, x2, y2 in boxes.tolist():
                    c1 = max(int(math.floor(x1 / sw)), 0)
                    r1 = max(int(math.floor(y1 / sh)), 0)
                    c2 = min(int(math.ceil(x2 / sw)), fw)
                    r2 = min(int(math.ceil(y2 / sh)), fh)
                    level[i, r1:r2, c1:c2] = True
            masks.append(level)
        return masks


class TapRegion:
    """An :class:`ImitationRegion` over the maps of a student tap, for a
    batch: the loss input ``'imitation_masks'`` of
    :class:`~mmkd.models.distillers.DetectionDistiller`, computed in its
    step after the student's forward (the tap holds the maps then).

    Args:
        region (ImitationRegion): The region.
        taps (Mapping[str, Any]): The student's taps
            (:class:`~mmkd.taps.FeatureTaps`).
        tap (str): The tap whose maps the masks cover (``model.mask_tap``).
    """

    def __init__(self, region: ImitationRegion, taps: Mapping[str, Any],
                 tap: str) -> None:
        self.region = region
        self.taps = taps
        self.tap = tap

    @torch.no_grad()
    def __call__(self, inputs: Tensor, data_samples: list) -> Any:
        """The region of the batch ``(inputs, data_samples)`` on the tap's
        maps.

        Returns:
            Tensor | tuple[Tensor]: ``(N, H_l, W_l)`` bool per level (a
            tuple when the tap is multi-level, one tensor otherwise).
        """
        feats = self.taps[self.tap]
        single = isinstance(feats, Tensor)
        levels = [feats] if single else list(feats)
        sizes = [tuple(f.shape[-2:]) for f in levels]
        num_levels = self.region.num_levels
        if num_levels not in (None, len(sizes)):
            raise ValueError(
                f"model.mask_tap: the student tap '{self.tap}' has "
                f'{len(sizes)} levels but the anchor generator has '
                f'{num_levels}: tap the feature maps the anchors belong to '
                '(e.g. the whole neck).')
        masks = self.region(
            [s.gt_instances.bboxes for s in data_samples], sizes,
            [s.metainfo['img_shape'] for s in data_samples],
            inputs.shape[-2:], device=levels[0].device)
        return masks[0] if single else tuple(masks)
