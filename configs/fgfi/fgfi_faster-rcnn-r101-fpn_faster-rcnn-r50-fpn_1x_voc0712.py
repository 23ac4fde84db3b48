# FGFI (variant I) on every FPN level: Faster R-CNN R101-FPN teacher ->
# R50-FPN student on VOC07+12 (mmdet's stock VOC config, 4 epochs of the
# 3x-repeated dataset), tested on VOC07 test.
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'

model = dict(
    _delete_=True,
    type='mmkd.DetectionDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/faster-rcnn_r101_fpn_1x_voc0712.py',
    # no R101 VOC model in mmdet's zoo: train the teacher config above, then
    # point this at its last checkpoint
    teacher_checkpoint='work_dirs/faster-rcnn_r101_fpn_1x_voc0712/'
    'epoch_4.pth',
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
