"""The share of FGFI's imitation region in a DetectionDistiller training step.

    python tools/analysis_tools/benchmark_fgfi_step.py --batch-size 2 \\
        --mask-batch-size 8 --scale-to 8 --out work_dirs/fgfi_step.json

Builds the distiller of an FGFI config (default: Faster R-CNN R101-FPN ->
R50-FPN, COCO) with random weights (timings do not depend on them) and
times, on one batch of random images with random boxes:

- ``mask``: the distiller's own region (``model.imitation_region``: anchors,
  valid locations, imitation mask) for the batch's FPN sizes, median of
  ``--mask-repeats``; with ``--mask-batch-size`` on a batch of that size
  too (cheap even on CPU);
- ``step``: ``model.train_step``, past the imitation warm-up, median of
  ``--steps`` after ``--step-warmup`` untimed steps;
- with ``--teacher-forwards``: the teacher alone under ``no_grad``, as
  ``extract_feat`` (the FGFI configs) and as ``tensor`` (RPN proposals and
  RoI head too, what the D and ID variants need).

The share is ``mask / step`` on the same batch. A batch 8 step at 800x1333
needs tens of GB and minutes on a few CPU cores: measure batch 2 and read
the step as linear in the batch (``--scale-to 8`` prints that estimate,
marked as such).
"""
import argparse
import math
import os.path as osp

import torch

from mmkd.testing import REPO_ROOT, demo_det_inputs, random_boxes
from mmkd.testing import benchmark

DEFAULT_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'fgfi',
    'fgfi_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_1x_coco.py')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--img-shape', type=int, nargs=2, default=(800, 1333),
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


def time_region(model, args, batch_size: int, num_boxes: int) -> dict:
    """The distiller's region on the padded input's FPN levels."""
    region = model.imitation_region
    h, w = args.img_shape
    input_size = [int(math.ceil(s / 32) * 32) for s in (h, w)]
    sizes = region.featmap_sizes(input_size)
    boxes = random_boxes(batch_size, num_boxes, (h, w), args.seed,
                         device=args.device)
    masks = region(boxes, sizes, [(h, w)] * batch_size, input_size,
                   device=args.device)
    runs = benchmark.repeat(
        lambda: region(boxes, sizes, [(h, w)] * batch_size, input_size,
                       device=args.device),
        args.mask_repeats, 1, args.device)['wall']
    return dict(batch_size=batch_size, num_boxes=num_boxes,
                featmap_sizes=sizes, seconds=benchmark.median(runs),
                runs=runs, kept_fraction=[float(m.float().mean())
                                          for m in masks])


def time_teacher(model, data, forward: str, repeats: int, device) -> list:
    """The teacher alone, ``teacher_forward=forward``, wall seconds."""
    batch = model.data_preprocessor(data, True)
    run = model.teacher_run
    saved, run.forward = run.forward, forward
    try:
        with torch.no_grad(), model.teacher_taps.recording():
            return benchmark.repeat(
                lambda: model.run_teacher(batch['inputs'],
                                          batch['data_samples']),
                repeats, 1, device)['wall']
    finally:
        run.forward = saved


def main() -> None:
    args = parse_args()
    from mmengine.logging import MessageHub
    cfg, model, wrapper = benchmark.build_distiller(args.config, args.device)
    if getattr(model, 'mask_generator', None) is None:
        raise SystemExit(f'{args.config}: no imitation mask generator '
                         "(region must be 'imitation').")
    MessageHub.get_current_instance().update_info('iter', 10**6)  # warm-up
    student = cfg.model.student
    head = student.roi_head.bbox_head if 'roi_head' in student else \
        student.bbox_head
    boxes = random_boxes(args.batch_size, args.num_boxes,
                         tuple(args.img_shape), args.seed)
    data = demo_det_inputs(boxes, [tuple(args.img_shape)] * args.batch_size,
                           head.num_classes, args.seed)

    masks = [time_region(model, args, args.batch_size, n)
             for n in [args.num_boxes] + list(args.extra_num_boxes)]
    if args.mask_batch_size:
        masks.append(time_region(model, args, args.mask_batch_size,
                                 args.num_boxes))
    teacher = {forward: time_teacher(model, data, forward,
                                     args.teacher_repeats, args.device)
               for forward in (('extract_feat', 'tensor')
                               if args.teacher_forwards else ())}
    steps = benchmark.repeat(lambda: model.train_step(data, wrapper),
                             args.steps, args.step_warmup,
                             args.device)['wall']
    step = benchmark.median(steps)
    share = masks[0]['seconds'] / step

    rows = [(f"region ({m['num_boxes']} boxes/image)", m['batch_size'],
             f"{m['seconds']:.3f}", f'median of {args.mask_repeats}')
            for m in masks]
    rows += [(f'teacher forward ({forward}, no grad)', args.batch_size,
              f'{benchmark.median(runs):.3f}', f'median of {len(runs)}')
             for forward, runs in teacher.items()]
    rows.append(('training step (train_step)', args.batch_size,
                 f'{step:.3f}', ', '.join(f'{s:.1f}' for s in steps)))
    if args.scale_to:
        rows.append(('training step (EXTRAPOLATED, linear in batch)',
                     args.scale_to,
                     f'{step * args.scale_to / args.batch_size:.3f}',
                     'estimate'))
    h, w = args.img_shape
    print(f'FGFI step: {osp.relpath(args.config, REPO_ROOT)}, batch '
          f'{args.batch_size} x {h}x{w}, {args.num_boxes} boxes/image, '
          f'{torch.get_num_threads()} threads, peak RSS '
          f'{benchmark.peak_rss_gb():.1f} GB')
    print(benchmark.format_table(('what', 'batch', 'seconds', 'runs'), rows))
    print(f'region share of the step (batch {args.batch_size}, both '
          f'measured): {100 * share:.2f}% (target <= 3%)')
    if args.out:
        benchmark.save_json(dict(
            settings=dict(vars(args), img_shape=list(args.img_shape)),
            environment=dict(benchmark.environment(args.device),
                             peak_rss_gb=benchmark.peak_rss_gb()),
            mask=masks[0], masks=masks, teacher_forward_runs=teacher,
            step=dict(seconds=step, runs=steps), mask_share=share), args.out)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
