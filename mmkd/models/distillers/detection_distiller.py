"""FGFI: fine-grained feature imitation for detectors (Wang et al., CVPR
2019), on any number of FPN levels, batch size > 1, mixed image sizes."""
from typing import Any, Mapping, Optional

from torch import Tensor

from mmkd.registry import MODELS
from mmkd.task_modules import ImitationRegion
from mmkd.task_modules.imitation_region import TapRegion
from mmkd.utils.config_checks import (ConfigKeyError, ConfigValueError,
                                      config_errors_under)
from .single_teacher_distiller import SingleTeacherDistiller


@MODELS.register_module()
class DetectionDistiller(SingleTeacherDistiller):
    """A :class:`SingleTeacherDistiller` that also provides the FGFI
    imitation region as the loss input ``'imitation_masks'``.

    The region is computed per image and per level of the student tap
    ``mask_tap`` (e.g. the FPN outputs) by
    :class:`~mmkd.task_modules.ImitationRegion`, restricted to the locations
    inside each image (padding of a batch is never imitated): ``'imitation'``
    (the method, FGFI section 3.1: the anchors near each ground-truth box),
    ``'gt'`` (the paper's G: the cells of the ground-truth boxes) or
    ``'full'`` (the paper's F, hint learning: every location). The anchors
    are the student's own (``rpn_head`` or ``bbox_head`` ``prior_generator``)
    unless ``anchor_generator`` is given.

    A loss asks for it with ``extra_inputs=dict(masks='imitation_masks')``,
    e.g. ``mmkd.ImitationLoss``; the distiller's step computes it with a
    :class:`~mmkd.task_modules.imitation_region.TapRegion` (its only
    addition to the step). The warm-up of
    the official code (no imitation for 400 iterations) is
    ``loss_schedules=dict(imitation=dict(warmup=400))``.

    Args:
        mask_tap (str, optional): Student tap whose feature maps the masks
            cover. Needed only when a loss uses ``'imitation_masks'`` (or to
            draw the masks); without it no region is built, so a student
            without anchors (e.g. FCOS) can be distilled with other losses.
        region (str): ``'imitation'``, ``'gt'`` or ``'full'``.
        mask_generator (dict): Config of the imitation-mask generator.
            Defaults to ``ImitationMaskGenerator(psi=0.5)``.
        anchor_generator (dict, optional): An mmdet anchor generator config
            for the mask, for students without anchors (or to override).
        **kwargs: :class:`SingleTeacherDistiller` arguments.
    """

    extra_sources = SingleTeacherDistiller.extra_sources + (
        'imitation_masks', )

    def __init__(self,
                 mask_tap: Optional[str] = None,
                 region: str = 'imitation',
                 mask_generator: Optional[Mapping] = None,
                 anchor_generator: Optional[Mapping] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        users = [name for name, route in self.loss_routes.items()
                 if 'imitation_masks' in route['extra_inputs'].values()]
        if mask_tap is None and users:
            raise ConfigValueError(
                'model.mask_tap', 'the name of the student tap whose maps '
                'the imitation region covers, one of '
                f'{sorted(self.student_taps.paths)} (model.student_taps), as '
                f'model.distill_losses.{users[0]} uses \'imitation_masks\'',
                'nothing', "Set mask_tap to that loss's student tap (e.g. "
                "mask_tap='fpn').")
        if mask_tap is not None and (not isinstance(mask_tap, str) or
                                     mask_tap not in self.student_taps):
            raise ConfigKeyError(
                'model.mask_tap', 'the name of a student tap, one of '
                f'{sorted(self.student_taps.paths)} (model.student_taps)',
                repr(mask_tap), f'There is no student tap named {mask_tap!r}.')
        self.mask_tap = mask_tap
        self.region = region
        # the region is built when it is asked for (a loss, or mask_tap for
        # the mask visualisation): a student without anchors needs none
        # otherwise
        self.imitation_region: Optional[ImitationRegion] = None
        if mask_tap is not None:
            anchors = self._find_prior_generator(anchor_generator, region)
            with config_errors_under('model'):
                self.imitation_region = ImitationRegion(
                    region, mask_generator, anchors)
            self.loss_inputs['imitation_masks'] = TapRegion(
                self.imitation_region, self.student_taps, mask_tap)

    @property
    def mask_generator(self):
        """The imitation-mask generator (None unless
        ``region='imitation'`` and ``mask_tap`` is set)."""
        region = self.imitation_region
        return None if region is None else region.mask_generator

    @property
    def prior_generator(self):
        """The anchor generator of the region (None when the student has
        none and the region needs none, or without ``mask_tap``)."""
        region = self.imitation_region
        return None if region is None else region.anchor_generator

    def _find_prior_generator(self, anchor_generator: Optional[Mapping],
                              region: str):
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
        if region == 'imitation':
            raise ConfigValueError(
                'model.anchor_generator', 'the anchors of the imitation mask: '
                f'the student {type(self.student).__name__} has no anchor '
                'generator in rpn_head or bbox_head (found prior generators '
                f'{found})', 'nothing', "Give model.anchor_generator=dict("
                "type='AnchorGenerator', strides=[...], ratios=[0.5, 1.0, "
                "2.0], scales=[8]) for the mask, or use region='gt'.")
        # 'gt' and 'full' need only the strides of the levels
        return None

    # ------------------------------------------------------------ masks
    def imitation_masks(self, inputs: Tensor, data_samples: list) -> Any:
        """The region to imitate for a batch whose student forward has run,
        shaped like the tap ``mask_tap`` (tools and hooks; the step's loss
        input).

        Returns:
            Tensor | tuple[Tensor]: ``(N, H_l, W_l)`` bool per level (a
            tuple when the tap is multi-level, one tensor otherwise).
        """
        if self.imitation_region is None:
            raise ConfigValueError(
                'model.mask_tap', 'the name of the student tap whose maps the '
                'imitation region covers', 'nothing',
                "Set mask_tap (e.g. mask_tap='fpn') to compute the region.")
        return self.loss_inputs['imitation_masks'](inputs, data_samples)
