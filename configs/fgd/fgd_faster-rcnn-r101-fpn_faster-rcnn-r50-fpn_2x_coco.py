# FGD (Yang et al., CVPR 2022): Faster R-CNN R101-FPN teacher -> R50-FPN
# student, COCO, mmdet's 2x schedule; the official config
# fgd_faster_rcnn_r101_fpn_2x_distill_faster_rcnn_r50_fpn_2x_coco.py, its
# weights. Student and data: mmdet's stock config.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py'

# one FGD loss per FPN level P2-P5 (neck.fpn_convs.0-3; P6 is not distilled,
# as in the official config), each with its own align layer and GcBlocks
fgd_level = dict(type='mmkd.FGDLoss', student_channels=256,
                 teacher_channels=256, temp=0.5, alpha=5e-5, beta=2.5e-5,
                 gamma=5e-5, lambda_rela=5e-7,
                 extra_inputs=dict(data_samples='data_samples'))
model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py',
    # mmdet model zoo, faster-rcnn_r101_fpn_2x_coco (box AP 39.8)
    teacher_checkpoint='https://download.openmmlab.com/mmdetection/v2.0/'
    'faster_rcnn/faster_rcnn_r101_fpn_2x_coco/'
    'faster_rcnn_r101_fpn_2x_coco_bbox_mAP-0.398_20200504_210455-1d2dac9c.pth',
    # the official init_student=True: the student's neck and heads start
    # from the teacher's weights (same names and shapes: one family)
    student_from_teacher=['neck', 'rpn_head', 'roi_head'],
    teacher_forward='extract_feat',
    student_taps=dict(p2='neck.fpn_convs.0', p3='neck.fpn_convs.1',
                      p4='neck.fpn_convs.2', p5='neck.fpn_convs.3'),
    teacher_taps=dict(p2='neck.fpn_convs.0', p3='neck.fpn_convs.1',
                      p4='neck.fpn_convs.2', p5='neck.fpn_convs.3'),
    distill_losses=dict(
        fgd_p2=dict(fgd_level, student='p2', teacher='p2'),
        fgd_p3=dict(fgd_level, student='p3', teacher='p3'),
        fgd_p4=dict(fgd_level, student='p4', teacher='p4'),
        fgd_p5=dict(fgd_level, student='p5', teacher='p5')))

# gradient clipping at 35 (official); SGD lr 0.02 as inherited
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
