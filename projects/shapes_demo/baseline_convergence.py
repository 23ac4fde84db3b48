"""How far the demo's baseline students are from convergence: each task's
baseline student, with its config's settings, trained for several schedule
lengths with the selection seeds and scored on the val split.

    python projects/shapes_demo/baseline_convergence.py [--iters 400 1200]
        [--seeds 1] [--tasks seg det] [--jobs N]
        [--work-dir work_dirs/shapes_demo]

A schedule other than the config's is scaled to its length (the learning
rate's decay ends at the last iteration, milestones and warm-up scale with
it). Prints, per task, the val metric of each schedule and seed, and each
longer schedule's difference to the first, paired by seed (mean ± std
over seeds, and the evaluation noise of one difference from the val
split's quarters, as the demo's report gives them). Uses the work dir's
teachers and pretraining stages (trained first when absent) and writes
``<work-dir>/report/convergence.{md,json}``.
"""
import argparse
import json
import os
import os.path as osp
import sys
from dataclasses import asdict
from typing import Dict, List

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from shapes_demo.plans import convergence_jobs  # noqa: E402
from shapes_demo.protocol import selection_seeds  # noqa: E402
from shapes_demo.scheduler import run_jobs  # noqa: E402
from shapes_demo.stages import prepare_run  # noqa: E402
from shapes_demo.study import add_study_arguments, regime  # noqa: E402
from shapes_demo.tables import (convergence_rows,  # noqa: E402
                                convergence_table)
from shapes_demo.tasks import stage_iters  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, nargs='+', default=None,
                        help="student schedules (default: the config's "
                        'and three times it); the first is the reference')
    parser.add_argument('--seeds', type=int, default=1,
                        help='selection seeds per schedule (1000 and up)')
    parser.add_argument('--tasks', nargs='+', default=['seg', 'det'],
                        choices=['seg', 'det'])
    parser.add_argument('--quick', action='store_true',
                        help='the quick budget (a smoke test)')
    parser.add_argument('--jobs', type=int, default=None,
                        help='stages trained at the same time (as '
                        'run_demo.py)')
    add_study_arguments(parser)
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f'--seeds must be at least 1, got {args.seeds}')
    if args.jobs is not None and args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    if args.iters is not None and (
            min(args.iters) < 1 or len(set(args.iters)) != len(args.iters)):
        parser.error(f'--iters must be distinct positive numbers, got '
                     f'{args.iters}')
    return args


def main() -> None:
    args = parse_args()
    import mmkd  # noqa: F401  (registries, safe checkpoint loading)
    all_tasks, budget, work = regime(args)
    tasks = [t for t in all_tasks if t.name in args.tasks]
    seeds = selection_seeds(args.seeds)
    schedules: Dict[str, List[int]] = {}
    for task in tasks:
        own = stage_iters(budget, 'student', task.student)
        schedules[task.name] = args.iters or [own, 3 * own]
    stages = 1 + sum(2 + len(schedules[t.name]) * len(seeds) for t in tasks)
    progress, data = prepare_run(work, budget, stages, tasks)
    jobs, keys = [], {}
    for task in tasks:
        task_jobs, keys[task.name] = convergence_jobs(
            task, budget, seeds, work, data[task.name], schedules[task.name])
        jobs += task_jobs
    results = run_jobs(jobs, args.jobs or os.cpu_count() or 1, progress)
    tables, out = [], dict(seeds=seeds, quick=args.quick, tasks={})
    for task in tasks:
        n = len(seeds)
        task_keys = keys[task.name]
        runs = {iters: [results[k] for k in task_keys[i * n:(i + 1) * n]]
                for i, iters in enumerate(schedules[task.name])}
        rows = convergence_rows(runs)
        teacher = results[f'{task.name}_teacher']
        tables.append(f'{task.name}: the baseline student, val '
                      f'{task.metric} (the teacher on test: '
                      f'{teacher.metric:.2f})\n\n' + convergence_table(rows))
        out['tasks'][task.name] = dict(rows=rows, teacher=teacher.metric,
                                       runs=[asdict(r) for rs in runs.values()
                                             for r in rs])
    report = osp.join(work, 'report')
    os.makedirs(report, exist_ok=True)
    text = '\n\n'.join(tables)
    with open(osp.join(report, 'convergence.md'), 'w') as f:
        f.write(text + '\n')
    with open(osp.join(report, 'convergence.json'), 'w') as f:
        json.dump(out, f, indent=1)
    print('\n' + text, flush=True)


if __name__ == '__main__':
    main()
