"""Choose the demo's settings on the val split, as the configs record them:
the baseline student's learning rate from its config's ``lr_grid``, then
each distilled variant's loss weights from its config's ``weight_grid`` (at
the chosen learning rate). Every candidate trains with the selection seeds
(1000 and up), which the report never uses.

    python projects/shapes_demo/select_settings.py [--seeds 1] [--quick]
        [--jobs N] [--work-dir work_dirs/shapes_demo] [--tasks seg det]
        [--variants pixel ...]

Writes ``<work-dir>/report/selection.{md,json}`` and
``weight_selection.png`` (val metric against the loss weight for every
variant, against the learning rate for the baseline); ``run_demo.py`` with
the same work dir puts them in its report and reuses the teachers. It says
which configs hold a setting other than the chosen one.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from dataclasses import asdict
from typing import List

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from shapes_demo.plans import run_tasks  # noqa: E402
from shapes_demo.protocol import grid_size, selection_seeds  # noqa: E402
from shapes_demo.stage_run import stage_setting  # noqa: E402
from shapes_demo.stages import prepare_run  # noqa: E402
from shapes_demo.study import add_study_arguments, regime  # noqa: E402
from shapes_demo.tables import (selection_rows, selection_table,  # noqa: E402
                                setting_text)
from shapes_demo.tasks import CONFIGS, only_variants  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='the quick budget (a smoke test)')
    parser.add_argument('--seeds', type=int, default=1,
                        help='selection seeds per candidate (1000 and up)')
    add_study_arguments(parser)
    parser.add_argument('--tasks', nargs='+', default=['seg', 'det'],
                        choices=['seg', 'det'])
    parser.add_argument('--variants', nargs='+', default=None,
                        help="the variants (by name, e.g. pixel imitation, "
                        "or 'all'; default: as run_demo.py); the baseline "
                        'always runs')
    parser.add_argument('--jobs', type=int, default=None,
                        help='stages trained at the same time (as '
                        'run_demo.py)')
    args = parser.parse_args()
    try:
        args.all_tasks, args.budget, args.work = regime(args)
        args.task_list = only_variants(
            [t for t in args.all_tasks if t.name in args.tasks],
            args.variants)
    except ValueError as error:
        parser.error(str(error))
    if args.seeds < 1:
        parser.error(f'--seeds must be at least 1, got {args.seeds}')
    if args.jobs is not None and args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    return args


def config_mismatches(rows: List[dict], tasks) -> List[str]:
    """The configs whose setting differs from the chosen one."""
    from mmengine.config import Config
    lines = []
    for row in rows:
        task = next(t for t in tasks if t.name == row['task'])
        name = (task.student if row['model'] == 'student' else
                task.variants[row['model']])
        held = stage_setting(Config.fromfile(osp.join(CONFIGS, name)))
        chosen = row['settings'][row['chosen']]
        keys = ['lr'] if row['model'] == 'student' else list(chosen)
        if any(abs(held[k] - chosen[k]) > 1e-12 for k in keys):
            lines.append(
                f"configs/{name} holds {setting_text(held, row['model'])}; "
                f"the selection chose {setting_text(chosen, row['model'])}")
    return lines


def main() -> None:
    args = parse_args()
    from mmengine.config import Config

    import mmkd  # noqa: F401  (registries, safe checkpoint loading)
    from shapes_demo.report import selection_chart
    budget, work, tasks = args.budget, args.work, args.task_list
    jobs = args.jobs or os.cpu_count() or 1
    seeds = selection_seeds(args.seeds)
    stages = 1 + sum(
        1 + (t.pretrain is not None) + (1 + len(t.variants)) * args.seeds *
        grid_size(Config.fromfile(osp.join(CONFIGS, t.student)), t.student)
        for t in tasks)
    progress, data = prepare_run(work, budget, stages, tasks)
    results = run_tasks('select', tasks, budget, seeds, work, data, progress,
                        jobs)
    out = osp.join(work, 'report')
    os.makedirs(out, exist_ok=True)
    rows = selection_rows(results, tasks)
    runs = [asdict(r) for r in results]
    minutes = {t.name: (time.time() - progress.start) / 60 for t in tasks}
    task_seeds = {t.name: seeds for t in tasks}
    # a selection of other tasks made earlier in this work dir stays
    earlier = osp.join(out, 'selection.json')
    if osp.exists(earlier):
        with open(earlier) as f:
            kept = json.load(f)
        names = {t.name for t in tasks}
        rows = [r for r in kept['rows'] if r['task'] not in names] + rows
        runs = [r for r in kept['runs'] if r['task'] not in names] + runs
        minutes = {**{k: v for k, v in kept.get('minutes', {}).items()
                      if k not in names}, **minutes}
        kept_seeds = kept.get('seeds', {})
        if isinstance(kept_seeds, list):  # one list for every task
            kept_seeds = {r['task']: kept_seeds for r in kept['rows']}
        task_seeds = {**{k: v for k, v in kept_seeds.items()
                         if k not in names}, **task_seeds}
    papers = {f'{t.name}/{v}': dict(Config.fromfile(
        osp.join(CONFIGS, c)).paper_loss_weights)
        for t in args.all_tasks for v, c in t.variants.items()}
    selection_chart(rows, papers, osp.join(out, 'weight_selection.png'))
    mismatches = config_mismatches(rows, args.all_tasks)
    with open(osp.join(out, 'selection.json'), 'w') as f:
        json.dump(dict(rows=rows, seeds=task_seeds, quick=args.quick,
                       minutes=minutes, runs=runs), f, indent=1)
    table = selection_table(rows)
    with open(osp.join(out, 'selection.md'), 'w') as f:
        f.write(
            '## How the settings were chosen\n\n'
            '`select_settings.py` ('
            + '; '.join(f'{k}: seeds {task_seeds[k]}, {v:.0f} min'
                        for k, v in minutes.items()) +
            '): every candidate of each config\'s grid trained with the '
            'selection seeds and scored on the val split; the '
            'baseline\'s learning rate first, then each variant\'s loss '
            'weights at that rate and at the distill_lr_scales multiples '
            'of it.\n\n' + table + '\n\n' +
            ('Configs that hold another setting than the chosen one: ' +
             '; '.join(mismatches) + '.\n\n' if mismatches else
             'Every config holds the chosen setting.\n\n') +
            '![weight selection](weight_selection.png)\n')
    print()
    print(table)
    for line in mismatches:
        print('config differs from the selection:', line)
    total = (time.time() - progress.start) / 60
    print(f'\nselection: {out}/selection.md (total {total:.1f} min)')


if __name__ == '__main__':
    main()
