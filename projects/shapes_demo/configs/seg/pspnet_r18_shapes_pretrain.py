# The demo's pretraining stage: the segmentation student trained from scratch
# for 1500 iterations on a separate pool of generated scenes (none of them in
# train / val / test); the demo's students start from its weights (backbone
# and decode head). run_demo.py runs it once and reuses it. Why 1500
# iterations: projects/shapes_demo/docs/segmentation_setting.md, (e).
_base_ = './pspnet_r18_shapes_student.py'

model = dict(
    backbone=dict(init_cfg=None),
    # the stock decode head's initialisation
    decode_head=dict(init_cfg=dict(_delete_=True, type='Normal', std=0.01,
                                   override=dict(name='conv_seg'))))
max_iters = 1500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                        end=max_iters, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=max_iters))
# the teacher's rate (pspnet_r50_shapes_teacher.py), not the student's
# selected one
optim_wrapper = dict(optimizer=dict(lr=0.2))
