# MGD (Yang et al., ECCV 2022): RetinaNet X101-64x4d-FPN teacher -> R50-FPN
# student, COCO, mmdet's 2x schedule; the official config
# retina_rx101_64x4d_distill_retina_r50_fpn_2x_coco.py (yzd-v/MGD): alpha
# 2e-5, lambda 0.65 on every FPN output P3-P7, gradient clipping 35.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'

model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='mmdet::retinanet/retinanet_x101-64x4d_fpn_ms-640-800-3x_coco.py',
    # mmdet model zoo, retinanet_x101_64x4d_fpn_mstrain_3x_coco (box AP
    # 41.8), the official config's teacher
    teacher_checkpoint='https://download.openmmlab.com/mmdetection/v2.0/'
    'retinanet/retinanet_x101_64x4d_fpn_mstrain_3x_coco/'
    'retinanet_x101_64x4d_fpn_mstrain_3x_coco_20210719_051838-022c2187.pth',
    # the official init_student=True: the student's neck and heads start
    # from the teacher's weights (same names and shapes: one family)
    student_from_teacher=['neck', 'bbox_head'],
    teacher_forward='extract_feat',
    student_taps=dict(fpn='neck'),
    teacher_taps=dict(fpn='neck'),
    distill_losses=dict(
        # loss_weight is the paper's alpha_mgd, mask_ratio its lambda_mgd; one
        # generation block per level, the levels summed
        mgd=dict(type='mmkd.MGDLoss', student_channels=256,
                 teacher_channels=256, num_levels=5, loss_weight=2e-5,
                 mask_ratio=0.65, student='fpn', teacher='fpn')))

optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
