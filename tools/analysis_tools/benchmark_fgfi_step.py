"""The share of FGFI imitation-mask generation in a DetectionDistiller
training step.

Builds the distiller of an FGFI config (by default Faster R-CNN R101-FPN
teacher -> R50-FPN student, COCO), with random weights (nothing downloaded:
the timing does not depend on the weights; ``extract_feat`` teachers run no
head, and the student's RoI head sees the sampler's fixed 512 RoIs per
image), and times on one batch of random images with random boxes:

- ``mask``: ``generate_batch`` of the distiller's own mask generator on the
  batch's FPN sizes and the student's RPN anchors
  (``benchmark_imitation_mask.time_mask_generation``, median of
  ``--mask-repeats``), on the step's batch and, with ``--mask-batch-size``,
  on a batch of that size too (cheap even on CPU: 8 is the issue's batch);
- ``step``: ``model.train_step`` (preprocess, teacher forward, student
  losses, masks, imitation loss, backward, clipped SGD step), after the
  imitation warm-up, median of ``--steps`` after ``--step-warmup`` untimed
  steps;
- with ``--teacher-forwards``: the teacher alone under ``no_grad``, as
  ``extract_feat`` (the FGFI configs) and as ``tensor`` (``_forward``:
  RPN proposals and RoI head too, what the D and ID variants need).

The share is ``mask / step`` on the same batch. A step of batch 8 at
800x1333 needs tens of GB and minutes on a few CPU cores: measure a smaller
batch (``--batch-size 2``) and read the step time as linear in the batch
(``--scale-to 8`` prints that extrapolation, marked as such).

Example::

    python tools/analysis_tools/benchmark_fgfi_step.py --batch-size 2 \
        --mask-batch-size 8 --scale-to 8 --out work_dirs/fgfi_step.json
"""
import argparse
import copy
import json
import os
import os.path as osp
import platform
import resource
import statistics
import sys
import time
from typing import Dict, List

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from benchmark_imitation_mask import (_sync, build_inputs,  # noqa: E402
                                      time_mask_generation)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(
    REPO, 'configs', 'fgfi',
    'fgfi_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_1x_coco.py')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time FGFI mask generation against a training step.')
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument(
        '--img-shape', type=int, nargs=2, default=(800, 1333),
        metavar=('H', 'W'), help='image size before padding')
    parser.add_argument('--num-boxes', type=int, default=50,
                        help='ground-truth boxes per image')
    parser.add_argument('--steps', type=int, default=2,
                        help='timed training steps')
    parser.add_argument('--step-warmup', type=int, default=0,
                        help='untimed training steps first')
    parser.add_argument('--mask-repeats', type=int, default=5)
    parser.add_argument('--mask-batch-size', type=int,
                        help='also time the masks of a batch of this size')
    parser.add_argument('--extra-num-boxes', type=int, nargs='*', default=[],
                        help='also time the masks with these box counts')
    parser.add_argument('--teacher-forwards', action='store_true',
                        help="time the teacher's extract_feat and tensor "
                        'forwards')
    parser.add_argument('--teacher-repeats', type=int, default=3)
    parser.add_argument('--scale-to', type=int,
                        help='print the step extrapolated to this batch')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='write the results as JSON here')
    return parser.parse_args()


