"""The demo's stages: which configs train, for how long, and running one."""
import contextlib
import dataclasses
import functools
import json
import logging
import os
import os.path as osp
import shutil
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from mmengine.config import Config
from mmengine.runner import Runner

from mmkd.testing.shapes import make_shapes_dataset

from .scheduler import Job, run_jobs

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
        default_variants: The variants a run trains when ``--variants`` is
            not given (None: all); the others train with ``--variants``
            naming them, or ``--variants all``.
        scenes: Arguments of :func:`make_shapes_dataset` other than the
            split sizes for the task's scenes and its pretraining pool
            (empty: the generator's defaults, in ``<work>/data`` and
            ``<work>/pool``; otherwise in folders named after them).
        pretrain_kind: What the pretraining stage trains: ``'task'`` (the
            student's own model on the pool, :func:`pretrain_student`) or
            ``'classify'`` (a classifier of the pool's scenes with the
            student's backbone, ``shapes_demo.classifier``).
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
    default_variants: Optional[Tuple[str, ...]] = None
    scenes: Dict[str, Any] = dataclasses.field(default_factory=dict)
    pretrain_kind: str = 'task'


def scenes_dir(work: str, task: Task, kind: str = 'data') -> str:
    """Where the task's scenes (``kind='data'``) or its pretraining pool
    (``'pool'``) are generated: ``<work>/<kind>`` for the default scenes,
    ``<work>/<kind>_<argument><value>...`` for others."""
    suffix = ''.join(f'_{k}{v}' for k, v in sorted(task.scenes.items()))
    return osp.join(work, kind + suffix)


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
              full='det/fgfi_full_shapes.py', gt='det/fgfi_gt_shapes.py',
              d='det/fgfi_d_shapes.py', id='det/fgfi_id_shapes.py',
              fgd='det/fgd_shapes.py', pkd='det/pkd_shapes.py',
              mgd='det/mgd_shapes.py'),
         'SHAPES_DET_TEACHER', 'SHAPES_DET',
         pretrain='det/faster_rcnn_r18_fpn_shapes_pretrain.py',
         pretrained_env='SHAPES_DET_PRETRAINED',
         # FGFI's regions against the baseline: the default run fits its
         # time budget (projects/shapes_demo/docs/times.md); D, ID and
         # the successors run with --variants
         default_variants=('imitation', 'full', 'gt')),
]


@dataclass
class Budget:
    """Data size of a demo mode, and the iterations it trains where they
    are not the configs' own.

    Args:
        num_train: Generated training scenes.
        num_val: Generated validation scenes (choosing settings).
        num_test: Generated test scenes (the reported metrics).
        num_pool: Scenes of the pretraining pool (generator seed
            :data:`POOL_SEED`, none of them in the three splits).
        iters: Kind of stage (``'teacher'``, ``'pretraining'``,
            ``'student'``: the baseline and every distilled student) ->
            iterations that replace its config's schedule
            (:func:`shorten_schedule`). A kind not listed trains its
            config's ``train_cfg.max_iters``.
    """
    num_train: int
    num_val: int
    num_test: int
    num_pool: int
    iters: Dict[str, int] = dataclasses.field(default_factory=dict)


# the pool's generator seed (the splits use seed 0)
POOL_SEED = 1

# The default run trains every stage for its config's schedule, on the data
# sizes below; why these sizes and schedules: the demo's docs
# (projects/shapes_demo/docs/segmentation_setting.md and
# detection_setting.md). --quick is a smoke test: a few scenes, a few
# iterations per stage.
BUDGETS = {
    'default': Budget(num_train=3000, num_val=200, num_test=1000,
                      num_pool=3000),
    'quick': Budget(num_train=32, num_val=8, num_test=8, num_pool=16,
                    iters=dict(teacher=24, pretraining=12, student=12)),
}


@functools.lru_cache(maxsize=None)
def config_iters(config: str) -> int:
    """The training iterations of a config (relative to ``configs/``)."""
    return Config.fromfile(osp.join(CONFIGS, config)).train_cfg.max_iters


