"""Draw the FGFI imitation mask of every feature level for an image's boxes.

    python tools/visualize_imitation_mask.py CONFIG IMAGE \
        --gt 48,30,210,190 300,80,420,260 --out mask.png
    python tools/visualize_imitation_mask.py CONFIG \
        --dataset-split val --num 4 --out work_dirs/masks/mask.png

The mask is the one the config's distiller trains with: the student's anchor
generator (or the distiller's ``anchor_generator``) and the distiller's
``mask_generator`` (``ImitationMaskGenerator(psi=0.5)`` by default; ``--psi``
and ``--max-iou-scope`` override it), restricted to the image's unpadded
area. No model is built and no weights are needed: a level of stride ``s``
is taken to have ``ceil(H_pad / s) x ceil(W_pad / s)`` locations, ``H_pad x
W_pad`` being the input after the model's data preprocessor pads it (true of
mmdet's ResNet/FPN necks on inputs padded to a multiple of 32).

The image goes through the config's test pipeline (``--dataset-split``: that
split's pipeline), so it is resized as the network sees it; the boxes
(``--gt``, in the original image's pixels, or the dataset's annotations) are
loaded before the resize so that they are resized with it. ``--keep-size``
drops the resize steps and uses the image at its own size. One PNG per image:
one panel per level, the mask in blue, the boxes in yellow.
"""
import argparse
import copy
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config, DictAction

