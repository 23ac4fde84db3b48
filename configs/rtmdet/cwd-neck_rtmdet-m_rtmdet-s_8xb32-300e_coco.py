# mmyolo's RTMDet distillation: RTMDet-m teacher -> RTMDet-s student,
# COCO, 300 epochs (mmdet's stock RTMDet-s config and schedule); the
# distillation shared by this folder's configs is stated in
# _base_/cwd-neck_rtmdet.py.
_base_ = [
    'mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py',
    './_base_/cwd-neck_rtmdet.py'
]

# the student's neck channels (128) to the teacher's (192): a 1x1 convolution,
# no activation, PyTorch's default init (the loss standardises its output)
adapt = dict(type='mmkd.ConvConnector', in_channels=128, out_channels=192,
             kernel_size=1, act=False, init_std=None)
model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='mmdet::rtmdet/rtmdet_m_8xb32-300e_coco.py',
    # mmdet model zoo, rtmdet_m_8xb32-300e_coco (box AP 49.1)
    teacher_checkpoint='https://download.openmmlab.com/mmdetection/v3.0/'
    'rtmdet/rtmdet_m_8xb32-300e_coco/'
    'rtmdet_m_8xb32-300e_coco_20220719_112220-229f527c.pth',
    teacher_forward='extract_feat',  # only the neck is tapped
    student_taps={{_base_.neck_taps}},
    teacher_taps={{_base_.neck_taps}},
    connectors=dict(p3_adapt=adapt, p4_adapt=adapt, p5_adapt=adapt),
    distill_losses={{_base_.cwd_losses}},
    loss_schedules={{_base_.cwd_stop}})
