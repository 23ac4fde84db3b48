# What every SKD and CWD variant of the demo shares: the student above, the
# trained teacher, the taps. Variants add their losses, each with the loss
# weights and learning rate select_settings.py chose on the val split from
# its weight_grid (the published weights x 0.05 / 0.2 / 1) crossed with the
# student's distill_lr_scales (its record: report/selection.md and
# selection.json; the figures and why this grid:
# projects/shapes_demo/docs/protocol.md).
_base_ = './pspnet_r18_shapes_student.py'

model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/pspnet_r50_shapes_teacher.py',
    teacher_checkpoint='{{$SHAPES_SEG_TEACHER:work_dirs/shapes_demo/seg_teacher/teacher.pth}}',
    student_taps=dict(logits='decode_head.conv_seg',
                      feat='decode_head.bottleneck'),
    teacher_taps=dict(logits='decode_head.conv_seg',
                      feat='decode_head.bottleneck'))
