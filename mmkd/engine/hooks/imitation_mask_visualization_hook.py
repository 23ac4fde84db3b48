"""Send the FGFI imitation masks of training batches to the visualizer."""
from typing import Optional, Sequence

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmkd.registry import HOOKS
from mmkd.utils.config_checks import (ConfigValueError, check_positive_int,
                                      describe)
from mmkd.visualization import draw_imitation_masks


@HOOKS.register_module()
class ImitationMaskVisualizationHook(Hook):
    """Every ``interval`` training iterations, draw the imitation mask of
    each level for the first image of the batch (boxes drawn, one panel per
    level, see :func:`mmkd.visualization.draw_imitation_masks`) and send it
    to the runner's visualizer backends as ``runner.visualizer.add_image(
    name, image, step=iteration)`` (e.g. ``LocalVisBackend`` writes
    ``<work_dir>/<timestamp>/vis_data/vis_image/<name>_<step>.png``).

    The masks are the distiller's own (its ``imitation_masks``, with its
    region, mask generator and anchors); the distiller does not keep them
    after a step, so the hook recomputes them for that one image: it runs
    the data preprocessor (test mode: padding, no batch augmentation) and the
    student's ``extract_feat`` under ``torch.no_grad()`` in eval mode (no
    running statistics change), which fills the distiller's ``mask_tap``
    when that tap is in the backbone or neck. Cost: one student backbone+neck
    forward of one image every ``interval`` iterations, on the main process
    only.

    Args:
        interval (int): Draw every ``interval`` iterations. Defaults to 50.
        name (str): Image name for the backends. Defaults to
            ``'imitation_mask'``.
        scale (int): Integer upscaling of the panels. Defaults to 1.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 50, name: str = 'imitation_mask',
                 scale: int = 1) -> None:
        owner = 'ImitationMaskVisualizationHook'
        self.interval = check_positive_int(
            interval, 'interval', owner=owner,
            hint='Draw every `interval` training iterations, e.g. 50.')
        if not (isinstance(name, str) and name):
            raise ConfigValueError('name', 'a non-empty str', describe(name),
                                   'It names the image for the backends.',
                                   owner=owner)
        self.name = name
        self.scale = check_positive_int(
            scale, 'scale', owner=owner,
            hint='It is the integer upscaling of the panels, e.g. 1.')
        self._warned = False

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        if (data_batch is None or not is_main_process()
                or not self.every_n_train_iters(runner, self.interval)):
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if not hasattr(model, 'imitation_masks'):
            if not self._warned:
                print_log(
                    'ImitationMaskVisualizationHook: the model '
                    f'{type(model).__name__} has no imitation masks (not an '
                    'mmkd.DetectionDistiller); nothing is drawn.',
                    logger='current', level=30)
                self._warned = True
            return
        image, masks, boxes, strides = self.first_image_masks(
            model, data_batch)
        runner.visualizer.add_image(
            self.name,
            draw_imitation_masks(image, masks, boxes=boxes, strides=strides,
                                 scale=self.scale),
            step=runner.iter + 1)

    @staticmethod
    def first_image_masks(model, data_batch: dict):
        """The first image of ``data_batch`` and its masks per level
        (the distiller's :class:`~mmkd.task_modules.ImitationRegion`).

        Returns:
            tuple: ``image`` ``(H, W, 3)`` uint8 RGB (unpadded), ``masks``
            (one ``(H_l, W_l)`` bool tensor per level), ``boxes`` ``(G,
            4)``, ``strides`` (per level, or None when the distiller has no
            anchor generator: then derived from the sizes).
        """
        from mmdet.structures.bbox import get_box_tensor
        first = dict(inputs=list(data_batch['inputs'][:1]),
                     data_samples=list(data_batch['data_samples'][:1]))
        data = model.data_preprocessor(first, False)
        inputs, samples = data['inputs'], data['data_samples']
        student = model.student
        was_training = student.training
        student.eval()
        try:
            with torch.no_grad(), model.student_taps.recording():
                student.extract_feat(inputs)
                masks = model.imitation_masks(inputs, samples)
        finally:
            student.train(was_training)
        masks = [masks] if isinstance(masks, torch.Tensor) else list(masks)
        boxes = get_box_tensor(samples[0].gt_instances.bboxes)
        # the packed image is in loading order (BGR for LoadImageFromFile)
        image = first['inputs'][0].permute(1, 2, 0).cpu().numpy()
        image = image[..., ::-1].copy()
        strides: Optional[Sequence] = None
        if getattr(model, 'prior_generator', None) is not None:
            strides = [tuple(s) for s in model.prior_generator.strides]
        return image, [m[0] for m in masks], boxes, strides
