"""The study regime: the demo measured where the papers measured.

What differs from the default run (why, with the measurements:
``projects/shapes_demo/docs/study.md``):

- the students start from a backbone pretrained on another task than the
  one distilled (which classes a scene holds; ``shapes_demo.classifier``),
  as the papers' students start from ImageNet, instead of the whole model
  pretrained for the same task;
- the students train for the study's schedule (their study configs),
  chosen where the baseline has converged;
- the detection scenes have plainer backgrounds (``background_contrast``),
  so that the teacher-student difference can concentrate near objects,
  FGFI's premise.

The study runs in its own work dir (:data:`STUDY_WORK_DIR`): its teachers
and pretraining stages are cached there, apart from the default run's.
"""
from .stages import Budget, Task

STUDY_WORK_DIR = 'work_dirs/shapes_demo_study'

#: The detection scenes' background contrast (1: the default run's scenes).
DET_BACKGROUND_CONTRAST = 0.25

STUDY_TASKS = [
    Task('seg', 'mIoU', 'seg/pspnet_r50_shapes_teacher.py',
         'study/seg/pspnet_r18_shapes_student.py', {},
         'SHAPES_SEG_TEACHER', 'SHAPES_SEG',
         pretrain='study/seg/resnetv1c18_shapes_presence.py',
         pretrained_env='SHAPES_SEG_CLASSIFIER', pretrain_kind='classify'),
    Task('det', 'coco/bbox_mAP', 'det/faster_rcnn_r50_fpn_shapes_teacher.py',
         'study/det/faster_rcnn_r18_fpn_shapes_student.py', {},
         'SHAPES_DET_TEACHER', 'SHAPES_DET',
         pretrain='study/det/resnet18_shapes_presence.py',
         pretrained_env='SHAPES_DET_CLASSIFIER', pretrain_kind='classify',
         scenes=dict(background_contrast=DET_BACKGROUND_CONTRAST)),
]

STUDY_BUDGET = Budget(num_train=3000, num_val=200, num_test=1000,
                      num_pool=3000)
