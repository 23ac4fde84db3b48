# The study regime's detection teacher: the demo's Faster R-CNN R50-FPN
# teacher starting as the papers' teachers do, from a backbone pretrained on
# another task (resnet50_shapes_objects.py: the class of an object cropped
# from a pool scene; the ImageNet analogue; stem and first stage frozen,
# normalisation in eval mode, as mmdet trains with an ImageNet backbone), its
# neck and heads from the stock initialisation, trained for the study's
# schedule at the teacher's own rate. run_demo.py --study sets
# SHAPES_DET_TEACHER_CLASSIFIER.
_base_ = '../../det/faster_rcnn_r50_fpn_shapes_teacher.py'

model = dict(backbone=dict(init_cfg=dict(
    _delete_=True, type='Pretrained', prefix='backbone.',
    checkpoint='{{$SHAPES_DET_TEACHER_CLASSIFIER:work_dirs/shapes_demo_study/det_teacher_pretrain/iter_2000.pth}}')))  # noqa
max_iters = 9600
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=240),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.75)], gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
