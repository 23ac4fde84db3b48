"""The demo's stages: which configs train, for how long, and running one."""
import contextlib
import json
import logging
import os
import os.path as osp
import shutil
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional

from mmengine.config import Config
from mmengine.runner import Runner

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
    """
    name: str
    metric: str
    teacher: str
    student: str
    variants: Dict[str, str]
    teacher_env: str
    data_env: str


TASKS = [
    Task('seg', 'mIoU', 'seg/pspnet_r50_shapes_teacher.py',
         'seg/pspnet_r18_shapes_student.py',
         dict(pixel='seg/skd_pixel_shapes.py', pair='seg/skd_pair_shapes.py',
              holistic='seg/skd_holistic_shapes.py',
              all='seg/skd_all_shapes.py', cwd='seg/cwd_logits_shapes.py'),
         'SHAPES_SEG_TEACHER', 'SHAPES_SEG'),
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
        num_val: Generated validation scenes.
    """
    teacher_iters: Dict[str, int]
    student_iters: int
    num_train: int
    num_val: int


# The segmentation teacher trains 2000 iterations: at 1200 it reached 37.6
# mIoU, at 2000 47.5 (seed 0), and the two tasks train side by side, so the
# detection branch (about 13 minutes) sets the demo's wall time either way.
BUDGETS = {
    'default': Budget(teacher_iters=dict(seg=2000, det=1200),
                      student_iters=400, num_train=300, num_val=60),
    'quick': Budget(teacher_iters=dict(seg=24, det=24), student_iters=12,
                    num_train=32, num_val=8),
}


@dataclass
class StageResult:
    task: str
    role: str  # 'teacher', 'student' or the variant name
    seed: int
    metric: float
    seconds: float
    work_dir: str
    checkpoint: str
    student_checkpoint: Optional[str] = None


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


def run_stage(task: Task, role: str, config: str, iters: int, seed: int,
              work_dir: str, teacher_checkpoint: Optional[str] = None
              ) -> StageResult:
    """Train one config in this process and read its validation metric.

    What the stage would print (warnings, pycocotools' tables) goes to
    ``<work_dir>/console.log``; mmengine's log file keeps the rest.
    """
    from mmkd.utils.runner_config import prepare_config
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    _schedule(cfg, iters)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    cfg.experiment_name = f'{task.name}_{role}_seed{seed}_{time.time_ns()}'
    # mmengine keeps one visualizer per name in a process: the stock configs'
    # name='visualizer' would send every later stage's scalars to the first
    # stage's vis_data
    cfg.visualizer.name = cfg.experiment_name
    if teacher_checkpoint is not None:
        cfg.model.teacher_checkpoint = teacher_checkpoint
    prepare_config(cfg)
    start = time.time()
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, 'console.log'), 'w') as console, \
            contextlib.redirect_stdout(console), \
            contextlib.redirect_stderr(console):
        runner = QuietRunner.from_cfg(cfg)
        runner.train()
    hub = runner.message_hub
    metric = float(hub.get_scalar(f'val/{task.metric}').current())
    if task.metric == 'coco/bbox_mAP':
        metric *= 100  # mmdet reports mAP in [0, 1]
    checkpoint = osp.join(work_dir, f'iter_{iters}.pth')
    student = osp.join(work_dir, f'iter_{iters}_student.pth')
    result = StageResult(task.name, role, seed, metric, time.time() - start,
                         work_dir, checkpoint,
                         student if osp.exists(student) else None)
    if role == 'teacher':
        # the path the distillation configs default to
        shutil.copyfile(checkpoint, osp.join(work_dir, 'teacher.pth'))
    # the stage's logger is done: its log file is complete and its console
    # handler writes to console.log, closed above
    for handler in list(runner.logger.handlers):
        handler.close()
        runner.logger.removeHandler(handler)
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


def run_task(task: Task, budget: Budget, seeds: int, work: str,
             data_root: str, progress: Callable[[str], None]
             ) -> List[StageResult]:
    """Train and evaluate a task's teacher (once), then its student and
    distilled students (once per seed), in this process.

    Args:
        task: The task.
        budget: Iterations of the teacher and of every student.
        seeds: Students and distilled students run with seeds
            ``0 .. seeds - 1``.
        work: The demo's work directory; stage ``<task>_<role>_seed<k>``
            trains in ``<work>/<task>_<role>_seed<k>``.
        data_root: The task's generated dataset.
        progress: Called with one line of text after every stage.
    """
    os.environ[task.data_env] = data_root
    teacher = run_stage(task, 'teacher', task.teacher,
                        budget.teacher_iters[task.name], 0,
                        osp.join(work, f'{task.name}_teacher'))
    progress(f'{task.name} teacher: {task.metric} {teacher.metric:.2f} '
             f'({teacher.seconds:.0f}s)')
    results = [teacher]
    teacher_ckpt = osp.join(teacher.work_dir, 'teacher.pth')
    os.environ[task.teacher_env] = teacher_ckpt
    for seed in range(seeds):
        for role, config in [('student', task.student)] + list(
                task.variants.items()):
            result = run_stage(
                task, role, config, budget.student_iters, seed,
                osp.join(work, f'{task.name}_{role}_seed{seed}'),
                teacher_checkpoint=None if role == 'student' else
                teacher_ckpt)
            progress(f'{task.name} {role} (seed {seed}): {task.metric} '
                     f'{result.metric:.2f} ({result.seconds:.0f}s)')
            results.append(result)
    return results


def run_task_process(task_name: str, budget: Budget, seeds: int, work: str,
                     data_root: str, progress: Progress, threads: int,
                     out_file: str) -> None:
    """:func:`run_task` as the target of a (spawned) process: ``threads``
    torch threads, the results written to ``out_file`` as JSON."""
    import torch
    torch.set_num_threads(threads)
    import mmkd  # noqa: F401  (registries, safe checkpoint loading)
    task = next(t for t in TASKS if t.name == task_name)
    results = run_task(task, budget, seeds, work, data_root, progress)
    with open(out_file, 'w') as f:
        json.dump([asdict(r) for r in results], f)


def load_results(path: str) -> List[StageResult]:
    """The results :func:`run_task_process` wrote."""
    with open(path) as f:
        return [StageResult(**r) for r in json.load(f)]
