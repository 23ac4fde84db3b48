"""FGFI: fine-grained feature imitation for detectors (Wang et al., CVPR
2019), on any number of FPN levels, batch size > 1, mixed image sizes."""
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from torch import Tensor

from mmkd.registry import MODELS, TASK_UTILS
from mmkd.task_modules import valid_location_masks
from mmkd.utils.config_checks import ConfigValueError
from .single_teacher_distiller import SingleTeacherDistiller

REGIONS = ('imitation', 'gt', 'full')


def _boxes(data_sample: Any) -> Tensor:
    boxes = data_sample.gt_instances.bboxes
    return getattr(boxes, 'tensor', boxes)


@MODELS.register_module()
class DetectionDistiller(SingleTeacherDistiller):
    """A :class:`SingleTeacherDistiller` that also provides the FGFI
    imitation region as the loss input ``'imitation_masks'``.

    The region is computed per image and per level of the student tap
    ``mask_tap`` (e.g. the FPN outputs), restricted to the locations inside
    each image (padding of a batch is never imitated):

    - ``'imitation'`` (the method, FGFI section 3.1): the anchors near each
      ground-truth box, by :class:`~mmkd.task_modules.ImitationMaskGenerator`
      (IoU > ψ·max IoU, OR over anchors of a location and over boxes). The
      anchors are the student's own (``rpn_head`` or ``bbox_head``
      ``prior_generator``) unless ``anchor_generator`` is given.
    - ``'gt'`` (the paper's G): the locations covered by the ground-truth
      boxes scaled to the level (a box ``[x1, y1, x2, y2]`` covers the cells
      ``floor(x1/s) .. ceil(x2/s) - 1`` of stride ``s``).
    - ``'full'`` (the paper's F, hint learning): every location.

    A loss asks for it with ``extra_inputs=dict(masks='imitation_masks')``,
    e.g. ``mmkd.ImitationLoss``. The warm-up of the official code (no
    imitation for 400 iterations) is ``loss_schedules=dict(imitation=
    dict(warmup=400))``.

    Args:
        mask_tap (str): Student tap whose feature maps the masks cover.
        region (str): ``'imitation'``, ``'gt'`` or ``'full'``.
        mask_generator (dict): Config of the imitation-mask generator.
            Defaults to ``ImitationMaskGenerator(psi=0.5)``.
        anchor_generator (dict, optional): An mmdet anchor generator config
            for the mask, for students without anchors (or to override).
        **kwargs: :class:`SingleTeacherDistiller` arguments.
    """

    def __init__(self,
                 mask_tap: str = 'fpn',
                 region: str = 'imitation',
                 mask_generator: Optional[Mapping] = None,
                 anchor_generator: Optional[Mapping] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if region not in REGIONS:
            raise ValueError(f'model.region: expected one of {REGIONS}, '
                             f'found {region!r}.')
        if not isinstance(mask_tap, str) or mask_tap not in self.student_taps:
            raise KeyError(
                f'model.mask_tap: no student tap named {mask_tap!r}; '
                'model.student_taps defines '
                f'{sorted(self.student_taps.paths)}.')
        self.mask_tap = mask_tap
        self.region = region
        self.prior_generator = self._find_prior_generator(anchor_generator)
        self.mask_generator = None
        if region == 'imitation':
            try:
                self.mask_generator = TASK_UTILS.build(dict(
                    mask_generator
                    or dict(type='mmkd.ImitationMaskGenerator')))
            except ConfigValueError as e:
                raise e.under('model.mask_generator') from None
            except (ValueError, TypeError) as e:
                raise type(e)(f'model.mask_generator: {e}') from None

    def _find_prior_generator(self, anchor_generator: Optional[Mapping]):
        from mmdet.models.task_modules.prior_generators import \
            AnchorGenerator
        from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
        if anchor_generator is not None:
            return MMDET_TASK_UTILS.build(dict(anchor_generator))
        for head in ('rpn_head', 'bbox_head'):
            generator = getattr(getattr(self.student, head, None),
                                'prior_generator', None)
            if isinstance(generator, AnchorGenerator):
                return generator
        found = [type(getattr(getattr(self.student, h, None),
                              'prior_generator', None)).__name__
                 for h in ('rpn_head', 'bbox_head')]
        if self.region == 'imitation':
            raise ValueError(
                f'model: the student {type(self.student).__name__} has no '
                'anchor generator in rpn_head or bbox_head (found prior '
                f'generators {found}), and the imitation mask needs anchors. '
                'Give model.anchor_generator=dict(type=\'AnchorGenerator\', '
                'strides=[...], ratios=[0.5, 1.0, 2.0], scales=[8]) for the '
                "mask, or use region='gt'.")
        # 'gt' and 'full' need only the strides of the levels
        return None

    def extra_sources(self) -> Sequence[str]:
        return tuple(super().extra_sources()) + ('imitation_masks', )

    def collect_sources(self, inputs: Tensor,
                        data_samples: list) -> Dict[str, Any]:
        sources = super().collect_sources(inputs, data_samples)
        if any('imitation_masks' in route['extra_inputs'].values()
               for route in self.loss_routes.values()):
            sources['imitation_masks'] = self.imitation_masks(
                inputs, data_samples)
        return sources

    # ------------------------------------------------------------ masks
    @torch.no_grad()
    def imitation_masks(self, inputs: Tensor, data_samples: list) -> Any:
        """The region to imitate, shaped like the tap ``mask_tap``.

        Returns:
            Tensor | tuple[Tensor]: ``(N, H_l, W_l)`` bool per level (a
            tuple when the tap is multi-level, one tensor otherwise).
        """
        feats = self.student_taps[self.mask_tap]
        single = isinstance(feats, Tensor)
        levels = [feats] if single else list(feats)
        sizes = [tuple(f.shape[-2:]) for f in levels]
        strides = self._strides(inputs, sizes)
        device = levels[0].device
        valid = valid_location_masks(
            [s.metainfo['img_shape'] for s in data_samples], sizes, strides,
            device=device)
        if self.region == 'full':
            masks = valid
        elif self.region == 'gt':
            masks = [v & m for v, m in zip(valid, self._gt_masks(
                data_samples, sizes, strides, device))]
        else:
            anchors = self.prior_generator.grid_priors(sizes, device=device)
            masks = self.mask_generator.generate_batch(
                [_boxes(s).to(device) for s in data_samples], anchors, sizes,
                valid)
        return masks[0] if single else tuple(masks)

    def _strides(self, inputs: Tensor, sizes: List[tuple]) -> List[tuple]:
        if self.prior_generator is not None:
            if self.prior_generator.num_levels != len(sizes):
                raise ValueError(
                    f"model.mask_tap: the student tap '{self.mask_tap}' has "
                    f'{len(sizes)} levels but the anchor generator has '
                    f'{self.prior_generator.num_levels}: tap the feature '
                    'maps the anchors belong to (e.g. the whole neck).')
            return [tuple(s) for s in self.prior_generator.strides]
        # 'gt'/'full' without anchors: strides from the input size
        h, w = inputs.shape[-2:]
        return [(w / fw, h / fh) for fh, fw in sizes]

    @staticmethod
    def _gt_masks(data_samples: list, sizes: List[tuple],
                  strides: List[tuple], device) -> List[Tensor]:
        masks = []
        for (fh, fw), (sw, sh) in zip(sizes, strides):
            level = torch.zeros((len(data_samples), fh, fw), dtype=torch.bool,
                                device=device)
            for i, sample in enumerate(data_samples):
                for x1, y1, x2, y2 in _boxes(sample).tolist():
                    c1, r1 = max(int(math.floor(x1 / sw)), 0), max(
                        int(math.floor(y1 / sh)), 0)
                    c2 = min(int(math.ceil(x2 / sw)), fw)
                    r2 = min(int(math.ceil(y2 / sh)), fh)
                    level[i, r1:r2, c1:c2] = True
            masks.append(level)
        return masks
