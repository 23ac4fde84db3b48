# FGD (Yang et al., CVPR 2022): YOLOX-L teacher -> YOLOX-M student, COCO,
# 300 epochs (mmdet's stock YOLOX-M config and schedule); the official config
# fgd_yoloxl_distill_yoloxm_coco.py (yzd-v/FGD, branch yolox) and its teacher
# weights: one FGD loss on each neck output P3-P5 (neck.out_convs.0-2), the
# student's 192 channels aligned to the teacher's 256 by each loss's own 1x1
# layer; T 0.5, alpha 2e-3, beta 1e-3, gamma 1e-3, lambda 1e-5. The student
# starts as the official one does, from its own initialisation (no
# init_student: the two differ in width).
_base_ = 'mmdet::yolox/yolox_m_8xb8-300e_coco.py'

fgd_level = dict(type='mmkd.FGDLoss', student_channels=192,
                 teacher_channels=256, temp=0.5, alpha=2e-3, beta=1e-3,
                 gamma=1e-3, lambda_rela=1e-5,
                 extra_inputs=dict(data_samples='data_samples'))
neck_taps = dict(p3='neck.out_convs.0', p4='neck.out_convs.1',
                 p5='neck.out_convs.2')
model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='mmdet::yolox/yolox_l_8xb8-300e_coco.py',
    # mmdet model zoo, yolox_l_8x8_300e_coco (box AP 49.4), the official
    # config's teacher
    teacher_checkpoint='https://download.openmmlab.com/mmdetection/v2.0/'
    'yolox/yolox_l_8x8_300e_coco/'
    'yolox_l_8x8_300e_coco_20211126_140236-d3bd2b23.pth',
    teacher_forward='extract_feat',  # only the neck is tapped
    student_taps=neck_taps,
    teacher_taps=neck_taps,
    distill_losses=dict(
        fgd_p3=dict(fgd_level, student='p3', teacher='p3'),
        fgd_p4=dict(fgd_level, student='p4', teacher='p4'),
        fgd_p5=dict(fgd_level, student='p5', teacher='p5')))
