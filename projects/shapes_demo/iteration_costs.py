"""What one training iteration of each demo student costs, and what the
report's students cost in all: the figures behind the study's time budget.

    python projects/shapes_demo/iteration_costs.py [--study]
        [--work-dir work_dirs/shapes_demo] [--tasks seg det]
        [--variants pixel imitation ...] [--iters 30] [--warmup 5]
        [--seeds 3] [--jobs 2] [--teacher-precision bf16]
        [--teacher-cache warm] [--quick]

Each config (the baseline student, then each variant of ``--variants``,
default: the run's default variants) trains for ``--iters`` iterations of
its task's data with one torch thread, with the trained teacher of the work
dir (``run_demo.py``, or with ``--study`` the preconditions' teacher:
``trained_models``) and its baseline's learning-rate schedule, without the
end-of-training evaluation. The script prints, per config, the median wall
time and the median CPU time of this process per iteration after
``--warmup`` (the CPU time is the steadier figure on a shared machine:
other processes on the cores slow the wall time, hardly the CPU time), and
what the report's students would cost: every config × ``--seeds`` seeds ×
the students' schedule, on ``--jobs`` cores, at the CPU time per iteration
(training only: each stage's evaluation and set-up come on top).
``--teacher-precision`` sets the distillers' ``model.teacher_precision``
(``bf16``: the teacher's forward under bf16 autocast; a lever for the
time, which changes what the students are taught). ``--teacher-cache``:
``off`` (default) runs the teacher in every step (a config's
``TeacherOutputCacheHook`` is left out); ``warm`` keeps the hook and trains
on the first :data:`WARM_SCENES` training scenes only, so that after the
warm-up every step is served from the kept outputs: what a step costs once
its views have been seen (a whole run adds one teacher forward per view of
the training scenes).
"""
import argparse
import os.path as osp
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from shapes_demo.study import add_study_arguments, regime  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_study_arguments(parser)
    parser.add_argument('--tasks', nargs='+', default=['seg', 'det'],
                        choices=['seg', 'det'])
    parser.add_argument('--variants', nargs='+', default=None,
                        help="default: each task's default variants")
    parser.add_argument('--iters', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--jobs', type=int, default=2)
    parser.add_argument('--teacher-precision', default=None,
                        choices=['auto', 'fp32', 'bf16', 'fp16'],
                        help="the distillers' model.teacher_precision "
                        "(default: the configs')")
    parser.add_argument('--teacher-cache', default='off',
                        choices=['off', 'warm'],
                        help='off: the teacher runs in every step; warm: '
                        'every timed step is served from the kept outputs')
    parser.add_argument('--quick', action='store_true',
                        help='the quick budget (a smoke test)')
    args = parser.parse_args()
    if args.warmup < 0 or args.iters < args.warmup + 2:
        parser.error('--iters must exceed --warmup by at least 2, got '
                     f'--iters {args.iters} --warmup {args.warmup}')
    for name in ('seeds', 'jobs'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be at least 1, got '
                         f'{getattr(args, name)}')
    return args


#: The training scenes of a ``--teacher-cache warm`` measurement: their 16
#: views are all seen within the first warm-up iterations.
WARM_SCENES = 8


def iteration_times(models, role: str, config: str, iters: int,
                    work_dir: str, teacher_precision: Optional[str] = None,
                    teacher_cache: str = 'off') -> Dict[str, List[float]]:
    """Train ``config`` of ``models.task`` for ``iters`` iterations without
    evaluating (a distiller with ``teacher_precision`` when given; its
    ``TeacherOutputCacheHook`` left out with ``teacher_cache='off'``, kept
    and fed :data:`WARM_SCENES` scenes with ``'warm'``); the wall and CPU
    seconds between the starts of consecutive iterations (``iters - 1`` of
    each)."""
    from mmengine.config import Config
    from mmengine.hooks import Hook

    from mmkd.engine.runner_config import prepare_config
    from shapes_demo.stage_run import (QuietRunner, close_logger,
                                       scaled_schedule, shorten_schedule)
    from shapes_demo.tasks import CONFIGS
    task = models.task
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    shorten_schedule(cfg, iters)
    # no evaluation (the loop evaluates after its last iteration)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint.interval = iters + 1  # no checkpoint
    cfg.param_scheduler = scaled_schedule(task.student, iters)
    if role != 'student':
        cfg.model.teacher_checkpoint = models.teacher
        if teacher_precision is not None:
            cfg.model.teacher_precision = teacher_precision
    if teacher_cache == 'off':
        cfg.custom_hooks = [
            h for h in cfg.get('custom_hooks', [])
            if h['type'] not in ('mmkd.TeacherOutputCacheHook',
                                 'TeacherOutputCacheHook')]
    else:
        cfg.train_dataloader.dataset.indices = WARM_SCENES
    cfg.work_dir = work_dir
    cfg.experiment_name = f'{task.name}_{role}_cost_{time.time_ns()}'
    cfg.visualizer.name = cfg.experiment_name
    prepare_config(cfg)
    starts: List[tuple] = []

    class IterationClock(Hook):
        priority = 'HIGHEST'

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            starts.append((time.perf_counter(), time.process_time()))

    runner = QuietRunner.from_cfg(cfg)
    runner.register_hook(IterationClock())
    runner.train()
    close_logger(runner)
    return dict(
        wall=[b[0] - a[0] for a, b in zip(starts, starts[1:])],
        cpu=[b[1] - a[1] for a, b in zip(starts, starts[1:])])


def main() -> None:
    args = parse_args()
    import torch
    torch.set_num_threads(1)
    import mmkd  # noqa: F401  (registries, safe checkpoint loading)
    from shapes_demo.tasks import only_variants
    from shapes_demo.trained_models import trained_models
    tasks, budget, work = regime(args)
    tasks = [t for t in only_variants(tasks, args.variants)
             if t.name in args.tasks]
    print('| task | config | wall s/it | CPU s/it | CPU vs baseline |')
    print('|---|---|---|---|---|')
    totals = {}
    for task in tasks:
        models = trained_models(work, task.name, args.study, budget)
        models.apply()
        base = None
        totals[task.name] = 0.0
        for role, config in [('student', task.student)] + list(
                task.variants.items()):
            with tempfile.TemporaryDirectory() as tmp:
                times = iteration_times(models, role, config, args.iters,
                                        tmp, args.teacher_precision,
                                        args.teacher_cache)
            wall, cpu = (statistics.median(times[k][args.warmup:])
                         for k in ('wall', 'cpu'))
            base = base or cpu
            totals[task.name] += cpu * models.iters * args.seeds
            print(f'| {task.name} | {role} | {wall:.3f} | {cpu:.3f} | '
                  f'{cpu / base:.2f}× |', flush=True)
    print()
    for task in tasks:
        students = (1 + len(task.variants)) * args.seeds
        print(f'{task.name}: {students} students × '
              f'{trained_models(work, task.name, args.study, budget).iters}'
              f' iterations: {totals[task.name] / 60:.0f} CPU-minutes')
    print(f'all: {sum(totals.values()) / 60 / args.jobs:.0f} minutes on '
          f'{args.jobs} cores (training only)')


if __name__ == '__main__':
    main()
