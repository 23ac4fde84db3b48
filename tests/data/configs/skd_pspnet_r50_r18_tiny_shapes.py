# SKD, all three terms, tiny PSPNet-R50 -> R18 on generated data: pixel-wise
# KL on the logits, pair-wise affinities of the PSP bottleneck (2x2 avg-pooled
# nodes), holistic conditional WGAN-GP with a small discriminator (8x8 logits).
_base_ = './pspnet_r18_tiny_shapes.py'

model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/pspnet_r50_tiny_shapes_teacher.py',
    teacher_checkpoint=None,  # tests: a random teacher
    student_taps=dict(logits='decode_head.conv_seg',
                      feat='decode_head.bottleneck'),
    teacher_taps=dict(logits='decode_head.conv_seg',
                      feat='decode_head.bottleneck'),
    distill_losses=dict(
        pixel=dict(type='mmkd.PixelWiseLoss', loss_weight=10.0,
                   student='logits', teacher='logits'),
        pair=dict(type='mmkd.PairWiseLoss', loss_weight=1.0, pool='avg',
                  node_size=2, student='feat', teacher='feat'),
        holistic=dict(type='mmkd.HolisticLoss', loss_weight=0.1,
                      student='logits', teacher='logits')),
    discriminator=dict(
        type='mmkd.SegDiscriminator', in_channels=3 + 3,
        conv_channels=(16, 32), attn_after=(0, 1), last_kernel_size=2))

optim_wrapper = dict(
    _delete_=True,
    constructor='mmkd.DistillerOptimWrapperConstructor',
    student=dict(type='OptimWrapper', optimizer=dict(
        type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4)),
    discriminator=dict(type='OptimWrapper', optimizer=dict(
        type='SGD', lr=4e-4, momentum=0.9, weight_decay=5e-4)))
