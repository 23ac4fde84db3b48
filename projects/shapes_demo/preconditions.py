"""The study regime's preconditions, measured before any distilled student
of the study trains (``projects/shapes_demo/docs/study.md`` gives the
figures and what was decided from them).

    python projects/shapes_demo/preconditions.py
        [--parts geometry teachers students concentration] [--seeds 3]
        [--own-schedules] [--pretrain-seed K] [--jobs N] [--threads T]
        [--num-train N] [--teacher-iters N] [--student-iters N]
        [--work-dir work_dirs/shapes_demo_study] [--quick]

- ``geometry``: on the detection scenes of the study, the share of each
  FPN level's locations that FGFI's region I (ψ 0.5, the student's anchors)
  and the boxes (G) cover, from the generated boxes alone (no model).
- ``teachers``: each teacher trained for its config's schedule and for
  twice it (seed 0), scored on val: has it reached its plateau? And scored
  on the training scenes (without augmentation): its train-against-val
  gap.
- ``students``: the object-classifier pretraining of each student's
  backbone, then the baseline student for its study config's schedule and
  for 1.5 times it, with the selection seeds, scored on val: has it
  converged, and how far below its teacher is it?
- ``concentration``: on the val scenes, the teacher and the baseline
  student of the first selection seed: per FPN level, the share of the
  locations in region I and of the teacher-student difference (after the
  best least-squares 1x1 adaptation) inside it
  (``shapes_demo.concentration``; it trains the teacher and the
  students if ``teachers`` and ``students`` are not asked for).

``--own-schedules`` trains every model for its own schedule only (not the
longer runs that check the plateau): the concentration first, for a new
kind of scene. ``--pretrain-seed`` trains the backbones' pretraining
stages with another seed (default 0, the study's), in a work dir of its
own: how much the baselines depend on the draw of their pretrained
backbone, which the selection seeds share.

Writes ``<work-dir>/report/preconditions.{md,json}``; every stage is cached
in the work dir (an interrupted run resumes where it stopped).
"""
import argparse
import dataclasses
import json
import os
import os.path as osp
import sys
from typing import Dict, List

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from shapes_demo.protocol import selection_seeds  # noqa: E402
from shapes_demo.study import STUDY_BUDGET, STUDY_TASKS, STUDY_WORK_DIR  # noqa
from shapes_demo.tables import (convergence_rows,  # noqa: E402
                                convergence_table, train_gap_rows,
                                train_gap_table)
from shapes_demo.tasks import BUDGETS, Budget, Task  # noqa: E402

PARTS = ('geometry', 'teachers', 'students', 'concentration')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--parts', nargs='+', default=list(PARTS),
                        choices=PARTS)
    parser.add_argument('--seeds', type=int, default=3,
                        help='selection seeds of the baseline students')
    parser.add_argument('--tasks', nargs='+', default=['seg', 'det'],
                        choices=['seg', 'det'])
    parser.add_argument('--own-schedules', action='store_true',
                        help='no longer runs (the plateau checks)')
    parser.add_argument('--pretrain-seed', type=int, default=0,
                        help="the seed of the backbones' pretraining "
                        "stages (default 0: the study's); another needs a "
                        '--work-dir of its own')
    parser.add_argument('--jobs', type=int, default=None)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch threads per job (default: the cores '
                        'over --jobs); 1 when other commands share the '
                        'cores')
    parser.add_argument('--num-train', type=int, default=None, metavar='N',
                        help='train on N scenes, the first N of the study\'s '
                        f'training scenes (default {STUDY_BUDGET.num_train}); '
                        'val and test unchanged')
    parser.add_argument('--teacher-iters', type=int, default=None, metavar='N',
                        help="the teachers' schedule instead of their "
                        "configs'")
    parser.add_argument('--student-iters', type=int, default=None, metavar='N',
                        help="the baseline students' schedule instead of "
                        "their configs'")
    parser.add_argument('--work-dir', default=None,
                        help=f'default: {STUDY_WORK_DIR}, or '
                        f'{STUDY_WORK_DIR}_train<N> with --num-train N')
    parser.add_argument('--quick', action='store_true',
                        help='the quick budget (a smoke test)')
    args = parser.parse_args()
    for option in ('num_train', 'teacher_iters', 'student_iters'):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1, "
                         f'got {value}')
    if args.quick and args.num_train is not None:
        parser.error('--num-train is for the study budget; --quick has '
                     'its own scenes')
    if args.seeds < 1:
        parser.error(f'--seeds must be at least 1, got {args.seeds}')
    if args.threads is not None and args.threads < 1:
        parser.error(f'--threads must be at least 1, got {args.threads}')
    return args


def budget_of(args: argparse.Namespace) -> Budget:
    """The budget of parsed arguments: the study's (the quick one with
    ``--quick``), with ``--num-train`` scenes and the schedules of
    ``--teacher-iters`` and ``--student-iters``."""
    budget = BUDGETS['quick'] if args.quick else STUDY_BUDGET
    iters = dict(budget.iters)
    for kind in ('teacher', 'student'):
        value = getattr(args, f'{kind}_iters')
        if value is not None:
            iters[kind] = value
    return dataclasses.replace(
        budget, iters=iters,
        num_train=args.num_train or budget.num_train)


def work_dir_of(args: argparse.Namespace) -> str:
    """``--work-dir``, or the study's work dir (suffixed ``_train<N>``
    with ``--num-train N`` other than the study's)."""
    if args.work_dir:
        return osp.abspath(args.work_dir)
    work = STUDY_WORK_DIR
    if args.num_train not in (None, STUDY_BUDGET.num_train):
        work += f'_train{args.num_train}'
    return osp.abspath(work)


