# PKD (Cao et al., NeurIPS 2022): RetinaNet X101-64x4d-FPN teacher -> R50-FPN
# student, COCO, mmdet's 2x schedule; MMRazor's
# pkd_fpn_retina_x101_retina_r50_2x_coco.py (by PKD's authors): weight 10 on
# each of the neck outputs 0-3 (P3-P6; P7 is not distilled), SGD lr 0.01.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'

model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py',
    # mmdet model zoo, retinanet_x101_64x4d_fpn_1x_coco (box AP 41.0)
    teacher_checkpoint='https://download.openmmlab.com/mmdetection/v2.0/'
    'retinanet/retinanet_x101_64x4d_fpn_1x_coco/'
    'retinanet_x101_64x4d_fpn_1x_coco_20200130-366f5af1.pth',
    teacher_forward='extract_feat',
    student_taps=dict(p3='neck.fpn_convs.0', p4='neck.fpn_convs.1',
                      p5='neck.fpn_convs.2', p6='neck.fpn_convs.3'),
    teacher_taps=dict(p3='neck.fpn_convs.0', p4='neck.fpn_convs.1',
                      p5='neck.fpn_convs.2', p6='neck.fpn_convs.3'),
    distill_losses=dict(
        pkd_p3=dict(type='mmkd.PKDLoss', loss_weight=10, student='p3',
                    teacher='p3'),
        pkd_p4=dict(type='mmkd.PKDLoss', loss_weight=10, student='p4',
                    teacher='p4'),
        pkd_p5=dict(type='mmkd.PKDLoss', loss_weight=10, student='p5',
                    teacher='p5'),
        pkd_p6=dict(type='mmkd.PKDLoss', loss_weight=10, student='p6',
                    teacher='p6')))
