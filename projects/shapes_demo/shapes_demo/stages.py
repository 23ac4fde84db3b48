"""The demo's stages: which configs train, for how long, and running one."""
import contextlib
import dataclasses
import json
import logging
import multiprocessing
import os
import os.path as osp
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from mmengine.config import Config
from mmengine.runner import Runner

from .generate import generate

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                   'configs')


@dataclass
class Task:
    """One task of the demo: a teacher, a student and distilled variants.

    Args:
        name: ``'seg'`` or ``'det'``.
        metric: The evaluator's key reported in the table.
        teacher: Teacher config (relative to ``configs/``).
        student: Student config.
        variants: Variant name -> distillation config.
        teacher_env: Environment variable the distillation configs read the
            teacher checkpoint from.
        data_env: Environment variable the configs read the data root from.
        pretrain: Config of the stage that pretrains the student's backbone
            on a separate generated pool (None: students start from
            scratch).
        pretrained_env: Environment variable the student config reads the
            pretrained checkpoint from.
    """
    name: str
    metric: str
    teacher: str
    student: str
    variants: Dict[str, str]
    teacher_env: str
    data_env: str
    pretrain: Optional[str] = None
    pretrained_env: Optional[str] = None


TASKS = [
    Task('seg', 'mIoU', 'seg/pspnet_r50_shapes_teacher.py',
         'seg/pspnet_r18_shapes_student.py',
         dict(pixel='seg/skd_pixel_shapes.py', pair='seg/skd_pair_shapes.py',
              holistic='seg/skd_holistic_shapes.py',
              all='seg/skd_all_shapes.py', cwd='seg/cwd_logits_shapes.py'),
         'SHAPES_SEG_TEACHER', 'SHAPES_SEG',
         pretrain='seg/pspnet_r18_shapes_pretrain.py',
         pretrained_env='SHAPES_SEG_PRETRAINED'),
    Task('det', 'coco/bbox_mAP', 'det/faster_rcnn_r50_fpn_shapes_teacher.py',
         'det/faster_rcnn_r18_fpn_shapes_student.py',
         dict(imitation='det/fgfi_imitation_shapes.py',
              full='det/fgfi_full_shapes.py', gt='det/fgfi_gt_shapes.py'),
         'SHAPES_DET_TEACHER', 'SHAPES_DET'),
]


@dataclass
class Budget:
    """Iterations and data size of a demo mode.

    Args:
        teacher_iters: Teacher iterations per task name.
        student_iters: Iterations of every student and distilled student.
        num_train: Generated training scenes.
        num_val: Generated validation scenes (choosing settings).
        num_test: Generated test scenes (the reported metrics).
        pretrain_iters: Iterations of the pretraining stage.
        num_pool: Scenes of the pretraining pool (generator seed
            :data:`POOL_SEED`, none of them in the three splits).
    """
    teacher_iters: Dict[str, int]
    student_iters: int
    num_train: int
    num_val: int
    num_test: int
    pretrain_iters: int
    num_pool: int


# the pool's generator seed (the splits use seed 0)
POOL_SEED = 1


# The segmentation teacher trains 2000 iterations (the two tasks train side
# by side, and the detection branch sets the demo's wall time). 3000 training
# scenes, not 300: the 2000-iteration teacher memorised 300 scenes (71.3 mIoU
# on them, 48.1 on val; its soft labels there were near one-hot, cross-entropy
# to the labels 0.10 against 0.25 on val), while on 3000 it scored 57.4 on
# them and 57.9 on val, for the same cost. The seg students start from a
# backbone pretrained once on a separate pool of 3000 scenes (3000
# iterations), as the paper's students start from ImageNet-pretrained
# weights. On val (seed 1000, lr 0.2, 400 student iterations): 28.4 mIoU from
# scratch, 33.2 from 1000 pretraining iterations, 41.3 from 3000 (the
# pretraining stage's own val mIoU rose from 30.6 at 1000 iterations to 51.5
# at 3000: at 1000 it had not yet learnt the shapes).
BUDGETS = {
    'default': Budget(teacher_iters=dict(seg=2000, det=1200),
                      student_iters=400, num_train=3000, num_val=200,
                      num_test=1000, pretrain_iters=3000, num_pool=3000),
    'quick': Budget(teacher_iters=dict(seg=24, det=24), student_iters=12,
                    num_train=32, num_val=8, num_test=8, pretrain_iters=12,
                    num_pool=16),
}


