# The study regime's detection student: the demo's Faster R-CNN R18-FPN student
# (a quarter of the teacher's width) starting as the papers' students do, from
# a backbone pretrained on another task (resnet18_shapes_objects.py: the class
# of an object cropped from a pool scene; the ImageNet analogue; stem and first
# stage frozen, normalisation in eval mode, as mmdet trains with an ImageNet
# backbone), neck and heads from their stock initialisation, trained for the
# study's schedule. run_demo.py --study sets SHAPES_DET_CLASSIFIER.
_base_ = '../../det/faster_rcnn_r18_fpn_shapes_student.py'

model = dict(
    init_cfg=None,
    backbone=dict(init_cfg=dict(
        _delete_=True, type='Pretrained', prefix='backbone.',
        checkpoint='{{$SHAPES_DET_CLASSIFIER:work_dirs/shapes_demo_study/det_pretrain/iter_2000.pth}}')))  # noqa
max_iters = 8100
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=0.02))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=240),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.75)], gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
