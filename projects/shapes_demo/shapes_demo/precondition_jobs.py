"""The stages and measurements of ``preconditions.py``."""
import dataclasses
import json
import os.path as osp
from typing import Dict, List, Tuple

from .scheduler import Job
from .stage_run import StageResult, evaluate_checkpoint
from .plans import pretraining_jobs
from .stages import cached_stage, file_digest, pretrain_dir
from .tasks import Budget, Task, stage_iters

#: The teachers train for their schedule and this multiple of it.
TEACHER_LONGER = 2.0
#: The baseline students train for their schedule and this multiple of it.
STUDENT_LONGER = 1.5


def precondition_dir(work: str, name: str) -> str:
    """Where the precondition run ``name`` (:func:`run_key`) trains."""
    return osp.join(work, 'preconditions', name)


def run_key(task: Task, role: str, iters: int, seed: int = 0) -> str:
    """The key (and folder name) of a precondition run: the teacher's
    ``<task>_teacher_<n>it``, a student's ``<task>_student_<n>it_seed<k>``.
    """
    if role == 'teacher':
        return f'{task.name}_teacher_{iters}it'
    return f'{task.name}_student_{iters}it_seed{seed}'


def own_schedule_checkpoint(task: Task, budget: Budget, work: str,
                            role: str, seed: int = 0) -> str:
    """The checkpoint of the precondition run of the task's teacher
    (``role='teacher'``) or baseline student (``'student'``, with
    ``seed``) at its own schedule (:func:`teacher_jobs`,
    :func:`student_jobs`)."""
    config = task.teacher if role == 'teacher' else task.student
    iters = stage_iters(budget, role, config)
    name = 'teacher.pth' if role == 'teacher' else f'iter_{iters}.pth'
    return osp.join(
        precondition_dir(work, run_key(task, role, iters, seed)), name)


def check_pretrain_seed(task: Task, work: str, seed: int) -> None:
    """Refuse to pretrain ``task``'s backbones with ``seed`` in ``work``
    when a pretraining stage of another seed is there: the precondition
    runs cached in ``work`` started from it, and their stamps do not hold
    the backbone they started from.

    Raises:
        SystemExit: Naming the stage found and the option to give.
    """
    for whose in ('student', 'teacher'):
        stamp_file = osp.join(pretrain_dir(work, task, whose), 'stage.json')
        if not osp.exists(stamp_file):
            continue
        with open(stamp_file) as f:
            found = json.load(f)['stamp'].get('seed', 0)
        if found != seed:
            raise SystemExit(
                f'--pretrain-seed {seed}: {stamp_file} is the pretraining '
                f'stage of seed {found}, which the runs cached in {work} '
                'started from; give this seed a --work-dir of its own, e.g. '
                f'{osp.normpath(work)}_pretrain{seed}')


def cached_run(task: Task, role: str, config: str, iters: int, seed: int,
               work_dir: str, data_root: str) -> Tuple[StageResult, str]:
    """One precondition run, scored on val, reused from ``work_dir`` when
    it was trained from the same config, iterations, seed and data
    (:func:`cached_stage`)."""
    return cached_stage(task, role, config, iters, work_dir, data_root,
                        'val', seed=seed)


def train_scenes_key(key: str) -> str:
    """The key of the job scoring the run ``key`` on the training scenes."""
    return f'{key}_train_scenes'


def scored_on_train_scenes(task: Task, config: str, iters: int,
                           run_dir: str, work_dir: str, data_root: str
                           ) -> Tuple[StageResult, str]:
    """The teacher trained in ``run_dir`` (the checkpoint its
    ``stage.json`` names) scored on the training scenes without
    augmentation (``evaluate_checkpoint``'s ``'train'`` split), in
    ``work_dir``: reused while that checkpoint is the same."""
    with open(osp.join(run_dir, 'stage.json')) as f:
        checkpoint = json.load(f)['result']['checkpoint']

    def score(task, role, config, iters, seed, work_dir, split, resume):
        return evaluate_checkpoint(task, role, config, checkpoint, work_dir,
                                   split)
    return cached_stage(task, 'teacher', config, iters, work_dir, data_root,
                        'train', score,
                        inputs=dict(checkpoint=file_digest(checkpoint)))


