# FGFI (Wang et al., CVPR 2019), variant I (the method), on every FPN level:
# Faster R-CNN R101-FPN teacher -> R50-FPN student, COCO, mmdet's 1x schedule.
# Student and data: mmdet's stock config; only the distillation is stated here.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

model = dict(
    _delete_=True,
    type='mmkd.DetectionDistiller',
    student={{_base_.model}},
    teacher='mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
    # mmdet model zoo, faster-rcnn_r101_fpn_1x_coco (box AP 39.4)
    teacher_checkpoint='https://download.openmmlab.com/mmdetection/v2.0/'
    'faster_rcnn/faster_rcnn_r101_fpn_1x_coco/'
    'faster_rcnn_r101_fpn_1x_coco_20200130-f513f705.pth',
    teacher_forward='extract_feat',  # only the neck is tapped
    student_taps=dict(fpn='neck'),
    teacher_taps=dict(fpn='neck'),
    # the imitation region: the student's RPN anchors (scales 8, ratios
    # 0.5/1/2) whose IoU with a box is > psi * (its best IoU over all levels)
    mask_tap='fpn',
    region='imitation',
    mask_generator=dict(
        type='mmkd.ImitationMaskGenerator', psi=0.5, max_iou_scope='all'),
    # the adaptation layer, one per level: 3x3 conv + ReLU, N(0, 1e-4) init
    connectors=dict(
        fpn_adapt=dict(type='mmkd.ConvConnector', in_channels=256,
                       out_channels=256, num_levels=5)),
    distill_losses=dict(
        # lambda = 0.01, the official value, unchanged for 5 levels: the loss
        # is normalised by N_p counted over ALL levels (it is a mean over the
        # imitated locations, not a sum of 5 per-level losses), so adding
        # levels adds locations to the average, not terms to the total; the
        # scale per location is what the official single-level lambda was
        # tuned for.
        imitation=dict(type='mmkd.ImitationLoss', loss_weight=0.01,
                       student='fpn', connector='fpn_adapt', teacher='fpn',
                       extra_inputs=dict(masks='imitation_masks'))),
    # no imitation during the first 400 iterations (official)
    loss_schedules=dict(imitation=dict(warmup=400)))

# gradient clipping at 10 (official)
optim_wrapper = dict(clip_grad=dict(max_norm=10, norm_type=2))