def stage_iters(budget: Budget, kind: str, config: str) -> int:
    """The iterations a stage of ``kind`` trains ``config`` for: the
    budget's for that kind, else the config's."""
    if kind in budget.iters:
        return budget.iters[kind]
    return config_iters(config)


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
        classes: Segmentation only: each class's IoU on ``split`` (percent,
            by class name; None for a class absent from the split and its
            predictions).
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
    classes: Optional[Dict[str, Optional[float]]] = None


# The evaluation noise is measured on this many disjoint parts of the
# evaluated split: the standard error of the whole split's metric is about
# std(parts) / sqrt(EVAL_PARTS).
EVAL_PARTS = 4


def shorten_schedule(cfg: Config, iters: int) -> None:
    """Shorten a config's schedule to ``iters`` iterations, keeping the
    shape of its learning-rate schedule: schedulers that end with training
    end at ``iters``, milestones scale with it, and a warm-up lasts at most
    a tenth of it."""
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


def _class_ious(metric, results: list) -> Dict[str, Optional[float]]:
    """Each class's IoU (percent) over ``results``, the per-scene areas
    mmseg's ``IoUMetric`` collects (intersection, union, prediction, label;
    one value per class each), as the metric's own per-class table."""
    intersect = sum(r[0] for r in results).double()
    union = sum(r[1] for r in results).double()
    return {name: float(100 * i / u) if u > 0 else None
            for name, i, u in zip(metric.dataset_meta['classes'],
                                  intersect.tolist(), union.tolist())}


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
        iters: Training iterations; another number than the config's
            ``train_cfg.max_iters`` shortens its schedule
            (:func:`shorten_schedule`, logged in the stage's log file).
        seed: Training seed.
        work_dir: The stage's work directory.
        teacher_checkpoint: The trained teacher (distilled students).
        split: ``'val'`` (choosing settings) or ``'test'`` (reporting).
        overrides: Dotted config keys -> values (a grid candidate).
        lr: The student's learning rate, when not the config's.
        candidate: Index of the grid candidate, recorded in the result.
    """
    from mmkd.engine.runner_config import prepare_config
    if split not in ('val', 'test'):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    if overrides:
        cfg.merge_from_dict(overrides)
    if lr is not None:
        set_lr(cfg, lr)
    own_iters = cfg.train_cfg.max_iters
    if iters != own_iters:
        shorten_schedule(cfg, iters)
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
        if iters != own_iters:
            runner.logger.info(f'{config}: {iters} iterations, not the '
                               f"config's {own_iters} (the demo's budget)")
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
        classes = (_class_ious(metric_obj, results) if task.name == 'seg'
                   else None)
    checkpoint = osp.join(work_dir, f'iter_{iters}.pth')
    student = osp.join(work_dir, f'iter_{iters}_student.pth')
    result = StageResult(task.name, role, seed, metric, split, parts,
                         setting, time.time() - start, work_dir, checkpoint,
                         student if osp.exists(student) else None,
                         candidate, classes)
    if role == 'teacher':
        # the path the distillation configs default to
        shutil.copyfile(checkpoint, osp.join(work_dir, 'teacher.pth'))
    # the stage's logger is done: its log file is complete and its console
    # handler writes to console.log, closed above
    close_logger(runner)
    with open(osp.join(work_dir, 'result.json'), 'w') as f:
        json.dump(asdict(result), f)
    return result


def close_logger(runner: Runner) -> None:
    """Close and remove the handlers of a finished runner's logger (its log
    file is complete; its console handler may write to a file that is about
    to close), so that later runners of the process do not write to them."""
    for handler in list(runner.logger.handlers):
        handler.close()
        runner.logger.removeHandler(handler)


class Progress:
    """One numbered console line per finished stage.

    Args:
        total: Number of stages of the whole demo.
        start: ``time.time()`` when the demo started.
    """

    def __init__(self, total: int, start: float) -> None:
        self.total = total
        self.start = start
        self.count = 0

    def __call__(self, text: str) -> None:
        self.count += 1
        print(f'[shapes demo {self.count}/{self.total} '
              f'{time.time() - self.start:6.0f}s] {text}', flush=True)


def only_variants(tasks: List[Task], names: Optional[List[str]]
                  ) -> List[Task]:
    """The tasks with only the variants ``names``: each task's
    ``default_variants`` when None, every variant for ``['all']``.

    Raises:
        ValueError: When a name is no variant of any task.
    """
    if names is None:
        return [t if t.default_variants is None else dataclasses.replace(
            t, variants={v: c for v, c in t.variants.items()
                         if v in t.default_variants}) for t in tasks]
    if names == ['all']:
        return list(tasks)
    known = {v for t in TASKS for v in t.variants}
    if not set(names) <= known:
        raise ValueError(f'--variants: unknown {sorted(set(names) - known)}; '
                         f'the variants are {sorted(known)}')
    return [dataclasses.replace(t, variants={
        v: c for v, c in t.variants.items() if v in names}) for t in tasks]


def prepare_run(work: str, budget: Budget, stages: int,
                tasks: Optional[List[Task]] = None
                ) -> Tuple[Progress, Dict[str, str]]:
    """Start a demo command: its progress printer (``stages`` lines in all,
    the generation of the splits the first) and the generated splits of
    each task's scenes (:func:`scenes_dir`).

    Returns:
        tuple: The :class:`Progress` and task name -> dataset root.
    """
    progress = Progress(stages, time.time())
    data = {}
    for task in tasks or TASKS:
        data[task.name] = make_shapes_dataset(
            scenes_dir(work, task), budget.num_train, budget.num_val,
            budget.num_test, **task.scenes)[task.name]
    if budget.iters:
        # not a progress line: it counts no stage
        print('shortened schedules, not the configs\': ' + ', '.join(
            f'{kind} {iters} iterations'
            for kind, iters in budget.iters.items()), flush=True)
    folders = sorted({osp.dirname(root) for root in data.values()})
    progress(f'data: {budget.num_train} train / {budget.num_val} val / '
             f'{budget.num_test} test scenes in {", ".join(folders)}')
    return progress, data


# config keys only the selection reads: changing them keeps cached stages
SELECTION_KEYS = ('lr_grid', 'distill_lr_scales', 'weight_grid',
                  'paper_loss_weights')


def _cached_stage(task: Task, role: str, config: str, iters: int,
                  work_dir: str, data_root: str, split: str,
                  train: Optional[Callable[..., StageResult]] = None
                  ) -> Tuple[StageResult, str]:
    """Train ``config`` (seed 0) in ``work_dir`` with ``train`` (default
    :func:`run_stage`; the same arguments), or reuse the run there when it
    was trained from the same config, iterations and generated data (its
    ``stage.json``).

    Returns:
        tuple: The result and its console line.
    """
    os.environ[task.data_env] = data_root  # the config reads it
    with open(osp.join(osp.dirname(data_root), 'generated.json')) as f:
        data = json.load(f)
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    for key in SELECTION_KEYS:  # what the selection reads, not training
        cfg.pop(key, None)
    stamp = dict(config=cfg.pretty_text, iters=iters, data=data)
    stamp_file = osp.join(work_dir, 'stage.json')
    line = f'{task.name} {role}: {split} {task.metric}'
    if osp.exists(stamp_file):
        with open(stamp_file) as f:
            cached = json.load(f)
        result = StageResult(**cached['result'])
        if cached['stamp'] == stamp and osp.exists(result.checkpoint):
            return result, (f'{line} {result.metric:.2f} '
                            '(trained earlier, reused)')
    result = (train or run_stage)(task, role, config, iters, 0, work_dir,
                                  split=split)
    with open(stamp_file, 'w') as f:
        json.dump(dict(stamp=stamp, result=asdict(result)), f)
    return result, f'{line} {result.metric:.2f} ({result.seconds:.0f}s)'


def train_teacher(task: Task, budget: Budget, work: str, data_root: str
                  ) -> Tuple[StageResult, str]:
    """Train the task's teacher (seed 0, evaluated on the test split) in
    :func:`teacher_dir`, or reuse the one there (see :func:`_cached_stage`).
    """
    return _cached_stage(task, 'teacher', task.teacher,
                         stage_iters(budget, 'teacher', task.teacher),
                         teacher_dir(work, task), data_root, 'test')


def pretrain_student(task: Task, budget: Budget, work: str
                     ) -> Tuple[StageResult, str]:
    """Pretrain the student (``task.pretrain_kind``) on a separate
    generated pool (seed :data:`POOL_SEED`, :func:`scenes_dir`), once: the run in
    :func:`pretrain_dir` is reused while its config, iterations and pool
    are unchanged. The student config reads the checkpoint from
    ``task.pretrained_env``."""
    pools = make_shapes_dataset(scenes_dir(work, task, 'pool'),
                                budget.num_pool, 50, 0, seed=POOL_SEED,
                                **task.scenes)
    train = None
    if task.pretrain_kind == 'classify':
        from .classifier import train_classifier
        os.environ['SHAPES_POOL_SEG'] = pools['seg']  # the config reads it
        train = train_classifier
    return _cached_stage(task, 'pretraining', task.pretrain,
                         stage_iters(budget, 'pretraining', task.pretrain),
                         pretrain_dir(work, task),
                         pools[task.name], 'val', train)


def train_student(task: Task, role: str, config: str, iters: int,
                  seed: int, work_dir: str, split: str = 'test',
                  teacher_checkpoint: Optional[str] = None,
                  overrides: Optional[dict] = None,
                  lr: Optional[float] = None,
                  candidate: Optional[int] = None
                  ) -> Tuple[StageResult, str]:
    """:func:`run_stage` for a student or distilled student, with its
    console line (the setting too for a grid candidate)."""
    result = run_stage(task, role, config, iters, seed, work_dir,
                       teacher_checkpoint=teacher_checkpoint, split=split,
                       overrides=overrides, lr=lr, candidate=candidate)
    setting = '' if candidate is None else f' {_setting_text(result)}'
    return result, (f'{task.name} {role}{setting} (seed {seed}): {split} '
                    f'{task.metric} {result.metric:.2f} '
                    f'({result.seconds:.0f}s)')


def teacher_dir(work: str, task: Task) -> str:
    """Where the task's teacher trains (``teacher.pth`` in it)."""
    return osp.join(work, f'{task.name}_teacher')


