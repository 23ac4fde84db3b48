# Feature-hint distillation, tiny PSPNet-R50 -> PSPNet-R18 on generated data:
# an MSE between the adapted student PSP bottleneck and the teacher's.
_base_ = './pspnet_r18_tiny_shapes.py'

model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/pspnet_r50_tiny_shapes_teacher.py',
    teacher_checkpoint=None,  # tests: a random teacher
    student_taps=dict(feat='decode_head.bottleneck'),
    teacher_taps=dict(feat='decode_head.bottleneck'),
    connectors=dict(
        feat_adapt=dict(type='mmkd.ConvConnector', in_channels=16,
                        out_channels=32)),
    distill_losses=dict(
        hint=dict(type='mmkd.FeatureMSELoss', loss_weight=1.0,
                  student='feat', connector='feat_adapt', teacher='feat')))
