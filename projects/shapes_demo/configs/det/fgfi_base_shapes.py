# What every FGFI variant of the demo shares: the student above, the trained
# teacher, FPN taps, one 3x3 conv adaptation per level (official init),
# the imitation loss (lambda 0.01, official). Variants choose the region.
# Each variant holds the loss weight select_settings.py chose on the val
# split from weight_grid: the published weight and the weights at which the
# imitation gradient at the student's P2-P3 outputs is about 10% and 100% of
# the task's (its record: report/selection.md and selection.json; the
# measurement: projects/shapes_demo/docs/detection_setting.md, "FGFI's
# imitation term").
_base_ = './faster_rcnn_r18_fpn_shapes_student.py'

paper_loss_weights = dict(imitation=0.01)
weight_grid = dict(imitation=[0.01, 0.1, 1.0])

model = dict(
    _delete_=True,
    type='mmkd.DetectionDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/faster_rcnn_r50_fpn_shapes_teacher.py',
    teacher_checkpoint='{{$SHAPES_DET_TEACHER:work_dirs/shapes_demo/det_teacher/teacher.pth}}',
    teacher_forward='extract_feat',
    student_taps=dict(fpn='neck'),
    teacher_taps=dict(fpn='neck'),
    mask_tap='fpn',
    # no ReLU after the 3x3 conv: FPN outputs are not rectified (the official
    # layer's ReLU matches VGG's conv5), and half the teacher's squared FPN
    # feature is negative here (diagnose_fgfi.py; projects/shapes_demo/
    # docs/detection_setting.md, "The adaptation layer has no ReLU")
    connectors=dict(fpn_adapt=dict(type='mmkd.ConvConnector', in_channels=16,
                                   out_channels=64, act=False,
                                   num_levels=5)),
    distill_losses=dict(
        imitation=dict(type='mmkd.ImitationLoss', loss_weight=0.01,
                       student='fpn', connector='fpn_adapt', teacher='fpn',
                       extra_inputs=dict(masks='imitation_masks'))))
