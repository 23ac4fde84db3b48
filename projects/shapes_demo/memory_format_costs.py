"""What channels-last memory format changes in the cost of the demo's
models on this CPU: a lever for the study's time budget.

    python projects/shapes_demo/memory_format_costs.py [--iters 15]
        [--warmup 3] [--batch 8]

Each model of the demo (the seg student and teacher on 96 x 96 inputs, the
det student and teacher on 96 x 288 inputs, the study's scenes) runs the
forward and backward pass of its feature extractor (backbone and neck) and,
for segmentation, its decode head, on a random batch, with one torch
thread, once in the default (contiguous) memory format and once with model
and input in channels-last. The script prints the median CPU time per pass
after ``--warmup`` passes: the whole training step (data, losses, the
optimizer) is not in it, so the figure is the share of the step a memory
format can change. Each measurement runs in its own process, so that a
crash (channels-last backward aborts the process in the det models with
torch 2.13.0's CPU build) is reported as such and the others still run.
"""
import argparse
import importlib
import os.path as osp
import statistics
import subprocess
import sys
import time

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmkd  # noqa: F401  (the demo's configs import mmkd's modules)

CONFIGS = osp.join(osp.dirname(osp.abspath(__file__)), 'configs')
MODELS = [('seg', 'student', 'seg/pspnet_r18_shapes_student.py', (96, 96)),
          ('seg', 'teacher', 'seg/pspnet_r50_shapes_teacher.py', (96, 96)),
          ('det', 'student', 'det/faster_rcnn_r18_fpn_shapes_student.py',
           (96, 288)),
          ('det', 'teacher', 'det/faster_rcnn_r50_fpn_shapes_teacher.py',
           (96, 288))]


def pass_cost(model: torch.nn.Module, inputs: torch.Tensor, iters: int,
              warmup: int) -> float:
    """The median CPU seconds of one forward and backward pass of
    ``model``'s features (and decode head where it has one) on ``inputs``
    (N, 3, H, W), after ``warmup`` passes."""
    times = []
    for _ in range(iters):
        start = time.process_time()
        outputs = model.extract_feat(inputs)
        if hasattr(model, 'decode_head'):
            outputs = [model.decode_head(outputs)]
        sum(o.float().mean() for o in outputs).backward()
        times.append(time.process_time() - start)
    return statistics.median(times[warmup:])


def measure(index: int, channels_last: bool, args: argparse.Namespace
            ) -> float:
    """The cost (:func:`pass_cost`) of model ``MODELS[index]``."""
    task, _, config, (height, width) = MODELS[index]
    scope = 'mmseg' if task == 'seg' else 'mmdet'
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    memory_format = (torch.channels_last if channels_last else
                     torch.contiguous_format)
    torch.manual_seed(0)
    model = registry.build(Config.fromfile(osp.join(CONFIGS, config)).model)
    model = model.train().to(memory_format=memory_format)
    inputs = torch.randn(args.batch, 3, height, width).contiguous(
        memory_format=memory_format)
    return pass_cost(model, inputs, args.iters, args.warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=15)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--one', type=int, nargs=2, default=None,
                        metavar=('MODEL', 'CHANNELS_LAST'),
                        help='(internal) measure one model in this process')
    args = parser.parse_args()
    if args.iters < args.warmup + 1:
        parser.error(f'--iters must exceed --warmup, got --iters '
                     f'{args.iters} --warmup {args.warmup}')
    torch.set_num_threads(1)
    if args.one:
        print(f'cost {measure(args.one[0], bool(args.one[1]), args)}')
        return
    print('| task | model | contiguous CPU s/pass | channels-last | ratio |')
    print('|---|---|---|---|---|')
    for index, (task, role, _, _) in enumerate(MODELS):
        costs = []
        for channels_last in (0, 1):
            child = subprocess.run(
                [sys.executable, __file__, '--iters', str(args.iters),
                 '--warmup', str(args.warmup), '--batch', str(args.batch),
                 '--one', str(index), str(channels_last)],
                capture_output=True, text=True)
            lines = [line for line in child.stdout.splitlines()
                     if line.startswith('cost ')]
            costs.append(float(lines[0].split()[1]) if lines and
                         child.returncode == 0 else None)
        shown = [f'{c:.4f}' if c is not None else 'aborted' for c in costs]
        ratio = (f'{costs[0] / costs[1]:.2f}x' if None not in costs else '-')
        print(f'| {task} | {role} | {shown[0]} | {shown[1]} | {ratio} |',
              flush=True)


if __name__ == '__main__':
    main()
