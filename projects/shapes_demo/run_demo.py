"""mmkd end to end on a CPU in minutes: generate the "shapes" data, train a
teacher, a baseline student and distilled students for segmentation (SKD)
and detection (FGFI), evaluate them with the stock mmseg/mmdet evaluators on
the test split, and write a report.

    python projects/shapes_demo/run_demo.py [--quick] [--seeds 3]
        [--seed-base 0] [--jobs N] [--work-dir work_dirs/shapes_demo]
        [--tasks seg det] [--variants pixel ...]

The settings (the baseline's learning rate, each variant's loss weights) are
the configs'; ``select_settings.py`` chose them on the val split with seeds
the report never uses. The report folder (``<work-dir>/report``) holds
``results.md`` (the table: test metrics and paired differences to the
baseline), ``results.json``, the logs and PNG charts.
"""
import argparse
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from shapes_demo.plans import run_tasks  # noqa: E402
from shapes_demo.protocol import report_seeds  # noqa: E402
from shapes_demo.stages import prepare_run  # noqa: E402
from shapes_demo.study import add_study_arguments, regime  # noqa: E402
from shapes_demo.tasks import only_variants  # noqa: E402

WHAT_THE_DEFAULT_RUN_SHOWS = (
    '\nWhat this run shows: every method of mmkd training end to end on a '
    'CPU (teachers, students, distilled students, the stock evaluators, '
    'student-only checkpoints). What it does not show: how much each method '
    'helps. Its students train 400 iterations, far from converged, and its '
    'detection scenes do not put the teacher-student difference near the '
    'objects, FGFI\'s premise; --study measures where the papers measured '
    '(projects/shapes_demo/docs/study.md).')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='tiny budget, a smoke test (what the tests '
                        'run): a few scenes and a few iterations per stage')
    parser.add_argument('--seeds', type=int, default=1,
                        help='repeat students and distilled students with '
                        'this many seeds; the table gives mean ± std and '
                        'the paired differences to the baseline')
    parser.add_argument('--seed-base', type=int, default=0,
                        help='the first report seed (seeds are seed-base .. '
                        'seed-base + seeds - 1, below 1000: the settings '
                        'were chosen with seeds from 1000 up). Another base '
                        'reruns the report with seeds nobody chose '
                        'settings on')
    add_study_arguments(parser)
    parser.add_argument('--tasks', nargs='+', default=['seg', 'det'],
                        choices=['seg', 'det'])
    parser.add_argument('--variants', nargs='+', default=None,
                        help='the distilled variants to train (by name, e.g. '
                        "pixel imitation, or 'all'); default: every "
                        'segmentation variant and FGFI\'s imitation, full '
                        'and gt; the teacher and the baseline always run')
    parser.add_argument(
        '--jobs', type=int, default=None,
        help='stages trained at the same time, in worker processes with '
        'cpu_count / jobs torch threads each; a stage starts as soon as the '
        'stages it needs are done, whichever task it belongs to (default: '
        'one process per CPU core; 1 = everything in this process). The '
        'small demo models use two threads poorly, so two single-thread '
        'processes finish sooner on a 2-core CPU')
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f'--seeds must be at least 1, got {args.seeds}')
    if args.jobs is not None and args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    try:
        args.seed_list = report_seeds(args.seed_base, args.seeds)
        tasks, args.budget, args.work = regime(args)
        args.task_list = only_variants(
            [t for t in tasks if t.name in args.tasks], args.variants)
    except ValueError as error:
        parser.error(str(error))
    return args


def main() -> None:
    args = parse_args()
    import mmkd  # noqa: F401  (registries, safe checkpoint loading)
    from shapes_demo.report import write_report
    budget, work, tasks = args.budget, args.work, args.task_list
    jobs = args.jobs or os.cpu_count() or 1
    stages = 1 + sum(1 + (t.pretrain is not None) +
                     (t.teacher_pretrain is not None) +
                     (1 + len(t.variants)) * args.seeds for t in tasks)
    progress, data = prepare_run(work, budget, stages, tasks)
    results = run_tasks('report', tasks, budget, args.seed_list, work, data,
                        progress, jobs)
    report = write_report(results, tasks, osp.join(work, 'report'),
                          data, quick=args.quick)
    print()
    print(report['table'])
    seconds = time.time() - progress.start
    print(f'\nreport: {report["dir"]} (total {seconds:.0f}s)')
    if not args.study:
        print(WHAT_THE_DEFAULT_RUN_SHOWS)


if __name__ == '__main__':
    main()