def teacher_jobs(task: Task, budget: Budget, work: str, data_root: str,
                 longer: bool = True, pretrain_seed: int = 0
                 ) -> Tuple[List[Job], Dict[int, List[str]]]:
    """The pretraining of the teacher's backbone where the task has one
    (cached in the work dir, as the study's), then the teacher trained for
    its schedule and (``longer``) :data:`TEACHER_LONGER` times it (seed 0),
    scored on val, in ``<work>/preconditions/<task>_teacher_<n>it``, and on
    the training scenes after it (:func:`scored_on_train_scenes`, key
    :func:`train_scenes_key`): its train-against-val gap;
    ``pretrain_seed`` is the pretraining stage's seed.

    Returns:
        tuple: The jobs, and iterations -> the keys of their runs.
    """
    env = {task.data_env: data_root}
    jobs, _, pretrain = pretraining_jobs(
        dataclasses.replace(task, pretrain=None), budget, work, env,
        pretrain_seed)
    own = stage_iters(budget, 'teacher', task.teacher)
    keys = {}
    # the longer runs last: the concentration needs only the first
    schedules = (own, int(own * TEACHER_LONGER)) if longer else (own, )
    for priority, iters in enumerate(schedules):
        key = run_key(task, 'teacher', iters)
        jobs.append(Job(key, cached_run, dict(
            task=task, role='teacher', config=task.teacher, iters=iters,
            seed=0, work_dir=precondition_dir(work, key),
            data_root=data_root),
            env, after=(pretrain, ) if pretrain else (),
            priority=2 * priority))
        jobs.append(Job(train_scenes_key(key), scored_on_train_scenes, dict(
            task=task, config=task.teacher, iters=iters,
            run_dir=precondition_dir(work, key),
            work_dir=precondition_dir(work, train_scenes_key(key)),
            data_root=data_root), env, after=(key, ),
            priority=2 * priority))
        keys[iters] = [key]
    return jobs, keys


def student_jobs(task: Task, budget: Budget, seeds: List[int], work: str,
                 data_root: str, longer: bool = True, pretrain_seed: int = 0
                 ) -> Tuple[List[Job], Dict[int, List[str]]]:
    """The student's pretraining stage (cached in the work dir, as the
    study's), then the baseline student for its schedule and (``longer``)
    :data:`STUDENT_LONGER` times it with ``seeds``, scored on val, in
    ``<work>/preconditions/<task>_student_<n>it_seed<k>``;
    ``pretrain_seed`` is the pretraining stage's seed.

    Returns:
        tuple: The jobs, and iterations -> the keys of their runs in seed
        order.
    """
    env = {task.data_env: data_root}
    jobs, pretrain, _ = pretraining_jobs(
        dataclasses.replace(task, teacher_pretrain=None), budget, work, env,
        pretrain_seed)
    own = stage_iters(budget, 'student', task.student)
    keys = {}
    schedules = (own, int(own * STUDENT_LONGER)) if longer else (own, )
    for priority, iters in enumerate(schedules):
        keys[iters] = []
        for seed in seeds:
            key = run_key(task, 'student', iters, seed)
            jobs.append(Job(key, cached_run, dict(
                task=task, role='student', config=task.student,
                iters=iters, seed=seed,
                work_dir=precondition_dir(work, key),
                data_root=data_root), env,
                after=(pretrain, ) if pretrain else (),
                priority=1 + priority))
            keys[iters].append(key)
    return jobs, keys


def concentration_rows(task: Task, work: str, data_root: str,
                       student_checkpoint: str,
                       budget: Budget) -> List[dict]:
    """FGFI's premise on the val scenes (``shapes_demo.concentration``):
    per FPN level, the share of the locations in region I (ψ 0.5, the
    student's anchors) and of the adapted teacher-student difference inside
    it, for the teacher of :func:`teacher_jobs` (its own schedule) and the
    student of ``student_checkpoint``."""
    import os

    import torch
    from mmdet.apis import init_detector
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmkd.task_modules.imitation_region import ImitationRegion

    from .concentration import least_squares_residual, region_shares
    from .tasks import CONFIGS
    os.environ[task.data_env] = data_root
    teacher_ckpt = own_schedule_checkpoint(task, budget, work, 'teacher')
    student_cfg, teacher_cfg = (Config.fromfile(osp.join(CONFIGS, c))
                                for c in (task.student, task.teacher))
    for cfg in (student_cfg, teacher_cfg):  # the checkpoints hold them
        cfg.model.init_cfg = None
        cfg.model.backbone.init_cfg = None
    teacher = init_detector(teacher_cfg, teacher_ckpt, device='cpu')
    student = init_detector(student_cfg, student_checkpoint, device='cpu')
    anchors = student_cfg.model.rpn_head.anchor_generator
    region = ImitationRegion('imitation', anchor_generator=anchors,
                             mask_generator=dict(psi=0.5))
    full = ImitationRegion('full', anchor_generator=anchors)
    loader = Runner.build_dataloader(student_cfg.val_dataloader)
    feats_s, feats_t, masks, valid = [], [], [], []
    with torch.no_grad():
        for batch in loader:
            data = student.data_preprocessor(batch, False)
            inputs, samples = data['inputs'], data['data_samples']
            s = student.extract_feat(inputs)
            t = teacher.extract_feat(inputs)
            sizes = [f.shape[-2:] for f in s]
            boxes = [x.gt_instances.bboxes for x in samples]
            shapes = [x.metainfo['img_shape'] for x in samples]
            masks.append(region(boxes, sizes, shapes, inputs.shape))
            valid.append(full(boxes, sizes, shapes, inputs.shape))
            feats_s.append(s)
            feats_t.append(t)
    levels = range(len(feats_s[0]))

    def cat(per_batch, lvl):
        return torch.cat([b[lvl] for b in per_batch])

    residual = [least_squares_residual(cat(feats_s, lvl), cat(feats_t, lvl),
                                       cat(valid, lvl)) for lvl in levels]
    return region_shares([cat(masks, lvl) for lvl in levels],
                         [cat(valid, lvl) for lvl in levels], residual)
