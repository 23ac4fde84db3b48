"""The demo's stages: which configs train, for how long, and running one."""
import logging
import os
import os.path as osp
import shutil
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from mmengine.config import Config

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
    """Iterations and data size of a demo mode."""
    teacher_iters: int
    student_iters: int
    num_train: int
    num_val: int


BUDGETS = {
    'default': Budget(teacher_iters=1200, student_iters=400, num_train=300,
                      num_val=60),
    'quick': Budget(teacher_iters=24, student_iters=12, num_train=32,
                    num_val=8),
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
    scalars: List[dict] = field(default_factory=list)


def _schedule(cfg: Config, iters: int) -> None:
    """Shorten a config's schedule to ``iters`` iterations, keeping the
    shape of its learning-rate schedule."""
    old = cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    for scheduler in cfg.param_scheduler:
        if scheduler.get('end', 0) >= old:
            scheduler.end = iters
        elif 'end' in scheduler:
            scheduler.end = max(1, min(scheduler.end, iters // 10))
        if 'milestones' in scheduler:
            scheduler.milestones = [max(1, int(m * iters / old))
                                    for m in scheduler.milestones]


def run_stage(task: Task, role: str, config: str, iters: int, seed: int,
              work_dir: str, teacher_checkpoint: Optional[str] = None
              ) -> StageResult:
    """Train one config in this process and read its validation metric.

    The console shows no per-iteration logs (the log file keeps them).
    """
    from mmengine.runner import Runner

    from mmkd.utils.runner_config import prepare_config
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    _schedule(cfg, iters)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    cfg.experiment_name = f'{task.name}_{role}_seed{seed}_{time.time_ns()}'
    if teacher_checkpoint is not None:
        cfg.model.teacher_checkpoint = teacher_checkpoint
    prepare_config(cfg)
    start = time.time()
    runner = Runner.from_cfg(cfg)
    for handler in runner.logger.handlers:
        if type(handler) is logging.StreamHandler:
            handler.setLevel(logging.WARNING)
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
    for handler in list(runner.logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            runner.logger.removeHandler(handler)
    return result
