# FGFI on every FPN level, tiny Faster R-CNN R50 -> R18 on generated data:
# the imitation mask from the student's RPN anchors (psi 0.5), 3x3 conv + ReLU
# adaptation per level, the masked imitation loss after a warm-up.
_base_ = './faster_rcnn_r18_fpn_tiny_shapes.py'

model = dict(
    _delete_=True,
    type='mmkd.DetectionDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/faster_rcnn_r50_fpn_tiny_shapes_teacher.py',
    teacher_checkpoint=None,  # tests: a random teacher
    teacher_forward='extract_feat',
    student_taps=dict(fpn='neck'),
    teacher_taps=dict(fpn='neck'),
    mask_tap='fpn',
    region='imitation',
    mask_generator=dict(type='mmkd.ImitationMaskGenerator', psi=0.5),
    connectors=dict(
        fpn_adapt=dict(type='mmkd.ConvConnector', in_channels=16,
                       out_channels=32, num_levels=5)),
    distill_losses=dict(
        imitation=dict(type='mmkd.ImitationLoss', loss_weight=0.01,
                       student='fpn', connector='fpn_adapt', teacher='fpn',
                       extra_inputs=dict(masks='imitation_masks'))),
    loss_schedules=dict(imitation=dict(warmup=1)))
