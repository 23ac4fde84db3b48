"""mmkd end to end on a CPU in minutes: generate the "shapes" data, train a
teacher, a baseline student and distilled students for segmentation (SKD)
and detection (FGFI), evaluate them with the stock mmseg/mmdet evaluators on
the validation split, and write a report.

    python projects/shapes_demo/run_demo.py [--quick] [--seeds 3]
        [--work-dir work_dirs/shapes_demo] [--tasks seg det]

The report folder (``<work-dir>/report``) holds ``results.md`` (the table),
``results.json``, the logs and PNG charts.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from shapes_demo.generate import generate  # noqa: E402
from shapes_demo.stages import BUDGETS, TASKS, run_stage  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='tiny budget (about 3 minutes): what tests run')
    parser.add_argument('--seeds', type=int, default=1,
                        help='repeat students and distilled students with '
                        'this many seeds; the table gives mean ± std')
    parser.add_argument('--work-dir', default='work_dirs/shapes_demo')
    parser.add_argument('--tasks', nargs='+', default=['seg', 'det'],
                        choices=['seg', 'det'])
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import mmkd  # noqa: F401  (registries, safe checkpoint loading)
    from shapes_demo.report import write_report
    budget = BUDGETS['quick' if args.quick else 'default']
    work = osp.abspath(args.work_dir)
    tasks = [t for t in TASKS if t.name in args.tasks]
    stages = 1 + sum(1 + (1 + len(t.variants)) * args.seeds for t in tasks)
    done = 0
    start = time.time()

    def progress(text: str) -> None:
        print(f'[shapes demo {done}/{stages} {time.time() - start:6.0f}s] '
              f'{text}', flush=True)

    done += 1
    data = generate(osp.join(work, 'data'), budget.num_train, budget.num_val)
    progress(f'data: {budget.num_train} train / {budget.num_val} val scenes '
             f'in {osp.join(work, "data")}')
    results = []
    for task in tasks:
        os.environ[task.data_env] = data[task.name]
        teacher = run_stage(task, 'teacher', task.teacher,
                            budget.teacher_iters, 0,
                            osp.join(work, f'{task.name}_teacher'))
        done += 1
        progress(f'{task.name} teacher: {task.metric} {teacher.metric:.2f} '
                 f'({teacher.seconds:.0f}s)')
        results.append(teacher)
        teacher_ckpt = osp.join(teacher.work_dir, 'teacher.pth')
        os.environ[task.teacher_env] = teacher_ckpt
        for seed in range(args.seeds):
            runs = [('student', task.student)] + list(task.variants.items())
            for role, config in runs:
                result = run_stage(
                    task, role, config, budget.student_iters, seed,
                    osp.join(work, f'{task.name}_{role}_seed{seed}'),
                    teacher_checkpoint=None if role == 'student' else
                    teacher_ckpt)
                done += 1
                progress(f'{task.name} {role} (seed {seed}): {task.metric} '
                         f'{result.metric:.2f} ({result.seconds:.0f}s)')
                results.append(result)
    report = write_report(results, tasks, osp.join(work, 'report'),
                          data, quick=args.quick)
    print()
    print(report['table'])
    print(f'\nreport: {report["dir"]} (total {time.time() - start:.0f}s)')


if __name__ == '__main__':
    main()