def pretrain_dir(work: str, task: Task) -> str:
    """Where the task's pretraining stage trains."""
    return osp.join(work, f'{task.name}_pretrain')


def _first_jobs(task: Task, budget: Budget, work: str, data_root: str
                ) -> Tuple[List[Job], Dict[str, str], Optional[str]]:
    """The task's teacher and pretraining jobs, the environment every job
    of the task runs with, and the pretraining job's key (None without
    one)."""
    env = {task.data_env: data_root,
           task.teacher_env: osp.join(teacher_dir(work, task),
                                      'teacher.pth')}
    # teachers first (the longest stages), then the pretraining
    jobs = [Job(f'{task.name}_teacher', train_teacher,
                dict(task=task, budget=budget, work=work,
                     data_root=data_root), env, priority=0)]
    pretrain = None
    if task.pretrain is not None:
        env[task.pretrained_env] = osp.join(
            pretrain_dir(work, task),
            f"iter_{stage_iters(budget, 'pretraining', task.pretrain)}.pth")
        pretrain = f'{task.name}_pretrain'
        jobs.append(Job(pretrain, pretrain_student,
                        dict(task=task, budget=budget, work=work), env,
                        priority=1))
    return jobs, env, pretrain


def _student_job(task: Task, budget: Budget, env: Dict[str, str],
                 pretrain: Optional[str], key: str, role: str, config: str,
                 work_dir: str, seed: int, split: str,
                 after: Tuple[str, ...] = (), **kwargs) -> Job:
    """A student's job: after the pretraining, and after the teacher too
    for a distilled student. Every student trains for the baseline's
    schedule (``task.student``'s; a variant config's own is scaled to it),
    so that a distilled student and its baseline stay paired."""
    after = after + ((pretrain, ) if pretrain else ())
    if role != 'student':
        after += (f'{task.name}_teacher', )
        kwargs['teacher_checkpoint'] = env[task.teacher_env]
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
    return jobs, [j.key for j in jobs if j.key != pretrain]


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
    return jobs, [j.key for j in jobs if j.key != pretrain]


def _setting_text(result: StageResult) -> str:
    return ', '.join(f'{k} {v:g}' for k, v in result.setting.items())


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
