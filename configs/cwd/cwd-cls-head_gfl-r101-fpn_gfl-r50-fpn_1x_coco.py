# CWD on a detector's classification head (Shu et al., ICCV 2021; MMRazor's
# cwd_cls_head_gfl_r101_fpn_gfl_r50_fpn_1x_coco.py): GFL R101-FPN teacher
# (mmdet model zoo, ms-2x, box AP 44.7) -> GFL R50-FPN student, COCO, mmdet's
# 1x schedule. bbox_head.gfl_cls runs once per FPN level (P3-P7), so its tap
# holds five (N, 80, H_l, W_l) maps: each class map, as a distribution over
# the locations of its level, imitates the teacher's (tau 1, weight 5), the
# five levels summed (one loss per level, as MMRazor's detection configs).
_base_ = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'

model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py',
    teacher_checkpoint='https://download.openmmlab.com/mmdetection/v2.0/gfl/'
    'gfl_r101_fpn_mstrain_2x_coco/'
    'gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth',
    student_taps=dict(cls='bbox_head.gfl_cls'),
    teacher_taps=dict(cls='bbox_head.gfl_cls'),
    distill_losses=dict(
        cwd=dict(type='mmkd.ChannelWiseLoss', tau=1.0, loss_weight=5.0,
                 student='cls', teacher='cls')))