def _no_downloads(node):
    """Drop ``Pretrained`` inits (in place): random weights, no network."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == \
                'Pretrained':
            node['init_cfg'] = None
        for value in node.values():
            _no_downloads(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _no_downloads(value)


def build_model(config: str, device: str):
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, init_default_scope

    import mmkd  # noqa: F401
    from mmkd.utils.model_loading import load_model_config
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.teacher = load_model_config(model_cfg.teacher, 'model.teacher')
    model_cfg.teacher_checkpoint = None
    _no_downloads(model_cfg)
    model = MODELS.build(model_cfg)
    model.init_weights()
    model.to(device).train()
    return cfg, model, build_optim_wrapper(model, cfg.optim_wrapper)


def make_batch(boxes: List[torch.Tensor], img_shape, num_classes: int,
               seed: int) -> Dict:
    """Raw data (uint8 images, data samples) as a dataloader gives it."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    h, w = img_shape
    inputs, samples = [], []
    for image_boxes in boxes:
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g,
                                    dtype=torch.uint8))
        sample = DetDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=image_boxes.cpu(),
            labels=torch.randint(0, num_classes, (len(image_boxes), ),
                                 generator=g))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def time_steps(model, optim_wrapper, data, steps: int, warmup: int,
               device: str) -> List[float]:
    runs = []
    for k in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        model.train_step(data, optim_wrapper)
        _sync(device)
        if k >= warmup:
            runs.append(time.perf_counter() - start)
    return runs


def time_teacher(model, data, forward: str, device: str) -> float:
    batch = model.data_preprocessor(data, True)
    saved = model.teacher_forward
    model.teacher_forward = forward
    try:
        with torch.no_grad(), model.teacher_taps.recording():
            _sync(device)
            start = time.perf_counter()
            model.run_teacher(batch['inputs'], batch['data_samples'])
            _sync(device)
            return time.perf_counter() - start
    finally:
        model.teacher_forward = saved


def mask_timing(model, args, batch_size: int,
                num_boxes: int = None) -> Dict:
    """Time the distiller's mask generator on a batch: the benchmark's
    random boxes, the student's own anchors on the padded input's levels."""
    import math

    from mmkd.task_modules import valid_location_masks
    h, w = args.img_shape
    pad_h, pad_w = (int(math.ceil(s / 32) * 32) for s in (h, w))
    strides = [tuple(s) for s in model.prior_generator.strides]
    sizes = [(int(math.ceil(pad_h / sh)), int(math.ceil(pad_w / sw)))
             for sw, sh in strides]
    anchors = model.prior_generator.grid_priors(sizes, device=args.device)
    valid = valid_location_masks([(h, w)] * batch_size, sizes, strides,
                                 device=args.device)
    num_boxes = args.num_boxes if num_boxes is None else num_boxes
    boxes = build_inputs(batch_size, (h, w), 32, num_boxes, args.seed,
                         args.device)[0]
    timing = time_mask_generation(model.mask_generator, boxes, anchors,
                                  sizes, valid, args.mask_repeats, 1,
                                  args.device)
    return dict(batch_size=batch_size, num_boxes=num_boxes,
                featmap_sizes=sizes,
                anchors_per_image=sum(a.shape[0] for a in anchors), **timing)


