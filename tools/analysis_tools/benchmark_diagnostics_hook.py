"""What DistillDiagnosticsHook costs: the step time with and without it, on
measured and unmeasured iterations, interleaved in one process.

    python tools/analysis_tools/benchmark_diagnostics_hook.py \\
        --img-shape 320 320 --rounds 5 --out work_dirs/benchmark_diag.json

Builds the distiller of a distillation config (default: FGFI, Faster R-CNN
R101-FPN -> R50-FPN, the imitation term on the five FPN levels) with random
weights (timings do not depend on them) and times, on one batch of random
images with random boxes, past any loss warm-up:

- ``plain``: ``model.train_step`` without the hook;
- ``unmeasured``: the hook's ``before_train_iter`` / ``after_train_iter``
  around the step at an iteration it does not measure;
- ``measured``: the same at an iteration it measures (the step's forward is
  caught, one backward pass per term and per student tap probes the
  gradients, the figures are published).

Variants run in turn, the order rotating every round, for ``--rounds``
after ``--warmup`` rounds; medians compared. CPU time with one torch
thread (the default) is the steadier figure on a shared machine. With
``--device cuda`` the peak GPU memory of each variant is printed too.
"""
import argparse
import os.path as osp
import sys

import torch

from mmkd.testing import (REPO_ROOT, demo_det_inputs, demo_seg_inputs,
                          hook_runner, random_boxes)
from mmkd.testing import benchmark

DEFAULT_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'fgfi',
    'fgfi_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_1x_coco.py')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='a detection or segmentation distillation '
                        'config (default: FGFI R101 -> R50)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--img-shape', type=int, nargs=2, default=(320, 320),
                        metavar=('H', 'W'))
    parser.add_argument('--num-boxes', type=int, default=20,
                        help='ground-truth boxes per image (detection)')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (default 1; 0: torch default)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='write the results as JSON here')
    return parser.parse_args()


def batch_of(cfg, args) -> dict:
    """A random batch for the config's student, as a dataloader gives it."""
    student = cfg.model.student
    shape = tuple(args.img_shape)
    if 'decode_head' in student:
        if shape[0] != shape[1]:
            raise SystemExit('--img-shape: a segmentation batch is square')
        return demo_seg_inputs(args.batch_size, shape[0],
                               student.decode_head.num_classes, args.seed)
    head = (student.roi_head.bbox_head if 'roi_head' in student else
            student.bbox_head)
    boxes = random_boxes(args.batch_size, args.num_boxes, shape, args.seed)
    return demo_det_inputs(boxes, [shape] * args.batch_size,
                           head.num_classes, args.seed)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmengine.logging import MessageHub

    from mmkd.engine.hooks import DistillDiagnosticsHook

    def edit(model_cfg):
        preprocessor = model_cfg.student.data_preprocessor
        if 'size' in preprocessor:  # mmseg pads/crops to a fixed size
            preprocessor.size = tuple(args.img_shape)

    cfg, model, wrapper = benchmark.build_distiller(
        args.config, args.device, edit=edit, seed=args.seed)
    data = batch_of(cfg, args)
    hook = DistillDiagnosticsHook(interval=2)  # iteration 0: measured, 1 not
    runners = {it: hook_runner(model, wrapper, it) for it in (0, 1)}
    MessageHub.get_current_instance().update_info('iter', 10**6)  # warm-up

    def with_hook(iteration):
        runner = runners[iteration]

        def run():
            hook.before_train_iter(runner, 0, data)
            model.train_step(data, wrapper)
            hook.after_train_iter(runner, 0, data)

        return run

    variants = dict(plain=lambda: model.train_step(data, wrapper),
                    unmeasured=with_hook(1), measured=with_hook(0))
    samples = benchmark.interleave(
        variants, args.rounds, args.warmup, args.device,
        log=lambda line: print(line, file=sys.stderr, flush=True))
    med = benchmark.median(samples)
    memory = {name: benchmark.peak_gpu_gb(fn, args.device)
              for name, fn in variants.items()}
    plain = med['plain']
    overhead = {name: {clock: m[clock] / plain[clock] - 1
                       for clock in ('cpu', 'wall')}
                for name, m in med.items()}
    terms = sorted(model.loss_routes)
    # one measurement per measured run: the warm-up and timed rounds, and
    # the memory run
    measured = {name: len(runs) for name, runs in hook.history.terms.items()}
    if set(measured) != set(terms) or set(measured.values()) != {
            args.warmup + args.rounds + 1}:
        raise SystemExit(f'the hook measured {measured}, expected every '
                         f'term of {terms} {args.warmup + args.rounds + 1} '
                         'times')
    result = dict(
        config=osp.relpath(args.config, REPO_ROOT), terms=terms,
        batch_size=args.batch_size, img_shape=list(args.img_shape),
        rounds=args.rounds, warmup=args.warmup, device=args.device,
        environment=benchmark.environment(args.device), median_s=med,
        samples_s=samples, overhead_of_plain=overhead,
        peak_gpu_gb=memory, measurements=measured)
    print(f"{result['config']}: terms {terms}, batch {args.batch_size} x "
          f'{args.img_shape[0]}x{args.img_shape[1]}, '
          f'{torch.get_num_threads()} thread(s), {args.device}, median of '
          f'{args.rounds} interleaved rounds; the hook measured each term '
          f'in every measured run')
    rows = []
    for name, m in med.items():
        row = [name, f"{m['cpu']:.3f}", f"{m['wall']:.3f}",
               f"{100 * overhead[name]['cpu']:+.1f}%",
               f"{100 * overhead[name]['wall']:+.1f}%"]
        if memory[name] is not None:
            row.append(f'{memory[name]:.2f}')
        rows.append(row)
    header = ['step', 'CPU (s)', 'wall (s)', 'CPU vs plain', 'wall vs plain']
    if memory['plain'] is not None:
        header.append('peak GPU (GiB)')
    print(benchmark.format_table(header, rows))
    if args.out:
        benchmark.save_json(result, args.out)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
