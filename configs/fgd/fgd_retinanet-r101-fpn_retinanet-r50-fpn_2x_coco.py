# FGD (Yang et al., CVPR 2022): RetinaNet R101-FPN teacher -> R50-FPN student,
# COCO, mmdet's 2x schedule; the official config
# fgd_retina_r101_fpn_2x_distill_retina_r50_fpn_2x_coco.py, its weights.
# Student and data: mmdet's stock config; only the distillation is stated.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'

model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='mmdet::retinanet/retinanet_r101_fpn_2x_coco.py',
    # mmdet model zoo, retinanet_r101_fpn_2x_coco (box AP 38.9)
    teacher_checkpoint='https://download.openmmlab.com/mmdetection/v2.0/'
    'retinanet/retinanet_r101_fpn_2x_coco/'
    'retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth',
    # the official init_student=True: the student's neck and heads start
    # from the teacher's weights (same names and shapes: one family)
    student_from_teacher=['neck', 'bbox_head'],
    teacher_forward='extract_feat',  # only the neck is tapped
    # the five FPN outputs P3-P7 (the official neck.fpn_convs.0-4)
    student_taps=dict(fpn='neck'),
    teacher_taps=dict(fpn='neck'),
    distill_losses=dict(
        # one loss per level, summed; alpha, beta, gamma, lambda and T of the
        # official RetinaNet config
        fgd=dict(type='mmkd.FGDLoss', student_channels=256,
                 teacher_channels=256, num_levels=5, temp=0.5, alpha=1e-3,
                 beta=5e-4, gamma=5e-4, lambda_rela=5e-6, student='fpn',
                 teacher='fpn',
                 extra_inputs=dict(data_samples='data_samples'))))

# gradient clipping at 35 (official); SGD lr 0.01 as inherited
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