def main() -> None:
    args = parse_args()
    from mmengine.logging import MessageHub
    cfg, model, optim_wrapper = build_model(args.config, args.device)
    if getattr(model, 'mask_generator', None) is None:
        raise SystemExit(f'{args.config}: no imitation mask generator '
                         "(region must be 'imitation').")
    # past every warm-up: the imitation loss counts as in training
    MessageHub.get_current_instance().update_info('iter', 10**6)

    boxes = build_inputs(args.batch_size, tuple(args.img_shape), 32,
                         args.num_boxes, args.seed, args.device)[0]
    student = cfg.model.student
    num_classes = student.roi_head.bbox_head.num_classes \
        if 'roi_head' in student else student.bbox_head.num_classes
    data = make_batch(boxes, args.img_shape, num_classes, args.seed)

    mask = mask_timing(model, args, args.batch_size)
    mask_big = (mask_timing(model, args, args.mask_batch_size)
                if args.mask_batch_size else None)
    extra = [mask_timing(model, args, args.batch_size, n)
             for n in args.extra_num_boxes]
    teacher, teacher_runs = {}, {}
    if args.teacher_forwards:
        time_teacher(model, data, 'extract_feat', args.device)  # warm
        for forward in ('extract_feat', 'tensor'):
            teacher_runs[forward] = [
                time_teacher(model, data, forward, args.device)
                for _ in range(args.teacher_repeats)]
            teacher[forward] = statistics.median(teacher_runs[forward])
    steps = time_steps(model, optim_wrapper, data, args.steps,
                       args.step_warmup, args.device)
    step = statistics.median(steps)
    share = mask['seconds'] / step
    peak_rss_gb = resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 2**20

    h, w = args.img_shape
    print(f'FGFI step benchmark: {osp.relpath(args.config, REPO)}, '
          f'batch {args.batch_size} x {h}x{w} (padded to 32), '
          f'{args.num_boxes} boxes/image, featmaps {mask["featmap_sizes"]}, '
          f'device {args.device}, {torch.get_num_threads()} threads, '
          f'peak RSS {peak_rss_gb:.1f} GB')
    mask_runs = 'median of %d' % args.mask_repeats
    rows = [(f'mask generation, {args.num_boxes} boxes/image',
             args.batch_size, mask['seconds'], mask_runs)]
    for timing in extra:
        rows.append((f'mask generation, {timing["num_boxes"]} boxes/image',
                     args.batch_size, timing['seconds'], mask_runs))
    if mask_big:
        rows.append((f'mask generation, {args.num_boxes} boxes/image',
                     args.mask_batch_size, mask_big['seconds'], mask_runs))
    for forward, seconds in teacher.items():
        rows.append((f'teacher forward ({forward}, no grad)',
                     args.batch_size, seconds, 'median of %d: %s' % (
                         len(teacher_runs[forward]), ', '.join(
                             f'{s:.1f}' for s in teacher_runs[forward]))))
    rows.append(('training step (train_step)', args.batch_size, step,
                 'median of %d: %s' % (len(steps), ', '.join(
                     f'{s:.1f}' for s in steps))))
    if args.scale_to:
        rows.append((f'training step, x{args.scale_to / args.batch_size:g} '
                     '(EXTRAPOLATED, linear in batch)', args.scale_to,
                     step * args.scale_to / args.batch_size, 'estimate'))
    print(f'| {"what":<52} | {"batch":>5} | {"seconds":>9} | runs |')
    print(f'|{"-" * 54}|{"-" * 7}|{"-" * 11}|------|')
    for what, batch, seconds, runs in rows:
        print(f'| {what:<52} | {batch:>5} | {seconds:>9.3f} | {runs} |')
    print(f'mask share of the step (batch {args.batch_size}, '
          f'{args.num_boxes} boxes/image, both measured): '
          f'{100 * share:.2f}% (target <= 3%)')
    for timing in extra:
        print(f'mask share of the step (batch {args.batch_size}, '
              f'{timing["num_boxes"]} boxes/image, both measured): '
              f'{100 * timing["seconds"] / step:.2f}%')
    if mask_big and args.scale_to == args.mask_batch_size:
        est = mask_big['seconds'] / (step * args.scale_to / args.batch_size)
        print(f'mask share at batch {args.scale_to} (mask measured, step '
              f'extrapolated): {100 * est:.2f}%')
    if 'tensor' in teacher:
        print(f"teacher 'tensor' vs 'extract_feat': "
              f"+{teacher['tensor'] - teacher['extract_feat']:.2f} s "
              f"({100 * (teacher['tensor'] / teacher['extract_feat'] - 1):.0f}"
              '% more teacher time)')

    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        record = dict(
            settings=dict(vars(args), img_shape=list(args.img_shape)),
            environment=dict(
                torch=torch.__version__, threads=torch.get_num_threads(),
                cpu=platform.processor() or platform.machine(),
                cuda=(torch.cuda.get_device_name()
                      if str(args.device).startswith('cuda') else None),
                peak_rss_gb=peak_rss_gb),
            mask=mask, mask_at_mask_batch_size=mask_big,
            mask_at_extra_num_boxes=extra,
            teacher_forward_seconds=teacher,
            teacher_forward_runs=teacher_runs,
            step=dict(seconds=step, runs=steps),
            mask_share=share)
        with open(args.out, 'w') as f:
            json.dump(record, f, indent=2)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
