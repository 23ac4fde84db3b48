# The demo's segmentation teacher: PSPNet-R50-D8 with 16 base channels (10x
# the student's parameters), trained 2000 iterations.
_base_ = './pspnet_r18_shapes_student.py'

model = dict(
    # trained from scratch (no pretraining stage for the teacher)
    backbone=dict(depth=50, stem_channels=16, base_channels=16,
                  init_cfg=None),
    decode_head=dict(in_channels=512, channels=64,
                     init_cfg=dict(_delete_=True, type='Normal', std=0.01,
                                   override=dict(name='conv_seg'))),
    auxiliary_head=dict(in_channels=256, channels=32))
max_iters = 2000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                        end=max_iters, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=max_iters))
# the teacher's own rate, not the student's selected one (why:
# projects/shapes_demo/docs/protocol.md, "The teachers' rates")
optim_wrapper = dict(optimizer=dict(lr=0.2))
