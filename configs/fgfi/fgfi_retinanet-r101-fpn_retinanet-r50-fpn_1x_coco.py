# FGFI (variant I) for a single-stage detector: RetinaNet R101-FPN teacher ->
# R50-FPN student on COCO. The imitation mask uses the student's RetinaNet
# anchors (bbox_head.prior_generator: 9 per location, strides 8 to 128) on
# the 5 FPN outputs P3-P7.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

model = dict(
    _delete_=True,
    type='mmkd.DetectionDistiller',
    student={{_base_.model}},
    teacher='mmdet::retinanet/retinanet_r101_fpn_1x_coco.py',
    # mmdet model zoo, retinanet_r101_fpn_1x_coco (box AP 38.5)
    teacher_checkpoint='https://download.openmmlab.com/mmdetection/v2.0/'
    'retinanet/retinanet_r101_fpn_1x_coco/'
    'retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth',
    teacher_forward='extract_feat',
    student_taps=dict(fpn='neck'),
    teacher_taps=dict(fpn='neck'),
    mask_tap='fpn',
    region='imitation',
    mask_generator=dict(
        type='mmkd.ImitationMaskGenerator', psi=0.5, max_iou_scope='all'),
    connectors=dict(
        fpn_adapt=dict(type='mmkd.ConvConnector', in_channels=256,
                       out_channels=256, num_levels=5)),
    distill_losses=dict(
        # lambda 0.01 (official), as in
        # fgfi_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_1x_coco.py
        imitation=dict(type='mmkd.ImitationLoss', loss_weight=0.01,
                       student='fpn', connector='fpn_adapt', teacher='fpn',
                       extra_inputs=dict(masks='imitation_masks'))),
    loss_schedules=dict(imitation=dict(warmup=400)))

optim_wrapper = dict(clip_grad=dict(max_norm=10, norm_type=2))
