# PKD (Cao et al., NeurIPS 2022): Faster R-CNN R101-FPN teacher -> R50-FPN
# student, COCO, mmdet's 2x schedule; MMRazor's
# pkd_fpn_frcnn_r101_frcnn_r50_2x_coco.py (by PKD's authors): weight 6 on each
# of the FPN outputs P2-P5. Student and data: mmdet's stock config.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py'

model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py',
    # mmdet model zoo, faster-rcnn_r101_fpn_2x_coco (box AP 39.8)
    teacher_checkpoint='https://download.openmmlab.com/mmdetection/v2.0/'
    'faster_rcnn/faster_rcnn_r101_fpn_2x_coco/'
    'faster_rcnn_r101_fpn_2x_coco_bbox_mAP-0.398_20200504_210455-1d2dac9c.pth',
    teacher_forward='extract_feat',
    # neck outputs 0-3 (P2-P5); P6 is not distilled, as in the official config
    student_taps=dict(p2='neck.fpn_convs.0', p3='neck.fpn_convs.1',
                      p4='neck.fpn_convs.2', p5='neck.fpn_convs.3'),
    teacher_taps=dict(p2='neck.fpn_convs.0', p3='neck.fpn_convs.1',
                      p4='neck.fpn_convs.2', p5='neck.fpn_convs.3'),
    distill_losses=dict(
        pkd_p2=dict(type='mmkd.PKDLoss', loss_weight=6, student='p2',
                    teacher='p2'),
        pkd_p3=dict(type='mmkd.PKDLoss', loss_weight=6, student='p3',
                    teacher='p3'),
        pkd_p4=dict(type='mmkd.PKDLoss', loss_weight=6, student='p4',
                    teacher='p4'),
        pkd_p5=dict(type='mmkd.PKDLoss', loss_weight=6, student='p5',
                    teacher='p5')))