@dataclass
class StageResult:
    """What one trained stage scored.

    Args:
        task: Task name.
        role: ``'teacher'``, ``'student'`` or the variant name.
        seed: Training seed.
        metric: The task's metric on ``split`` (percent).
        split: ``'val'`` or ``'test'``.
        parts: The metric on :data:`EVAL_PARTS` disjoint, equal parts of
            the split (the evaluation noise).
        setting: What the stage was trained with: ``lr`` and each distill
            loss's ``loss_weight`` (by loss name).
        seconds: Training and evaluation time.
        work_dir: The stage's work directory.
        checkpoint: The last checkpoint.
        student_checkpoint: The student-only checkpoint of a distilled
            student.
        candidate: Index of the grid candidate (selection runs only).
    """
    task: str
    role: str
    seed: int
    metric: float
    split: str
    parts: List[float]
    setting: Dict[str, float]
    seconds: float
    work_dir: str
    checkpoint: str
    student_checkpoint: Optional[str] = None
    candidate: Optional[int] = None


# The evaluation noise is measured on this many disjoint parts of the
# evaluated split: the standard error of the whole split's metric is about
# std(parts) / sqrt(EVAL_PARTS).
EVAL_PARTS = 4


def _schedule(cfg: Config, iters: int) -> None:
    """Shorten a config's schedule to ``iters`` iterations, keeping the
    shape of its learning-rate schedule."""
    old = cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    # at least four logged points (the curves chart), even in quick mode
    logger = cfg.default_hooks.logger
    logger.interval = max(1, min(logger.interval, iters // 4))
    for scheduler in cfg.param_scheduler:
        if scheduler.get('end', 0) >= old:
            scheduler.end = iters
        elif 'end' in scheduler:
            scheduler.end = max(1, min(scheduler.end, iters // 10))
        if 'milestones' in scheduler:
            scheduler.milestones = [max(1, int(m * iters / old))
                                    for m in scheduler.milestones]


class QuietRunner(Runner):
    """mmengine's Runner whose console handler shows warnings only: the
    environment, the config and the per-iteration logs go to the log file."""

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler:
                handler.setLevel(logging.WARNING)
        return logger


def optimizer_lrs(cfg: Config) -> Dict[str, float]:
    """The config's learning rates: ``lr`` (the student's) and, for the
    holistic variants, ``critic_lr``."""
    wrapper = cfg.optim_wrapper
    if 'student' in wrapper:
        return dict(lr=wrapper.student.optimizer.lr,
                    critic_lr=wrapper.discriminator.optimizer.lr)
    return dict(lr=wrapper.optimizer.lr)


def set_lr(cfg: Config, lr: float) -> None:
    """Set the student's learning rate to ``lr``; a holistic critic keeps
    its ratio to the student's (the official 0.04)."""
    wrapper = cfg.optim_wrapper
    if 'student' in wrapper:
        ratio = (wrapper.discriminator.optimizer.lr /
                 wrapper.student.optimizer.lr)
        wrapper.student.optimizer.lr = lr
        wrapper.discriminator.optimizer.lr = ratio * lr
    else:
        wrapper.optimizer.lr = lr


def stage_setting(cfg: Config) -> Dict[str, float]:
    """``lr`` and every distill loss's weight (by loss name) of a config."""
    setting = dict(lr=optimizer_lrs(cfg)['lr'])
    for name, loss in cfg.model.get('distill_losses', {}).items():
        setting[name] = loss.loss_weight
    return setting


@contextlib.contextmanager
def _captured_results(task: Task):
    """Keep what the task's evaluator computes its metric from (one entry
    per evaluated scene, in dataset order), as ``(metric, results)``."""
    if task.name == 'seg':
        from mmseg.evaluation.metrics import IoUMetric as metric_cls
    else:
        from mmdet.evaluation.metrics import CocoMetric as metric_cls
    captured = []
    original = metric_cls.compute_metrics

    def compute_metrics(self, results):
        captured.append((self, list(results)))
        return original(self, results)

    metric_cls.compute_metrics = compute_metrics
    try:
        yield captured, original
    finally:
        metric_cls.compute_metrics = original


def _part_metrics(task: Task, metric, results: list, compute,
                  parts: int) -> List[float]:
    """The task's metric on ``parts`` disjoint, equal parts of ``results``
    (percent), computed by the evaluator's own ``compute`` function."""
    key = task.metric.split('/')[-1]
    bounds = np.linspace(0, len(results), parts + 1).astype(int)
    values = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        sub = results[lo:hi]
        if hasattr(metric, 'img_ids'):  # COCO: only this part's images
            metric.img_ids = [gt['img_id'] for gt, _ in sub]
        metrics = compute(metric, sub)
        if key not in metrics and hasattr(metric, 'img_ids') and not any(
                len(pred['bboxes']) for _, pred in sub):
            # mmdet's CocoMetric reports nothing for a part without a single
            # detection; COCO's AP of no detections is 0
            metrics[key] = 0.0
        value = float(metrics[key])
        values.append(value * 100 if task.metric == 'coco/bbox_mAP'
                      else value)
    return values


def run_stage(task: Task, role: str, config: str, iters: int, seed: int,
              work_dir: str, teacher_checkpoint: Optional[str] = None,
              split: str = 'test', overrides: Optional[dict] = None,
              lr: Optional[float] = None,
              candidate: Optional[int] = None) -> StageResult:
    """Train one config in this process and evaluate it on ``split``.

    What the stage would print (warnings, pycocotools' tables) goes to
    ``<work_dir>/console.log``; mmengine's log file keeps the rest.

    Args:
        task: The task.
        role: ``'teacher'``, ``'student'`` or a variant name.
        config: The config, relative to ``configs/``.
        iters: Training iterations.
        seed: Training seed.
        work_dir: The stage's work directory.
        teacher_checkpoint: The trained teacher (distilled students).
        split: ``'val'`` (choosing settings) or ``'test'`` (reporting).
        overrides: Dotted config keys -> values (a grid candidate).
        lr: The student's learning rate, when not the config's.
        candidate: Index of the grid candidate, recorded in the result.
    """
    from mmkd.utils.runner_config import prepare_config
    if split not in ('val', 'test'):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    if overrides:
        cfg.merge_from_dict(overrides)
    if lr is not None:
        set_lr(cfg, lr)
    _schedule(cfg, iters)
    if split == 'test':
        # the end-of-training evaluation runs on the test split
        cfg.val_dataloader = cfg.test_dataloader
        cfg.val_evaluator = cfg.test_evaluator
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    cfg.experiment_name = f'{task.name}_{role}_seed{seed}_{time.time_ns()}'
    # mmengine keeps one visualizer per name in a process: the stock configs'
    # name='visualizer' would send every later stage's scalars to the first
    # stage's vis_data
    cfg.visualizer.name = cfg.experiment_name
    if teacher_checkpoint is not None:
        cfg.model.teacher_checkpoint = teacher_checkpoint
    setting = stage_setting(cfg)
    prepare_config(cfg)
    start = time.time()
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, 'console.log'), 'w') as console, \
            contextlib.redirect_stdout(console), \
            contextlib.redirect_stderr(console), \
            _captured_results(task) as (captured, compute):
        runner = QuietRunner.from_cfg(cfg)
        runner.train()
        metric_obj, results = captured[-1]
        parts = _part_metrics(task, metric_obj, results, compute,
                              EVAL_PARTS)
        hub = runner.message_hub
        if f'val/{task.metric}' in hub.log_scalars:
            metric = float(hub.get_scalar(f'val/{task.metric}').current())
            if task.metric == 'coco/bbox_mAP':
                metric *= 100  # mmdet reports mAP in [0, 1]
        else:
            # mmdet's CocoMetric logs nothing when the model detected
            # nothing (e.g. a diverged candidate): score it as COCO would
            metric = _part_metrics(task, metric_obj, results, compute, 1)[0]
    checkpoint = osp.join(work_dir, f'iter_{iters}.pth')
    student = osp.join(work_dir, f'iter_{iters}_student.pth')
    result = StageResult(task.name, role, seed, metric, split, parts,
                         setting, time.time() - start, work_dir, checkpoint,
                         student if osp.exists(student) else None,
                         candidate)
    if role == 'teacher':
        # the path the distillation configs default to
        shutil.copyfile(checkpoint, osp.join(work_dir, 'teacher.pth'))
    # the stage's logger is done: its log file is complete and its console
    # handler writes to console.log, closed above
    for handler in list(runner.logger.handlers):
        handler.close()
        runner.logger.removeHandler(handler)
    with open(osp.join(work_dir, 'result.json'), 'w') as f:
        json.dump(asdict(result), f)
    return result


class Progress:
    """One console line per finished stage, numbered across processes.

    Args:
        total: Number of stages of the whole demo.
        start: ``time.time()`` when the demo started.
        counter: A ``multiprocessing`` integer ``Value`` shared by the
            processes that run tasks.
    """

    def __init__(self, total: int, start: float, counter) -> None:
        self.total = total
        self.start = start
        self.counter = counter

    def __call__(self, text: str) -> None:
        with self.counter.get_lock():
            self.counter.value += 1
            print(f'[shapes demo {self.counter.value}/{self.total} '
                  f'{time.time() - self.start:6.0f}s] {text}', flush=True)


def only_variants(tasks: List[Task], names: Optional[List[str]]
                  ) -> List[Task]:
    """The tasks with only the variants ``names`` (all when None).

    Raises:
        ValueError: When a name is no variant of any task.
    """
    if names is None:
        return list(tasks)
    known = {v for t in TASKS for v in t.variants}
    if not set(names) <= known:
        raise ValueError(f'--variants: unknown {sorted(set(names) - known)}; '
                         f'the variants are {sorted(known)}')
    return [dataclasses.replace(t, variants={
        v: c for v, c in t.variants.items() if v in names}) for t in tasks]


def prepare_run(work: str, budget: Budget, stages: int
                ) -> Tuple[Progress, Dict[str, str]]:
    """Start a demo command: its progress printer (``stages`` lines in all,
    the generation of the splits the first) and the generated splits in
    ``<work>/data``.

    Returns:
        tuple: The :class:`Progress` and task name -> dataset root.
    """
    progress = Progress(stages, time.time(),
                        multiprocessing.get_context('spawn').Value('i', 0))
    data = generate(osp.join(work, 'data'), budget.num_train, budget.num_val,
                    budget.num_test)
    progress(f'data: {budget.num_train} train / {budget.num_val} val / '
             f'{budget.num_test} test scenes in {osp.join(work, "data")}')
    return progress, data


# config keys only the selection reads: changing them keeps cached stages
SELECTION_KEYS = ('lr_grid', 'distill_lr_scales', 'weight_grid',
                  'paper_loss_weights')


def _cached_stage(task: Task, role: str, config: str, iters: int,
                  work_dir: str, data_root: str, split: str,
                  progress: Callable[[str], None]) -> StageResult:
    """Train ``config`` (seed 0) in ``work_dir``, or reuse the run there
    when it was trained from the same config, iterations and generated data
    (its ``stage.json``)."""
    os.environ[task.data_env] = data_root  # the config reads it
    with open(osp.join(osp.dirname(data_root), 'generated.json')) as f:
        data = json.load(f)
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    for key in SELECTION_KEYS:  # what the selection reads, not training
        cfg.pop(key, None)
    stamp = dict(config=cfg.pretty_text, iters=iters, data=data)
    stamp_file = osp.join(work_dir, 'stage.json')
    if osp.exists(stamp_file):
        with open(stamp_file) as f:
            cached = json.load(f)
        result = StageResult(**cached['result'])
        if cached['stamp'] == stamp and osp.exists(result.checkpoint):
            progress(f'{task.name} {role}: {split} {task.metric} '
                     f'{result.metric:.2f} (trained earlier, reused)')
            return result
    result = run_stage(task, role, config, iters, 0, work_dir, split=split)
    with open(stamp_file, 'w') as f:
        json.dump(dict(stamp=stamp, result=asdict(result)), f)
    progress(f'{task.name} {role}: {split} {task.metric} '
             f'{result.metric:.2f} ({result.seconds:.0f}s)')
    return result


def train_teacher(task: Task, budget: Budget, work: str, data_root: str,
                  progress: Callable[[str], None]) -> StageResult:
    """Train the task's teacher (seed 0, evaluated on the test split), or
    reuse the one in ``<work>/<task>_teacher`` (see :func:`_cached_stage`);
    the distillation configs then read it from ``task.teacher_env``."""
    teacher = _cached_stage(task, 'teacher', task.teacher,
                            budget.teacher_iters[task.name],
                            osp.join(work, f'{task.name}_teacher'),
                            data_root, 'test', progress)
    os.environ[task.teacher_env] = osp.join(teacher.work_dir, 'teacher.pth')
    return teacher


def pretrain_student(task: Task, budget: Budget, work: str,
                     progress: Callable[[str], None]) -> Optional[StageResult]:
    """Pretrain the student's backbone on a separate generated pool (seed
    :data:`POOL_SEED`, in ``<work>/pool``), once: the run in
    ``<work>/<task>_pretrain`` is reused while its config, iterations and
    pool are unchanged. The student config reads the checkpoint from
    ``task.pretrained_env``. Nothing to do for a task without ``pretrain``.
    """
    if task.pretrain is None:
        return None
    pool = generate(osp.join(work, 'pool'), budget.num_pool, 50, 0,
                    seed=POOL_SEED)[task.name]
    split_root = os.environ.get(task.data_env)
    result = _cached_stage(task, 'pretraining', task.pretrain,
                           budget.pretrain_iters,
                           osp.join(work, f'{task.name}_pretrain'), pool,
                           'val', progress)
    if split_root is not None:
        os.environ[task.data_env] = split_root
    os.environ[task.pretrained_env] = result.checkpoint
    return result


def run_task(task: Task, budget: Budget, seeds: List[int], work: str,
             data_root: str, progress: Callable[[str], None]
             ) -> List[StageResult]:
    """The report: train the task's teacher (once), then its student and
    distilled students once per seed with the configs' settings, and
    evaluate them on the test split, in this process.

    Args:
        task: The task.
        budget: Iterations of the teacher and of every student.
        seeds: Seeds of the students and distilled students.
        work: The demo's work directory; stage ``<task>_<role>_seed<k>``
            trains in ``<work>/<task>_<role>_seed<k>``.
        data_root: The task's generated dataset.
        progress: Called with one line of text after every stage.
    """
    pretrain_student(task, budget, work, progress)
    teacher = train_teacher(task, budget, work, data_root, progress)
    os.environ[task.data_env] = data_root
    results = [teacher]
    teacher_ckpt = os.environ[task.teacher_env]
    for seed in seeds:
        for role, config in [('student', task.student)] + list(
                task.variants.items()):
            result = run_stage(
                task, role, config, budget.student_iters, seed,
                osp.join(work, f'{task.name}_{role}_seed{seed}'),
                teacher_checkpoint=None if role == 'student' else
                teacher_ckpt)
            progress(f'{task.name} {role} (seed {seed}): test '
                     f'{task.metric} {result.metric:.2f} '
                     f'({result.seconds:.0f}s)')
            results.append(result)
    return results


def select_task(task: Task, budget: Budget, seeds: List[int], work: str,
                data_root: str, progress: Callable[[str], None]
                ) -> List[StageResult]:
    """The selection: the baseline student's learning rate from its
    config's ``lr_grid``, then each variant's loss weights from its
    config's ``weight_grid`` crossed with learning rates
    ``distill_lr_scales`` × the baseline's chosen one, every candidate
    trained once per seed and scored on the val split, in this process.

    Args:
        task: The task.
        budget: Iterations of the teacher and of every student.
        seeds: Selection seeds (never reported).
        work: The demo's work directory; candidate ``i`` trains in
            ``<work>/select/<task>_<role>_c<i>_seed<k>``.
        data_root: The task's generated dataset.
        progress: Called with one line of text after every stage.

    Returns:
        list[StageResult]: The teacher, then every candidate's runs.
    """
    from .protocol import best_candidate, lr_grid, variant_candidates
    pretrain_student(task, budget, work, progress)
    teacher = train_teacher(task, budget, work, data_root, progress)
    os.environ[task.data_env] = data_root
    teacher_ckpt = os.environ[task.teacher_env]
    results = [teacher]

    def grid_runs(role, config, candidates):
        for i, (overrides, lr) in enumerate(candidates):
            for seed in seeds:
                result = run_stage(
                    task, role, config, budget.student_iters, seed,
                    osp.join(work, 'select',
                             f'{task.name}_{role}_c{i}_seed{seed}'),
                    teacher_checkpoint=None if role == 'student' else
                    teacher_ckpt, split='val', overrides=overrides,
                    lr=lr, candidate=i)
                progress(f'{task.name} {role} {_setting_text(result)} '
                         f'(seed {seed}): val {task.metric} '
                         f'{result.metric:.2f} ({result.seconds:.0f}s)')
                results.append(result)

    student_cfg = Config.fromfile(osp.join(CONFIGS, task.student))
    grid_runs('student', task.student,
              [(None, lr) for lr in lr_grid(student_cfg, task.student)])
    lr = lr_grid(student_cfg, task.student)[best_candidate(
        [r for r in results if r.role == 'student'])]
    for role, config in task.variants.items():
        cfg = Config.fromfile(osp.join(CONFIGS, config))
        grid_runs(role, config, variant_candidates(cfg, config, lr))
    return results


def _setting_text(result: StageResult) -> str:
    return ', '.join(f'{k} {v:g}' for k, v in result.setting.items())


def run_task_process(mode: str, task: Task, budget: Budget,
                     seeds: List[int], work: str, data_root: str,
                     progress: Progress, threads: int,
                     out_file: str) -> None:
    """:func:`run_task` (``mode='report'``) or :func:`select_task`
    (``mode='select'``) as the target of a (spawned) process: ``threads``
    torch threads, the results written to ``out_file`` as JSON."""
    import torch
    torch.set_num_threads(threads)
    import mmkd  # noqa: F401  (registries, safe checkpoint loading)
    run = dict(report=run_task, select=select_task)[mode]
    results = run(task, budget, seeds, work, data_root, progress)
    with open(out_file, 'w') as f:
        json.dump([asdict(r) for r in results], f)


def load_results(path: str) -> List[StageResult]:
    """The results :func:`run_task_process` wrote."""
    with open(path) as f:
        return [StageResult(**r) for r in json.load(f)]


def run_tasks(mode: str, tasks: List[Task], budget: Budget,
              seeds: List[int], work: str, data: Dict[str, str],
              progress: Progress, jobs: int) -> List[StageResult]:
    """Run each task's report or selection (see :func:`run_task_process`):
    in this process when ``jobs`` is 1, otherwise each task in its own
    spawned process, ``jobs`` at a time, each with ``cpu_count // jobs``
    torch threads; stop them all as soon as one fails.

    Args:
        mode: ``'report'`` or ``'select'``.
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
    if jobs == 1:
        run = dict(report=run_task, select=select_task)[mode]
        results = []
        for task in tasks:
            results += run(task, budget, seeds, work, data[task.name],
                           progress)
        return results
    ctx = multiprocessing.get_context('spawn')
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pending, running, results = list(tasks), {}, []
    while pending or running:
        while pending and len(running) < jobs:
            task = pending.pop(0)
            out = osp.join(work, f'{task.name}_{mode}_results.json')
            proc = ctx.Process(
                target=run_task_process, name=f'shapes-demo-{task.name}',
                args=(mode, task, budget, seeds, work, data[task.name],
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
                         f'stage logs are under {work}/')
            results += load_results(out)
    order = [t.name for t in tasks]
    return sorted(results, key=lambda r: order.index(r.task))
