# SKD holistic term (lambda_ho = 0.1): a conditional WGAN-GP whose critic sees
# the softmax score map with the image (the paper's D(Q | I)).
# The loss weight and learning rate below: those select_settings.py chose
# (see skd_base_shapes.py).
_base_ = './skd_base_shapes.py'

paper_loss_weights = dict(holistic=0.1)
weight_grid = dict(holistic=[0.005, 0.02, 0.1])

model = dict(
    distill_losses=dict(
        holistic=dict(type='mmkd.HolisticLoss', loss_weight=0.02,
                      student='logits', teacher='logits')),
    # a 12x12 score map: two stride-2 layers, then a 3x3 conv
    discriminator=dict(type='mmkd.SegDiscriminator', in_channels=5 + 3,
                       conv_channels=(32, 64), attn_after=(0, 1),
                       last_kernel_size=3))
optim_wrapper = dict(
    _delete_=True,
    constructor='mmkd.DistillerOptimWrapperConstructor',
    student=dict(type='OptimWrapper', optimizer=dict(
        type='SGD', lr=0.15, momentum=0.9, weight_decay=5e-4)),
    # the official critic lr is 0.04x the student's (4e-4 vs 0.01); the demo
    # keeps that ratio
    discriminator=dict(type='OptimWrapper', optimizer=dict(
        type='SGD', lr=6e-3, momentum=0.9, weight_decay=5e-4)))