def geometry(task: Task, data_root: str, scenes: int = 200) -> List[dict]:
    """Per FPN level, the share of the locations region I and G cover on
    the first ``scenes`` val scenes of ``data_root``."""
    import torch
    from mmengine.config import Config

    from mmkd.task_modules.imitation_region import ImitationRegion
    from shapes_demo.tasks import CONFIGS
    with open(osp.join(data_root, 'val.json')) as f:
        coco = json.load(f)
    student = Config.fromfile(osp.join(CONFIGS, task.student))
    anchors = student.model.rpn_head.anchor_generator
    images = coco['images'][:scenes]
    boxes = {img['id']: [] for img in images}
    for ann in coco['annotations']:
        if ann['image_id'] in boxes:
            x, y, w, h = ann['bbox']
            boxes[ann['image_id']].append([x, y, x + w, y + h])
    rows = []
    for name in ('imitation', 'gt'):
        region = ImitationRegion(name, anchor_generator=anchors)
        full = ImitationRegion('full', anchor_generator=anchors)
        covered, total = None, None
        for img in images:
            h, w = img['height'], img['width']
            pad = (-(-h // 64) * 64, -(-w // 64) * 64)
            sizes = region.featmap_sizes(pad)
            b = torch.tensor(boxes[img['id']], dtype=torch.float32)
            masks = region([b.reshape(-1, 4)], sizes, [(h, w)], pad)
            valid = full([b.reshape(-1, 4)], sizes, [(h, w)], pad)
            counts = [float(m.sum()) for m in masks]
            cells = [float(v.sum()) for v in valid]
            covered = counts if covered is None else [
                a + c for a, c in zip(covered, counts)]
            total = cells if total is None else [
                a + c for a, c in zip(total, cells)]
        rows.append(dict(region=name, locations=[
            100 * c / t for c, t in zip(covered, total)]))
    return rows


def main() -> None:
    args = parse_args()
    import mmkd  # noqa: F401  (registries, safe checkpoint loading)
    from shapes_demo.precondition_jobs import (check_pretrain_seed,
                                               concentration_rows,
                                               student_jobs, teacher_jobs,
                                               train_scenes_key)
    from shapes_demo.scheduler import run_jobs
    from shapes_demo.stages import prepare_run
    budget = budget_of(args)
    work = work_dir_of(args)
    tasks = [t for t in STUDY_TASKS if t.name in args.tasks]
    for task in tasks:
        check_pretrain_seed(task, work, args.pretrain_seed)
    seeds = selection_seeds(args.seeds)
    jobs, keys = [], {}
    progress, data = prepare_run(work, budget, 1, tasks)
    longer = not args.own_schedules
    for task in tasks:
        if {'teachers', 'concentration'} & set(args.parts):
            task_jobs, keys[(task.name, 'teachers')] = teacher_jobs(
                task, budget, work, data[task.name], longer,
                args.pretrain_seed)
            jobs += task_jobs
        if {'students', 'concentration'} & set(args.parts):
            task_jobs, keys[(task.name, 'students')] = student_jobs(
                task, budget, seeds, work, data[task.name], longer,
                args.pretrain_seed)
            jobs += task_jobs
    progress.total += len(jobs)
    results = run_jobs(jobs, args.jobs or os.cpu_count() or 1, progress,
                       initargs=(args.threads, ) if args.threads else ())
    out: Dict[str, dict] = {}
    text = []
    for task in tasks:
        out[task.name] = {}
        for part in ('teachers', 'students'):
            if (task.name, part) not in keys or part not in args.parts:
                continue
            runs = {iters: [results[k] for k in run_keys]
                    for iters, run_keys in keys[(task.name, part)].items()}
            rows = convergence_rows(runs)
            out[task.name][part] = rows
            text.append(f'{task.name} {part}: val {task.metric}\n\n' +
                        convergence_table(rows))
            if part == 'teachers':
                rows = train_gap_rows(
                    {iters: run[0] for iters, run in runs.items()},
                    {iters: results[train_scenes_key(k[0])]
                     for iters, k in keys[(task.name, part)].items()})
                out[task.name]['teachers_train_gap'] = rows
                text.append(f'{task.name} teachers: training scenes against '
                            f'val, {task.metric}\n\n' + train_gap_table(rows))
        if task.name == 'det' and 'geometry' in args.parts:
            rows = geometry(task, data[task.name])
            out[task.name]['geometry'] = rows
            text.append('det geometry: share of the locations per level '
                        '(P2..P6)\n\n' + '\n'.join(
                            f"{r['region']}: " + ' / '.join(
                                f'{v:.1f}' for v in r['locations'])
                            for r in rows))
        if task.name == 'det' and 'concentration' in args.parts:
            first = keys[(task.name, 'students')]
            student = results[next(iter(first.values()))[0]]
            rows = concentration_rows(task, work, data[task.name],
                                      student.checkpoint, budget)
            out[task.name]['concentration'] = rows
            text.append('det concentration (val, region I, adapted '
                        'difference): per level locations % / difference '
                        '% / ratio\n\n' + '\n'.join(
                            f"P{i + 2}: {r['locations']:.1f} / "
                            f"{r['difference']:.1f} / "
                            + (f"{r['concentration']:.2f}"
                               if r['concentration'] else '-')
                            for i, r in enumerate(rows)))
    report = osp.join(work, 'report')
    os.makedirs(report, exist_ok=True)
    with open(osp.join(report, 'preconditions.json'), 'w') as f:
        json.dump(out, f, indent=1)
    with open(osp.join(report, 'preconditions.md'), 'w') as f:
        f.write('\n\n'.join(text) + '\n')
    print('\n' + '\n\n'.join(text), flush=True)


if __name__ == '__main__':
    main()
