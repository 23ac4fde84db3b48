"""mmkd end to end on a CPU in minutes: generate the "shapes" data, train a
teacher, a baseline student and distilled students for segmentation (SKD)
and detection (FGFI), evaluate them with the stock mmseg/mmdet evaluators on
the validation split, and write a report.

    python projects/shapes_demo/run_demo.py [--quick] [--seeds 3] [--jobs N]
        [--work-dir work_dirs/shapes_demo] [--tasks seg det]

The report folder (``<work-dir>/report``) holds ``results.md`` (the table),
``results.json``, the logs and PNG charts.
"""
import argparse
import multiprocessing
import os
import os.path as osp
import sys
import time
from typing import Dict, List

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from shapes_demo.generate import generate  # noqa: E402
from shapes_demo.stages import (BUDGETS, TASKS, Budget,  # noqa: E402
                                Progress, StageResult, Task, load_results,
                                run_task, run_task_process)


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
    parser.add_argument(
        '--jobs', type=int, default=None,
        help='tasks trained at the same time, each in its own process with '
        'cpu_count / jobs torch threads (default: one process per task, at '
        'most one per CPU core; 1 = everything in this process). The small '
        'demo models use two threads poorly, so two single-thread processes '
        'finish sooner on a 2-core CPU')
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f'--seeds must be at least 1, got {args.seeds}')
    if args.jobs is not None and args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    return args


def run_in_processes(tasks: List[Task], budget: Budget, seeds: int,
                     work: str, data: Dict[str, str], progress: Progress,
                     jobs: int) -> List[StageResult]:
    """Run each task (:func:`run_task`) in its own spawned process, ``jobs``
    at a time, each with ``cpu_count // jobs`` torch threads; stop them all
    as soon as one fails.

    Args:
        tasks: The tasks to run.
        budget: Iterations and data size.
        seeds: Seeds of the students.
        work: The demo's work directory.
        data: Task name -> generated dataset root.
        progress: The shared progress printer.
        jobs: Processes at a time.

    Returns:
        list[StageResult]: Every stage's result, in the order of ``tasks``.
    """
    ctx = multiprocessing.get_context('spawn')
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pending, running, results = list(tasks), {}, []
    while pending or running:
        while pending and len(running) < jobs:
            task = pending.pop(0)
            out = osp.join(work, f'{task.name}_results.json')
            proc = ctx.Process(
                target=run_task_process, name=f'shapes-demo-{task.name}',
                args=(task.name, budget, seeds, work, data[task.name],
                      progress, threads, out))
            proc.start()
            running[task.name] = (proc, out)
        time.sleep(1)
        for name, (proc, out) in list(running.items()):
            if proc.exitcode is None:
                continue
            del running[name]
            if proc.exitcode != 0:
                for other, _ in running.values():
                    other.terminate()
                sys.exit(f'shapes demo: the {name} task failed (exit code '
                         f'{proc.exitcode}); its traceback is above and its '
                         f'stage logs are under {work}/{name}_*/')
            results += load_results(out)
    order = [t.name for t in tasks]
    return sorted(results, key=lambda r: order.index(r.task))


def main() -> None:
    args = parse_args()
    import mmkd  # noqa: F401  (registries, safe checkpoint loading)
    from shapes_demo.report import write_report
    budget = BUDGETS['quick' if args.quick else 'default']
    work = osp.abspath(args.work_dir)
    tasks = [t for t in TASKS if t.name in args.tasks]
    jobs = args.jobs or min(len(tasks), os.cpu_count() or 1)
    stages = 1 + sum(1 + (1 + len(t.variants)) * args.seeds for t in tasks)
    start = time.time()
    progress = Progress(stages, start,
                        multiprocessing.get_context('spawn').Value('i', 0))
    data = generate(osp.join(work, 'data'), budget.num_train, budget.num_val)
    progress(f'data: {budget.num_train} train / {budget.num_val} val scenes '
             f'in {osp.join(work, "data")}')
    if jobs == 1:
        results = []
        for task in tasks:
            results += run_task(task, budget, args.seeds, work,
                                data[task.name], progress)
    else:
        results = run_in_processes(tasks, budget, args.seeds, work, data,
                                   progress, jobs)
    report = write_report(results, tasks, osp.join(work, 'report'),
                          data, quick=args.quick)
    print()
    print(report['table'])
    print(f'\nreport: {report["dir"]} (total {time.time() - start:.0f}s)')


if __name__ == '__main__':
    main()