RESIZE_TRANSFORMS = ('Resize', 'RandomResize', 'RandomChoiceResize',
                     'FixScaleResize', 'RandomCrop')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw the FGFI imitation mask of each feature level.')
    parser.add_argument('config', help='distillation (or detector) config')
    parser.add_argument('image', nargs='?', help='image file')
    parser.add_argument(
        '--gt', nargs='+', default=[], metavar='x1,y1,x2,y2',
        help='ground-truth boxes in the image\'s pixels')
    parser.add_argument('--out', default='imitation_mask.png',
                        help='PNG to write (dataset mode: <stem>_<index>.png)')
    parser.add_argument('--dataset-split', choices=['train', 'val', 'test'],
                        help='draw images of this split of the config instead')
    parser.add_argument('--num', type=int, default=4,
                        help='dataset mode: number of images')
    parser.add_argument('--psi', type=float, help='override the mask psi')
    parser.add_argument('--max-iou-scope', choices=['all', 'level'],
                        help='override the mask max_iou_scope')
    parser.add_argument('--keep-size', action='store_true',
                        help='do not resize the image (no resize transforms)')
    parser.add_argument('--scale', type=int,
                        help='upscale the panels (default: short side >= 256)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if (args.image is None) == (args.dataset_split is None):
        parser.error('give an IMAGE or --dataset-split (not both)')
    return args


def parse_boxes(specs: Sequence[str]) -> np.ndarray:
    """``['x1,y1,x2,y2', ...]`` -> ``(G, 4)`` float32."""
    boxes = []
    for spec in specs:
        values = [float(v) for v in spec.split(',')]
        if len(values) != 4:
            raise SystemExit(f'--gt {spec}: expected x1,y1,x2,y2')
        boxes.append(values)
    return np.array(boxes, np.float32).reshape(-1, 4)


class MaskFromConfig:
    """The imitation region of a config's distiller, without building its
    models: an :class:`mmkd.task_modules.ImitationRegion` with the
    student's anchor generator (or ``model.anchor_generator``) and the
    distiller's mask generator, and the data preprocessor.

    Args:
        cfg (Config): A distillation config (``model.student``) or a plain
            anchor-based detector config.
        psi (float, optional): Override of the mask generator's psi.
        max_iou_scope (str, optional): Override of its ``max_iou_scope``.
    """

    def __init__(self, cfg: Config, psi: Optional[float] = None,
                 max_iou_scope: Optional[str] = None) -> None:
        from mmengine.registry import MODELS

        from mmkd.task_modules import ImitationRegion

        model = cfg.model
        student = model.get('student', model)
        if isinstance(student, str):
            from mmkd.utils.model_loading import load_model_config
            student = load_model_config(student, 'model.student')
        anchor_cfg = model.get('anchor_generator') or next(
            (student[h]['anchor_generator'] for h in ('rpn_head', 'bbox_head')
             if isinstance(student.get(h), dict)
             and 'anchor_generator' in student[h]), None)
        if anchor_cfg is None:
            raise SystemExit(
                f'{cfg.filename}: the student has no anchor generator '
                '(rpn_head/bbox_head.anchor_generator) and the config sets no '
                'model.anchor_generator: the imitation mask needs anchors.')
        mask_cfg = dict(model.get('mask_generator') or
                        dict(type='ImitationMaskGenerator'))
        if psi is not None:
            mask_cfg['psi'] = psi
        if max_iou_scope is not None:
            mask_cfg['max_iou_scope'] = max_iou_scope
        self.region = ImitationRegion('imitation', mask_cfg,
                                      copy.deepcopy(anchor_cfg))
        self.data_preprocessor = MODELS.build(
            copy.deepcopy(model.get('data_preprocessor')
                          or student['data_preprocessor']))

    @property
    def strides(self) -> List[Tuple[int, int]]:
        return [tuple(s) for s in self.region.anchor_generator.strides]

    def __call__(self, inputs: torch.Tensor, data_sample) -> Dict:
        """The masks of one packed image (``PackDetInputs`` output).

        A level of stride ``s`` is taken to have ``ceil(H_pad / s) x
        ceil(W_pad / s)`` locations (:meth:`ImitationRegion.featmap_sizes`).

        Returns:
            dict: ``masks`` (one ``(H_l, W_l)`` bool tensor per level),
            ``boxes`` ``(G, 4)``, ``image`` ``(H, W, 3)`` uint8 RGB (the
            unpadded network input), ``strides``.
        """
        from mmdet.structures.bbox import get_box_tensor
        data = self.data_preprocessor(
            dict(inputs=[inputs], data_samples=[data_sample]), False)
        sample = data['data_samples'][0]
        input_size = data['inputs'].shape[-2:]
        boxes = get_box_tensor(sample.gt_instances.bboxes).float()
        masks = self.region([boxes], self.region.featmap_sizes(input_size),
                            [sample.metainfo['img_shape']], input_size)
        # PackDetInputs keeps the loading order: BGR for LoadImageFromFile
        image = inputs.permute(1, 2, 0).numpy()[..., ::-1].copy()
        return dict(masks=[m[0] for m in masks], boxes=boxes, image=image,
                    strides=self.strides)


def annotated_pipeline(pipeline: Sequence, keep_size: bool) -> List:
    """The pipeline with ``LoadAnnotations`` right after image loading (so
    the boxes are resized with the image; mmdet's test pipelines load them
    after the resize), and without resize steps when ``keep_size``."""
    steps = [copy.deepcopy(dict(t)) for t in pipeline]
    annotations = [t for t in steps if t['type'].split('.')[-1] ==
                   'LoadAnnotations'] or [
                       dict(type='LoadAnnotations', with_bbox=True)]
    steps = [t for t in steps
             if t['type'].split('.')[-1] != 'LoadAnnotations' and not (
                 keep_size and t['type'].split('.')[-1] in RESIZE_TRANSFORMS)]
    first = next((i for i, t in enumerate(steps)
                  if t['type'].split('.')[-1].startswith('LoadImage')), -1)
    return steps[:first + 1] + annotations[:1] + steps[first + 1:]


def _with_pipeline(dataset_cfg, keep_size: bool):
    """A copy of a dataset config (wrappers included) with every pipeline
    replaced by :func:`annotated_pipeline`."""
    if isinstance(dataset_cfg, dict):
        out = type(dataset_cfg)()
        for key, value in dataset_cfg.items():
            out[key] = (annotated_pipeline(value, keep_size)
                        if key == 'pipeline' else
                        _with_pipeline(value, keep_size))
        return out
    if isinstance(dataset_cfg, (list, tuple)):
        return type(dataset_cfg)(
            _with_pipeline(v, keep_size) for v in dataset_cfg)
    return dataset_cfg


def load_image(cfg: Config, image: str, boxes: np.ndarray,
               keep_size: bool) -> dict:
    """Run one image file and its boxes through the test pipeline."""
    from mmengine.dataset import Compose
    pipeline = Compose(annotated_pipeline(
        cfg.test_dataloader.dataset.pipeline, keep_size))
    return pipeline(dict(
        img_path=image, img_id=0,
        instances=[dict(bbox=b.tolist(), bbox_label=0, ignore_flag=0)
                   for b in boxes]))


def dataset_items(cfg: Config, split: str, num: int, keep_size: bool):
    """The first ``num`` items of a split, boxes resized with the images."""
    from mmengine.registry import DATASETS
    dataset = DATASETS.build(_with_pipeline(
        cfg[f'{split}_dataloader'].dataset, keep_size))
    for index in range(min(num, len(dataset))):
        yield index, dataset[index]


def panel_scale(image: np.ndarray, scale: Optional[int]) -> int:
    if scale is not None:
        return scale
    return max(1, int(math.ceil(256 / min(image.shape[:2]))))


def draw(result: dict, scale: Optional[int]) -> np.ndarray:
    from mmkd.visualization import draw_imitation_masks
    return draw_imitation_masks(
        result['image'], result['masks'], boxes=result['boxes'],
        strides=result['strides'],
        scale=panel_scale(result['image'], scale))


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    import mmcv
    from mmengine.logging import print_log
    from mmengine.registry import init_default_scope

    import mmkd  # noqa: F401  (registries)

    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if cfg.model.get('region', 'imitation') != 'imitation':
        print_log(f"the config's region is {cfg.model.region!r}; drawing "
                  'the imitation mask of its mask generator anyway',
                  logger='current', level=30)
    masks_of = MaskFromConfig(cfg, args.psi, args.max_iou_scope)
    if args.image is not None:
        items = [(None, load_image(cfg, args.image, parse_boxes(args.gt),
                                   args.keep_size))]
    else:
        items = dataset_items(cfg, args.dataset_split, args.num,
                              args.keep_size)
    written = []
    stem, ext = osp.splitext(args.out)
    for index, item in items:
        result = masks_of(item['inputs'], item['data_samples'])
        out = args.out if index is None else f'{stem}_{index}{ext or ".png"}'
        mmcv.imwrite(draw(result, args.scale)[..., ::-1], out)
        kept = ', '.join(f'{int(m.sum())}/{m.numel()}'
                         for m in result['masks'])
        print_log(f'{out}: image {tuple(result["image"].shape[:2])}, '
                  f'{len(result["boxes"])} boxes, kept per level {kept}',
                  logger='current')
        written.append(out)
    return written


if __name__ == '__main__':
    main()
