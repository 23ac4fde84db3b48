# The demo's detection pretraining stage: the detection student trained from
# scratch on a separate pool of generated scenes (none of them in train / val
# / test) with the teacher's schedule (faster_rcnn_r50_fpn_shapes_teacher.py:
# 1200 iterations, lr 0.04); the demo's detection students start from its
# weights (the whole network). run_demo.py runs it once and reuses it. Why:
# projects/shapes_demo/docs/detection_setting.md, "The student now".
_base_ = './faster_rcnn_r18_fpn_shapes_student.py'

model = dict(init_cfg=None)
max_iters = 1200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.75)], gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
optim_wrapper = dict(optimizer=dict(lr=0.04))
