# The demo's detection teacher: Faster R-CNN R50-FPN with 16 base channels and
# 64 FPN channels, trained 1200 iterations.
_base_ = './faster_rcnn_r18_fpn_shapes_student.py'

model = dict(
    init_cfg=None,  # trained from scratch
    backbone=dict(depth=50, base_channels=16),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=64),
                  bbox_head=dict(in_channels=64, fc_out_channels=256)))
max_iters = 1200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.75)], gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
# the teacher's own rate, not the student's selected one (why:
# projects/shapes_demo/docs/protocol.md, "The teachers' rates")
optim_wrapper = dict(optimizer=dict(lr=0.04))
