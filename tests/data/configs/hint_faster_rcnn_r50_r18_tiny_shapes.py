# Feature-hint distillation on every FPN level, tiny Faster R-CNN R50 -> R18.
_base_ = './faster_rcnn_r18_fpn_tiny_shapes.py'

model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/faster_rcnn_r50_fpn_tiny_shapes_teacher.py',
    teacher_checkpoint=None,  # tests: a random teacher
    teacher_forward='extract_feat',
    student_taps=dict(fpn='neck'),
    teacher_taps=dict(fpn='neck'),
    connectors=dict(
        fpn_adapt=dict(type='mmkd.ConvConnector', in_channels=16,
                       out_channels=32, num_levels=5)),
    distill_losses=dict(
        hint=dict(type='mmkd.FeatureMSELoss', loss_weight=1.0,
                  student='fpn', connector='fpn_adapt', teacher='fpn')))
