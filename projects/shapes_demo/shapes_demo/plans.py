"""The demo's job graphs: which stages a report, a selection or a
convergence check trains, each after the stages it needs."""
import functools
import os.path as osp
from typing import Dict, List, Optional, Tuple

from mmengine.config import Config

from .scheduler import Job, run_jobs
from .stage_run import StageResult
from .stages import (Progress, pretrain_backbone, pretrain_dir, teacher_dir,
                     train_student, train_teacher)
from .tasks import CONFIGS, Budget, Task, stage_iters


def pretraining_jobs(task: Task, budget: Budget, work: str,
                     env: Dict[str, str], seed: int = 0
                     ) -> Tuple[List[Job], Optional[str], Optional[str]]:
    """The jobs that pretrain the task's student's and teacher's backbones
    (:func:`pretrain_backbone`, with ``seed``; none where the task has no
    such stage). ``env`` gains the variables their configs read the
    checkpoints from.

    Returns:
        tuple: The jobs, and the keys of the student's and the teacher's
        pretraining jobs (None without one).
    """
    jobs, keys = [], {}
    for whose, config, var in (
            ('teacher', task.teacher_pretrain, task.teacher_pretrained_env),
            ('student', task.pretrain, task.pretrained_env)):
        keys[whose] = None
        if config is None:
            continue
        env[var] = osp.join(
            pretrain_dir(work, task, whose),
            f"iter_{stage_iters(budget, 'pretraining', config)}.pth")
        # the keys are the names of the stages' folders
        keys[whose] = osp.basename(pretrain_dir(work, task, whose))
        jobs.append(Job(keys[whose], pretrain_backbone,
                        dict(task=task, budget=budget, work=work,
                             whose=whose, seed=seed), env,
                        priority=0 if whose == 'teacher' else 1))
    return jobs, keys['student'], keys['teacher']


def shown_keys(jobs: List[Job]) -> List[str]:
    """The keys of the jobs whose results a report or a selection shows:
    every job but the pretraining of a backbone (the student's or the
    teacher's)."""
    return [j.key for j in jobs if j.fn is not pretrain_backbone]


def _first_jobs(task: Task, budget: Budget, work: str, data_root: str
                ) -> Tuple[List[Job], Dict[str, str], Optional[str]]:
    """The task's teacher and pretraining jobs, the environment every job
    of the task runs with, and the student's pretraining job's key (None
    without one)."""
    env = {task.data_env: data_root,
           task.teacher_env: osp.join(teacher_dir(work, task),
                                      'teacher.pth')}
    jobs, pretrain, teacher_pretrain = pretraining_jobs(task, budget, work,
                                                        env)
    # the teacher first (the longest stage) once its backbone exists
    jobs.append(Job(f'{task.name}_teacher', train_teacher,
                    dict(task=task, budget=budget, work=work,
                         data_root=data_root), env,
                    after=(teacher_pretrain, ) if teacher_pretrain else (),
                    priority=0))
    return jobs, env, pretrain


def _student_job(task: Task, budget: Budget, env: Dict[str, str],
                 pretrain: Optional[str], key: str, role: str, config: str,
                 work_dir: str, seed: int, split: str,
                 after: Tuple[str, ...] = (), **kwargs) -> Job:
    """A student's job: after the pretraining, and after the teacher too
    for a distilled student. Every student trains for the baseline's
    iterations with the baseline's learning-rate schedule
    (``task.student``'s; a variant config's own is replaced), so that a
    distilled student and its baseline stay paired."""
    after = after + ((pretrain, ) if pretrain else ())
    if role != 'student':
        after += (f'{task.name}_teacher', )
        kwargs['teacher_checkpoint'] = env[task.teacher_env]
        kwargs['schedule_from'] = task.student
    return Job(key, train_student,
               dict(task=task, role=role, config=config,
                    iters=stage_iters(budget, 'student', task.student),
                    seed=seed,
                    work_dir=work_dir, split=split, **kwargs),
               env, after=tuple(dict.fromkeys(after)), priority=2)


def report_jobs(task: Task, budget: Budget, seeds: List[int], work: str,
                data_root: str) -> Tuple[List[Job], List[str]]:
    """The report: the task's teacher (once), then its student and
    distilled students once per seed with the configs' settings, evaluated
    on the test split; stage ``<task>_<role>_seed<k>`` trains in
    ``<work>/<task>_<role>_seed<k>``.

    Returns:
        tuple: The jobs, and the keys of those whose results the report
        shows (the teacher, then the students seed by seed).
    """
    jobs, env, pretrain = _first_jobs(task, budget, work, data_root)
    for seed in seeds:
        for role, config in [('student', task.student)] + list(
                task.variants.items()):
            name = f'{task.name}_{role}_seed{seed}'
            jobs.append(_student_job(task, budget, env, pretrain, name, role,
                                     config, osp.join(work, name), seed,
                                     'test'))
    return jobs, shown_keys(jobs)


