"""Time FGFI imitation-mask generation for one detection batch.

    python tools/analysis_tools/benchmark_imitation_mask.py \\
        --out work_dirs/benchmark_imitation_mask.json

The default batch is COCO-like: 8 images of 800x1333 (padded to a multiple
of 32), an FPN with 5 levels (strides 4 to 64), mmdet's RPN anchors (scales
[8], ratios [0.5, 1, 2]: 3 per location) and 50 random ground-truth boxes
per image. Each setting (``max_iou_scope`` x ``box_chunk_size``) is run
``--repeats`` times after ``--warmup`` runs; the median is reported with
the fraction of the valid locations kept per level.
"""
import argparse
import math

import torch

from mmkd.task_modules import ImitationMaskGenerator, ImitationRegion
from mmkd.testing import random_boxes
from mmkd.testing import benchmark

STRIDES = (4, 8, 16, 32, 64)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--img-shape', type=int, nargs=2, default=(800, 1333),
                        metavar=('H', 'W'), help='image size before padding')
    parser.add_argument('--pad-divisor', type=int, default=32)
    parser.add_argument('--num-boxes', type=int, default=50,
                        help='ground-truth boxes per image')
    parser.add_argument('--scopes', nargs='+', default=['all', 'level'],
                        choices=['all', 'level'])
    parser.add_argument('--psi', type=float, default=0.5)
    parser.add_argument('--box-chunk-size', type=int, nargs='+', default=[16])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='write the results as JSON here')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    h, w = args.img_shape
    input_size = [int(math.ceil(s / args.pad_divisor) * args.pad_divisor)
                  for s in (h, w)]
    anchors = dict(type='AnchorGenerator', strides=list(STRIDES),
                   ratios=[0.5, 1.0, 2.0], scales=[8])
    boxes = random_boxes(args.batch_size, args.num_boxes, (h, w), args.seed,
                         device=args.device)
    shapes = [(h, w)] * args.batch_size
    rows, results = [], []
    for scope in args.scopes:
        for chunk in args.box_chunk_size:
            region = ImitationRegion('imitation', ImitationMaskGenerator(
                args.psi, scope, chunk), anchors)
            sizes = region.featmap_sizes(input_size)

            def run():
                return region(boxes, sizes, shapes, input_size, args.device)

            runs = benchmark.repeat(run, args.repeats, args.warmup,
                                    args.device)['wall']
            valid = ImitationRegion('full')(boxes, sizes, shapes, input_size,
                                            args.device)
            kept = [float(m.sum()) / max(float(v.sum()), 1.0)
                    for m, v in zip(run(), valid)]
            seconds = benchmark.median(runs)
            results.append(dict(max_iou_scope=scope, box_chunk_size=chunk,
                                seconds=seconds, runs=runs,
                                kept_fraction=kept))
            rows.append((scope, chunk, f'{seconds:.3f}',
                         f'{1000 * seconds / args.batch_size:.1f}',
                         f'{min(runs):.3f}', f'{max(runs):.3f}',
                         ' '.join(f'{k:.3f}' for k in kept)))
    print(f'imitation-mask generation: batch {args.batch_size}, image '
          f'{h}x{w}, featmaps {sizes}, {args.num_boxes} boxes/image, device '
          f'{args.device}, {torch.get_num_threads()} threads')
    print(benchmark.format_table(
        ('scope', 'chunk', 'median s/batch', 'ms/image', 'min s', 'max s',
         'kept fraction per level'), rows))
    if args.out:
        benchmark.save_json(dict(
            settings=dict(vars(args), featmap_sizes=sizes, strides=STRIDES),
            environment=benchmark.environment(args.device),
            results=results), args.out)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
