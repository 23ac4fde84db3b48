"""Time FGFI imitation-mask generation for one detection batch.

The default setting is a COCO-like batch: 8 images of 800x1333 (padded to a
multiple of 32), an FPN with 5 levels (strides 4 to 64), mmdet's RPN anchors
(scales [8], ratios [0.5, 1, 2]: 3 per location) and 50 random ground-truth
boxes per image. Each setting is run ``--repeats`` times after ``--warmup``
runs and the median is reported.

Example::

    python tools/analysis_tools/benchmark_imitation_mask.py \
        --out work_dirs/benchmark_imitation_mask.json

``time_mask_generation`` is the reusable piece: a training-step benchmark
can call it with the same inputs and report the mask's share of the step.
"""
import argparse
import json
import math
import os
import platform
import statistics
import time
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor

from mmkd.task_modules.imitation_mask_generator import (
    ImitationMaskGenerator, valid_location_masks)

STRIDES = (4, 8, 16, 32, 64)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time the FGFI imitation-mask generation of a batch.')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument(
        '--img-shape', type=int, nargs=2, default=(800, 1333),
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


def build_inputs(batch_size: int, img_shape: Tuple[int, int],
                 pad_divisor: int, num_boxes: int, seed: int, device: str
                 ) -> Tuple[List[Tensor], List[Tensor], List[Tuple[int, int]],
                            List[Tensor]]:
    """Build a batch's boxes, the RPN anchors, feature sizes, valid masks.

    Returns:
        tuple: ``batch_gt_bboxes`` (N tensors ``(num_boxes, 4)``),
        ``anchors`` (5 tensors ``(H*W*3, 4)``), ``featmap_sizes`` and
        ``valid_masks`` (5 tensors ``(N, H, W)``).
    """
    from mmdet.models.task_modules.prior_generators import AnchorGenerator

    img_h, img_w = img_shape
    pad_h = int(math.ceil(img_h / pad_divisor) * pad_divisor)
    pad_w = int(math.ceil(img_w / pad_divisor) * pad_divisor)
    featmap_sizes = [(int(math.ceil(pad_h / s)), int(math.ceil(pad_w / s)))
                     for s in STRIDES]
    anchor_generator = AnchorGenerator(
        strides=list(STRIDES), ratios=[0.5, 1.0, 2.0], scales=[8])
    anchors = anchor_generator.grid_priors(featmap_sizes, device=device)

    gen = torch.Generator().manual_seed(seed)
    batch_gt_bboxes = []
    for _ in range(batch_size):
        # Log-uniform sizes from 8 to 600 pixels, clipped to the image.
        wh = torch.exp(
            torch.empty(num_boxes, 2).uniform_(
                math.log(8), math.log(600), generator=gen))
        xy = torch.rand(num_boxes, 2, generator=gen) * torch.tensor(
            [img_w, img_h], dtype=torch.float32)
        x2y2 = torch.minimum(xy + wh, torch.tensor([img_w, img_h]).float())
        batch_gt_bboxes.append(torch.cat([xy, x2y2], dim=1).to(device))
    valid_masks = valid_location_masks([img_shape] * batch_size,
                                       featmap_sizes,
                                       anchor_generator.strides, device)
    return batch_gt_bboxes, anchors, featmap_sizes, valid_masks


def _sync(device: str) -> None:
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def time_mask_generation(generator: ImitationMaskGenerator,
                         batch_gt_bboxes: Sequence[Tensor],
                         anchors: Sequence[Tensor],
                         featmap_sizes: Sequence[Tuple[int, int]],
                         valid_masks: Sequence[Tensor] = None,
                         repeats: int = 5,
                         warmup: int = 1,
                         device: str = 'cpu') -> Dict[str, object]:
    """Time ``generator.generate_batch`` on one batch.

    Args:
        generator (ImitationMaskGenerator): The generator to time.
        batch_gt_bboxes (Sequence[Tensor]): N tensors ``(G_n, 4)``.
        anchors (Sequence[Tensor]): Per level ``(H*W*K, 4)``.
        featmap_sizes (Sequence[tuple]): Per level ``(H, W)``.
        valid_masks (Sequence[Tensor], optional): Per level ``(N, H, W)``.
        repeats (int): Timed runs. Defaults to 5.
        warmup (int): Untimed runs first. Defaults to 1.
        device (str): Synchronised around each run when CUDA.

    Returns:
        dict: ``seconds`` (median, float), ``runs`` (every timed run),
        ``kept_fraction`` (per level, fraction of valid locations kept).
    """
    masks = None
    for _ in range(warmup):
        masks = generator.generate_batch(batch_gt_bboxes, anchors,
                                         featmap_sizes, valid_masks)
    runs = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        masks = generator.generate_batch(batch_gt_bboxes, anchors,
                                         featmap_sizes, valid_masks)
        _sync(device)
        runs.append(time.perf_counter() - start)
    kept = []
    for lvl, mask in enumerate(masks):
        valid = valid_masks[lvl] if valid_masks is not None else None
        denom = valid.sum() if valid is not None else mask.numel()
        kept.append(float(mask.sum()) / max(float(denom), 1.0))
    return dict(seconds=statistics.median(runs), runs=runs,
                kept_fraction=kept)


def main() -> None:
    args = parse_args()
    batch_gt_bboxes, anchors, featmap_sizes, valid_masks = build_inputs(
        args.batch_size, tuple(args.img_shape), args.pad_divisor,
        args.num_boxes, args.seed, args.device)
    num_anchors = sum(a.shape[0] for a in anchors)
    results = []
    for scope in args.scopes:
        for chunk in args.box_chunk_size:
            generator = ImitationMaskGenerator(
                psi=args.psi, max_iou_scope=scope, box_chunk_size=chunk)
            timing = time_mask_generation(generator, batch_gt_bboxes,
                                          anchors, featmap_sizes, valid_masks,
                                          args.repeats, args.warmup,
                                          args.device)
            results.append(
                dict(max_iou_scope=scope, box_chunk_size=chunk, **timing))

    print(f'imitation-mask generation: batch {args.batch_size}, image '
          f'{args.img_shape[0]}x{args.img_shape[1]}, featmaps '
          f'{featmap_sizes}, {num_anchors} anchors/image, '
          f'{args.num_boxes} boxes/image, device {args.device}, '
          f'{torch.get_num_threads()} threads')
    header = (f'{"scope":<7}{"chunk":>6}{"median s/batch":>16}'
              f'{"ms/image":>10}{"min s":>8}{"max s":>8}'
              '  kept fraction per level')
    print(header)
    print('-' * len(header))
    for r in results:
        kept = ' '.join(f'{k:.3f}' for k in r['kept_fraction'])
        print(f'{r["max_iou_scope"]:<7}{r["box_chunk_size"]:>6}'
              f'{r["seconds"]:>16.3f}'
              f'{1000 * r["seconds"] / args.batch_size:>10.1f}'
              f'{min(r["runs"]):>8.3f}{max(r["runs"]):>8.3f}  {kept}')

    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        record = dict(
            settings=dict(vars(args), featmap_sizes=featmap_sizes,
                          anchors_per_image=num_anchors, strides=STRIDES),
            environment=dict(
                torch=torch.__version__,
                threads=torch.get_num_threads(),
                cpu=platform.processor() or platform.machine(),
                cuda=(torch.cuda.get_device_name()
                      if str(args.device).startswith('cuda') else None)),
            results=results)
        with open(args.out, 'w') as f:
            json.dump(record, f, indent=2)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
