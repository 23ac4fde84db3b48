"""The demo's tasks (teacher, student, distilled variants, scenes) and
budgets (data sizes, iterations)."""
import copy
import dataclasses
import functools
import os.path as osp
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from mmengine.config import Config

from .protocol import config_error

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
            split sizes for the task's scenes (empty: the generator's
            defaults, in ``<work>/data``; otherwise in a folder named after
            them).
        pool_scenes: The same for its pretraining pool (None: as
            ``scenes``; in ``<work>/pool...``).
        pretrain_kind: What the pretraining stage trains: ``'task'`` (the
            student's own model on the pool, :func:`pretrain_backbone`) or
            ``'classify'`` (a classifier of the pool's objects with the
            student's backbone, ``shapes_demo.classifier``).
        teacher_pretrain: Config of an object classifier (``'classify'``)
            with the teacher's backbone, trained on the same pool, whose
            backbone the teacher starts from (None: the teacher trains
            from scratch).
        teacher_pretrained_env: Environment variable the teacher config
            reads that classifier's checkpoint from.
        teacher_from_preconditions: Whether the report scores the teacher
            that ``preconditions.py`` trained for its own schedule (on
            test) when that run was trained exactly as the report's teacher
            would be, instead of training it again.
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
    teacher_pretrain: Optional[str] = None
    teacher_pretrained_env: Optional[str] = None
    pool_scenes: Optional[Dict[str, Any]] = None
    teacher_from_preconditions: bool = False

    def scene_args(self, kind: str = 'data') -> Dict[str, Any]:
        """The generator's arguments of the task's scenes (``kind``
        ``'data'``) or of its pretraining pool (``'pool'``)."""
        if kind == 'pool' and self.pool_scenes is not None:
            return self.pool_scenes
        return self.scenes


def scenes_dir(work: str, task: Task, kind: str = 'data') -> str:
    """Where the task's scenes (``kind='data'``) or its pretraining pool
    (``'pool'``) are generated: ``<work>/<kind>`` for the default scenes,
    ``<work>/<kind>_<argument><value>...`` for others (a size as
    ``96x288``)."""
    suffix = ''.join(
        f'_{k}' + ('x'.join(map(str, v)) if isinstance(v, (tuple, list))
                   else str(v))
        for k, v in sorted(task.scene_args(kind).items()))
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
def train_scenes_scoring(cfg: Config) -> Tuple[Any, Any]:
    """``cfg``'s val loader and evaluator, reading the training scenes
    instead (the layout :func:`mmkd.testing.make_shapes_dataset` writes:
    seg ``img_dir/train`` and ``ann_dir/train``, det ``train/`` and
    ``train.json``) with the val pipeline, so without augmentation: what a
    model's train-against-val gap is measured on."""
    loader = copy.deepcopy(cfg.val_dataloader)
    evaluator = copy.deepcopy(cfg.val_evaluator)
    dataset = loader.dataset
    if 'ann_file' in dataset:  # COCO: one annotation file per split
        dataset.ann_file = 'train.json'
        dataset.data_prefix = dict(img='train/')
        evaluator.ann_file = osp.join(dataset.data_root, 'train.json')
    else:
        dataset.data_prefix = dict(img_path='img_dir/train',
                                   seg_map_path='ann_dir/train')
    return loader, evaluator


def config_iters(config: str) -> int:
    """The training iterations of a config (relative to ``configs/``)."""
    return Config.fromfile(osp.join(CONFIGS, config)).train_cfg.max_iters


def stage_iters(budget: Budget, kind: str, config: str) -> int:
    """The iterations a stage of ``kind`` trains ``config`` for: the
    budget's for that kind, else the config's."""
    if kind in budget.iters:
        return budget.iters[kind]
    return config_iters(config)


def only_variants(tasks: List[Task], names: Optional[List[str]]
                  ) -> List[Task]:
    """The tasks with only the variants ``names``: each task's
    ``default_variants`` when None, every variant for ``['all']``.

    Raises:
        ConfigKeyError: When a name is no variant of any task (a
            ``ValueError``).
    """
    if names is None:
        return [t if t.default_variants is None else dataclasses.replace(
            t, variants={v: c for v, c in t.variants.items()
                         if v in t.default_variants}) for t in tasks]
    if names == ['all']:
        return list(tasks)
    known = {v for t in TASKS for v in t.variants}
    if not set(names) <= known:
        raise config_error(
            None, '--variants', f'names of variants: {sorted(known)}',
            f'unknown {sorted(set(names) - known)}', missing=True)
    return [dataclasses.replace(t, variants={
        v: c for v, c in t.variants.items() if v in names}) for t in tasks]
