"""The study regime: the demo measured where the papers measured.

What differs from the default run (why, with the measurements:
``projects/shapes_demo/docs/study.md``):

- the teachers and the students start from a backbone pretrained on
  another task than the one distilled (the class of an object cropped from
  a scene; ``shapes_demo.classifier``), as the papers' models start from ImageNet, instead of from scratch (the
  default run's teachers) or from the whole model pretrained for the same
  task (the default run's students);
- the students train for the study's schedule (their study configs),
  chosen where the baseline has converged;
- the detection scenes are KITTI-wide (96 x 288: the same objects in
  three times the width) with plainer backgrounds (``background_contrast``),
  so that the teacher-student difference can concentrate near objects,
  FGFI's premise; the pretraining pool keeps the 96 x 96 scenes (its
  crops are the same objects).

The study runs in its own work dir (:data:`STUDY_WORK_DIR`): its teachers
and pretraining stages are cached there, apart from the default run's.
"""
import os.path as osp
from typing import List, Tuple

from .tasks import Budget, Task

STUDY_WORK_DIR = 'work_dirs/shapes_demo_study'

#: The detection scenes' background contrast (1: the default run's scenes).
DET_BACKGROUND_CONTRAST = 0.25
#: The detection scenes' height and width (the default run's: 96 x 96).
DET_SCENE_SIZE = (96, 288)

STUDY_TASKS = [
    Task('seg', 'mIoU', 'study/seg/pspnet_r50_shapes_teacher.py',
         'study/seg/pspnet_r18_shapes_student.py',
         dict(pixel='study/seg/skd_pixel_shapes.py',
              pair='study/seg/skd_pair_shapes.py',
              holistic='study/seg/skd_holistic_shapes.py',
              all='study/seg/skd_all_shapes.py',
              cwd='study/seg/cwd_logits_shapes.py'),
         'SHAPES_SEG_TEACHER', 'SHAPES_SEG',
         pretrain='study/seg/resnetv1c18_shapes_objects.py',
         pretrained_env='SHAPES_SEG_CLASSIFIER', pretrain_kind='classify',
         teacher_pretrain='study/seg/resnetv1c50_shapes_objects.py',
         teacher_pretrained_env='SHAPES_SEG_TEACHER_CLASSIFIER',
         default_variants=('pixel', 'pair', 'holistic'),
         teacher_from_preconditions=True),
    Task('det', 'coco/bbox_mAP',
         'study/det/faster_rcnn_r50_fpn_shapes_teacher.py',
         'study/det/faster_rcnn_r18_fpn_shapes_student.py',
         dict(imitation='study/det/fgfi_imitation_shapes.py',
              full='study/det/fgfi_full_shapes.py',
              gt='study/det/fgfi_gt_shapes.py',
              d='study/det/fgfi_d_shapes.py',
              id='study/det/fgfi_id_shapes.py',
              fgd='study/det/fgd_shapes.py', pkd='study/det/pkd_shapes.py',
              mgd='study/det/mgd_shapes.py'),
         'SHAPES_DET_TEACHER', 'SHAPES_DET',
         pretrain='study/det/resnet18_shapes_objects.py',
         pretrained_env='SHAPES_DET_CLASSIFIER', pretrain_kind='classify',
         teacher_pretrain='study/det/resnet50_shapes_objects.py',
         teacher_pretrained_env='SHAPES_DET_TEACHER_CLASSIFIER',
         default_variants=('imitation', 'full', 'gt'),
         scenes=dict(background_contrast=DET_BACKGROUND_CONTRAST,
                     size=DET_SCENE_SIZE),
         pool_scenes=dict(background_contrast=DET_BACKGROUND_CONTRAST),
         teacher_from_preconditions=True),
]

STUDY_BUDGET = Budget(num_train=3000, num_val=200, num_test=1000,
                      num_pool=3000)


def add_study_arguments(parser) -> None:
    """``--study`` and ``--work-dir`` (whose default follows ``--study``)
    of the demo's commands."""
    parser.add_argument('--study', action='store_true',
                        help='the study regime (projects/shapes_demo/docs/'
                        'study.md): converged students whose backbone is '
                        'pretrained on another task, wide detection scenes '
                        f'with plainer backgrounds; work dir {STUDY_WORK_DIR}')
    parser.add_argument('--work-dir', default=None,
                        help='default: work_dirs/shapes_demo, or '
                        f'{STUDY_WORK_DIR} with --study')


def regime(args) -> Tuple[List[Task], Budget, str]:
    """The tasks, budget and work dir of parsed ``--study``, ``--quick``
    and ``--work-dir`` arguments."""
    from .tasks import BUDGETS, TASKS
    tasks = STUDY_TASKS if args.study else TASKS
    if args.quick:
        budget = BUDGETS['quick']
    else:
        budget = STUDY_BUDGET if args.study else BUDGETS['default']
    work = args.work_dir or (STUDY_WORK_DIR if args.study
                             else 'work_dirs/shapes_demo')
    return tasks, budget, osp.abspath(work)