def convergence_jobs(task: Task, budget: Budget, seeds: List[int],
                     work: str, data_root: str, schedules: List[int]
                     ) -> Tuple[List[Job], List[str]]:
    """The baseline student with its config's settings, trained once per
    schedule length and seed and scored on the val split (how far the
    demo's schedule is from convergence); run ``<task>_student_<n>it_seed<k>``
    trains in ``<work>/convergence/<task>_student_<n>it_seed<k>``.

    Args:
        task: The task.
        budget: Data sizes and the teacher's and pretraining's iterations
            (its ``'student'`` entry is replaced by ``schedules``).
        seeds: Selection seeds (1000 and up).
        work: The demo's work directory.
        data_root: The task's generated dataset root.
        schedules: Iterations of each student run; a schedule other than
            the config's is scaled to it (:func:`shorten_schedule`).

    Returns:
        tuple: The jobs, and the keys of the student runs, schedule by
        schedule, each schedule's seed by seed.
    """
    jobs, env, pretrain = _first_jobs(task, budget, work, data_root)
    keys = []
    for iters in schedules:
        for seed in seeds:
            name = f'{task.name}_student_{iters}it_seed{seed}'
            job = _student_job(task, budget, env, pretrain, name, 'student',
                               task.student,
                               osp.join(work, 'convergence', name), seed,
                               'val')
            job.kwargs['iters'] = iters
            jobs.append(job)
            keys.append(name)
    return jobs, keys


def selection_jobs(task: Task, budget: Budget, seeds: List[int], work: str,
                   data_root: str) -> Tuple[List[Job], List[str]]:
    """The selection: the baseline student's learning rate from its
    config's ``lr_grid``, then each variant's loss weights from its
    config's ``weight_grid`` crossed with learning rates
    ``distill_lr_scales`` × the baseline's chosen one, every candidate
    trained once per seed and scored on the val split; candidate ``i``
    trains in ``<work>/select/<task>_<role>_c<i>_seed<k>``. The variants'
    jobs wait for every baseline candidate.

    Returns:
        tuple: The jobs, and the keys of those the selection reports (the
        teacher, then every candidate's runs).
    """
    from .protocol import best_candidate, lr_grid, variant_candidates
    jobs, env, pretrain = _first_jobs(task, budget, work, data_root)

    def grid_jobs(role, config, candidates, after=(), prepare=None):
        """One job per candidate (its fixed kwargs) and seed."""
        keys = []
        for i, fixed in enumerate(candidates):
            for seed in seeds:
                name = f'{task.name}_{role}_c{i}_seed{seed}'
                job = _student_job(task, budget, env, pretrain, name, role,
                                   config, osp.join(work, 'select', name),
                                   seed, 'val', after, candidate=i, **fixed)
                if prepare is not None:
                    job.prepare = functools.partial(prepare, i)
                jobs.append(job)
                keys.append(name)
        return keys

    rates = lr_grid(Config.fromfile(osp.join(CONFIGS, task.student)),
                    task.student)
    baseline = grid_jobs('student', task.student,
                         [dict(lr=lr) for lr in rates])

    def chosen_lr(results: Dict[str, StageResult]) -> float:
        return rates[best_candidate([results[k] for k in baseline])]

    for role, config in task.variants.items():
        cfg = Config.fromfile(osp.join(CONFIGS, config))

        def prepare(i, results, cfg=cfg, config=config):
            overrides, lr = variant_candidates(cfg, config,
                                               chosen_lr(results))[i]
            return dict(overrides=overrides, lr=lr)

        grid_jobs(role, config,
                  [{}] * len(variant_candidates(cfg, config, 1.0)),
                  tuple(baseline), prepare)
    return jobs, shown_keys(jobs)


def run_tasks(mode: str, tasks: List[Task], budget: Budget,
              seeds: List[int], work: str, data: Dict[str, str],
              progress: Progress, jobs: int) -> List[StageResult]:
    """Run the tasks' report (:func:`report_jobs`) or selection
    (:func:`selection_jobs`) stage by stage on ``jobs`` worker processes
    (in this process when ``jobs`` is 1), each with ``cpu_count // jobs``
    torch threads: a stage starts as soon as the stages it needs are done,
    whichever task it belongs to; everything stops when one fails.

    Args:
        mode: ``'report'`` or ``'select'``.
        tasks: The tasks to run.
        budget: Iterations and data size.
        seeds: Seeds of the students.
        work: The demo's work directory.
        data: Task name -> generated dataset root.
        progress: The console's progress printer.
        jobs: Processes at a time.

    Returns:
        list[StageResult]: The results task by task, in the order of
        ``tasks``.
    """
    plan = dict(report=report_jobs, select=selection_jobs)[mode]
    all_jobs, shown = [], []
    for task in tasks:
        task_jobs, keys = plan(task, budget, seeds, work, data[task.name])
        all_jobs += task_jobs
        shown += keys
    results = run_jobs(all_jobs, jobs, progress)
    return [results[k] for k in shown]
