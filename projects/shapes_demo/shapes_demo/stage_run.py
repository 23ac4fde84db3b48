"""Running one stage of the demo: a config trained in this process,
evaluated on a split, with the evaluation noise of its metric."""
import contextlib
import json
import logging
import os
import os.path as osp
import shutil
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
from mmengine.config import Config
from mmengine.runner import Runner

from .tasks import CONFIGS, Task, train_scenes_scoring


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


#: Iterations between the checkpoints an interrupted stage resumes from
#: (only the newest is kept; the last iteration's stays).
RESUME_INTERVAL = 500


def make_resumable(cfg: Config, iters: int, resume: bool) -> None:
    """Save a checkpoint every :data:`RESUME_INTERVAL` iterations of an
    ``iters``-iteration stage (keeping only the newest) and, with
    ``resume``, continue from the newest one in the work dir (mmengine's
    resume: weights, optimizer, schedulers; the data loader is advanced
    past the batches already trained). What a stage computes is unchanged
    by the checkpoints; a resumed stage draws other random numbers than an
    uninterrupted one (e.g. the samplers of a detector's heads) from the
    point it resumed."""
    checkpoint = cfg.default_hooks.checkpoint
    checkpoint.interval = min(iters, RESUME_INTERVAL)
    checkpoint.max_keep_ckpts = 1
    cfg.resume = resume


def scaled_schedule(config: str, iters: int) -> List[dict]:
    """The learning-rate schedule (``param_scheduler``) of ``config``
    (relative to ``configs/``) scaled to ``iters`` iterations as
    :func:`shorten_schedule` scales it."""
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    if iters != cfg.train_cfg.max_iters:
        shorten_schedule(cfg, iters)
    return [dict(scheduler) for scheduler in cfg.param_scheduler]


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
              candidate: Optional[int] = None,
              schedule_from: Optional[str] = None,
              resume: bool = False) -> StageResult:
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
        schedule_from: A config (relative to ``configs/``) whose
            learning-rate schedule, scaled to ``iters``
            (:func:`scaled_schedule`), replaces this config's: a distilled
            student trains with its baseline's.
        resume: Continue an interrupted run of the same stage in
            ``work_dir`` (:func:`make_resumable`).
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
    if schedule_from is not None:
        cfg.param_scheduler = scaled_schedule(schedule_from, iters)
    make_resumable(cfg, iters, resume)
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
        hub = runner.message_hub
        metric, parts, classes = _scores(
            task, float(hub.get_scalar(f'val/{task.metric}').current())
            if f'val/{task.metric}' in hub.log_scalars else None,
            captured, compute)
    checkpoint = osp.join(work_dir, f'iter_{iters}.pth')
    student = osp.join(work_dir, f'iter_{iters}_student.pth')
    result = StageResult(task.name, role, seed, metric, split, parts,
                         setting, time.time() - start, work_dir, checkpoint,
                         student if osp.exists(student) else None,
                         candidate, classes)
    return _finish(runner, result)


def _finish(runner: Runner, result: StageResult) -> StageResult:
    """End a stage: a teacher's checkpoint also as ``teacher.pth`` (the path
    the distillation configs default to), the runner's logger closed (its
    log file is complete; its console handler wrote to console.log, closed
    by then), ``result.json`` written."""
    if result.role == 'teacher':
        shutil.copyfile(result.checkpoint,
                        osp.join(result.work_dir, 'teacher.pth'))
    close_logger(runner)
    with open(osp.join(result.work_dir, 'result.json'), 'w') as f:
        json.dump(asdict(result), f)
    return result


def _scores(task: Task, metric: Optional[float], captured: list, compute
            ) -> Tuple[float, List[float], Optional[Dict[str, float]]]:
    """The task's metric (percent; the evaluator's ``metric``, or scored
    from the results as COCO would when mmdet's CocoMetric logged nothing
    because nothing was detected), the metric on :data:`EVAL_PARTS` parts
    of the split and, for segmentation, each class's IoU, from the last
    evaluation ``captured`` (:func:`_captured_results`)."""
    metric_obj, results = captured[-1]
    parts = _part_metrics(task, metric_obj, results, compute, EVAL_PARTS)
    if metric is None:
        metric = _part_metrics(task, metric_obj, results, compute, 1)[0]
    elif task.metric == 'coco/bbox_mAP':
        metric = 100 * float(metric)  # mmdet reports mAP in [0, 1]
    metric = float(metric)  # the test loop's are numpy scalars
    classes = (_class_ious(metric_obj, results) if task.name == 'seg'
               else None)
    return metric, parts, classes


def evaluate_checkpoint(task: Task, role: str, config: str,
                        checkpoint: str, work_dir: str,
                        split: str = 'test') -> StageResult:
    """Score a trained stage's ``checkpoint`` of ``config`` on ``split``
    without training (mmengine's test loop), as :func:`run_stage` scores a
    stage it trained; ``iter_<n>.pth`` and, for a teacher, ``teacher.pth``
    are copied into ``work_dir``.

    Args:
        task: The task.
        role: ``'teacher'``, ``'student'`` or a variant name.
        config: The config the checkpoint was trained with.
        checkpoint: The trained checkpoint (``iter_<n>.pth``).
        work_dir: The stage's work directory.
        split: ``'val'``, ``'test'`` or ``'train'`` (the training scenes
            without augmentation, :func:`train_scenes_scoring`).
    """
    from mmkd.engine.runner_config import prepare_config
    if split not in ('train', 'val', 'test'):
        raise ValueError(
            f"split must be 'train', 'val' or 'test', got {split!r}")
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    if split == 'val':
        cfg.test_dataloader = cfg.val_dataloader
        cfg.test_evaluator = cfg.val_evaluator
    elif split == 'train':
        cfg.test_dataloader, cfg.test_evaluator = train_scenes_scoring(cfg)
    os.makedirs(work_dir, exist_ok=True)
    copy = osp.join(work_dir, osp.basename(checkpoint))
    shutil.copyfile(checkpoint, copy)
    cfg.load_from = copy
    cfg.work_dir = work_dir
    cfg.experiment_name = f'{task.name}_{role}_eval_{time.time_ns()}'
    cfg.visualizer.name = cfg.experiment_name
    prepare_config(cfg)
    start = time.time()
    with open(osp.join(work_dir, 'console.log'), 'w') as console, \
            contextlib.redirect_stdout(console), \
            contextlib.redirect_stderr(console), \
            _captured_results(task) as (captured, compute):
        runner = QuietRunner.from_cfg(cfg)
        metrics = runner.test()
        metric, parts, classes = _scores(task, metrics.get(task.metric),
                                         captured, compute)
    result = StageResult(task.name, role, 0, metric, split, parts,
                         stage_setting(cfg), time.time() - start, work_dir,
                         copy, None, None, classes)
    return _finish(runner, result)


def close_logger(runner: Runner) -> None:
    """Close and remove the handlers of a finished runner's logger (its log
    file is complete; its console handler may write to a file that is about
    to close), so that later runners of the process do not write to them."""
    for handler in list(runner.logger.handlers):
        handler.close()
        runner.logger.removeHandler(handler)


def setting_line(result: StageResult) -> str:
    """A result's setting as the console shows it: ``lr 0.1, pixel 2``."""
    return ', '.join(f'{k} {v:g}' for k, v in result.setting.items())
