# The demo's detection student: the stock mmdet Faster R-CNN R50-FPN turned
# into a CPU-sized R18-FPN (4 base channels, 16 FPN channels: a quarter of
# the teacher's width) on 96x96 "shapes"
# scenes with 4 classes (the study's 96 x 288 scenes too: the resize keeps
# either at its size). Anchors are halved (scale 4: 16..256 px). It starts
# from the demo's pretrained model (the whole network;
# faster_rcnn_r18_fpn_shapes_pretrain.py); run_demo.py sets
# SHAPES_DET_PRETRAINED to its checkpoint.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

model = dict(
    init_cfg=dict(
        type='Pretrained',
        checkpoint='{{$SHAPES_DET_PRETRAINED:work_dirs/shapes_demo/det_pretrain/iter_1200.pth}}'),  # noqa
    backbone=dict(depth=18, base_channels=4, init_cfg=None),
    neck=dict(in_channels=[4, 8, 16, 32], out_channels=16),
    rpn_head=dict(in_channels=16, feat_channels=16,
                  anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=16),
        bbox_head=dict(in_channels=16, fc_out_channels=64, num_classes=4)),
    # few objects on small images: fewer proposals and sampled RoIs (the
    # proposal NMS and RoIAlign dominate a CPU step otherwise)
    train_cfg=dict(rpn=dict(sampler=dict(num=128)),
                   rpn_proposal=dict(nms_pre=300, max_per_img=100),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100)))

data_root = '{{$SHAPES_DET:data/shapes_demo/det}}'
metainfo = dict(classes=('disc', 'square', 'triangle', 'ring'))
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(
        data_root=data_root, metainfo=metainfo, ann_file='train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(288, 96), keep_ratio=True),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackDetInputs'),
        ]))
# val chooses settings, test reports them
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(288, 96), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(
        data_root=data_root, metainfo=metainfo, ann_file='val.json',
        data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(
        type='CocoDataset', data_root=data_root, metainfo=metainfo,
        ann_file='test.json', data_prefix=dict(img='test/'),
        test_mode=True, pipeline=test_pipeline))
val_evaluator = dict(ann_file=data_root + '/val.json')
test_evaluator = dict(ann_file=data_root + '/test.json')

# the demo's student schedule, what run_demo.py trains (why this length:
# projects/shapes_demo/docs/detection_setting.md, "The student now")
max_iters = 400
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop',
                 max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# The learning rate is the one select_settings.py chose from lr_grid on the
# val split (its record: report/selection.md and selection.json; the figures
# and why distilled students also try the distill_lr_scales multiples of the
# chosen rate: projects/shapes_demo/docs/protocol.md).
lr_grid = [0.01, 0.02, 0.04]
distill_lr_scales = [1.0]
optim_wrapper = dict(optimizer=dict(lr=0.01),
                     clip_grad=dict(max_norm=10, norm_type=2))
# a linear warm-up over the first tenth, lr x 0.1 for the last quarter
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=max_iters // 10),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.75)], gamma=0.1)
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
