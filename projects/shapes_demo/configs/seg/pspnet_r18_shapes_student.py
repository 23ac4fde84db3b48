# The demo's segmentation student: the stock mmseg PSPNet-R18-D8, shrunk for a
# CPU (8 base channels) on 96x96 "shapes" scenes with 5 classes. The whole
# network (backbone and decode head) starts from the demo's pretraining stage
# (pspnet_r18_shapes_pretrain.py, run once), as a user fine-tunes a small
# pretrained model; run_demo.py sets SHAPES_SEG_PRETRAINED to its checkpoint
# (set it yourself to train this config by hand). Why the whole network and
# that pretraining: projects/shapes_demo/docs/segmentation_setting.md, (e).
_base_ = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'

crop_size = (96, 96)
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(size=crop_size)
model = dict(
    pretrained=None,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        stem_channels=8, base_channels=8, norm_cfg=norm_cfg,
        init_cfg=dict(
            type='Pretrained', prefix='backbone.',
            checkpoint='{{$SHAPES_SEG_PRETRAINED:work_dirs/shapes_demo/seg_pretrain/iter_1500.pth}}')),  # noqa
    decode_head=dict(in_channels=64, channels=16, num_classes=5,
                     dropout_ratio=0.0, norm_cfg=norm_cfg,
                     init_cfg=dict(
                         type='Pretrained', prefix='decode_head.',
                         checkpoint='{{$SHAPES_SEG_PRETRAINED:work_dirs/shapes_demo/seg_pretrain/iter_1500.pth}}')),  # noqa
    auxiliary_head=dict(in_channels=32, channels=8, num_classes=5,
                        dropout_ratio=0.0, norm_cfg=norm_cfg))

data_root = '{{$SHAPES_SEG:data/shapes_demo/seg}}'
metainfo = dict(
    classes=('background', 'disc', 'square', 'triangle', 'ring'),
    palette=[[0, 0, 0], [220, 20, 60], [0, 130, 200], [255, 180, 0],
             [60, 180, 75]])
dataset = dict(
    _delete_=True, type='BaseSegDataset', data_root=data_root,
    metainfo=metainfo, img_suffix='.png', seg_map_suffix='.png')
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(
        dataset,
        data_prefix=dict(img_path='img_dir/train',
                         seg_map_path='ann_dir/train'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackSegInputs'),
        ]))
# the scenes are evaluated (and mmseg.apis.inference_model runs) at their
# own 96x96 size
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# val chooses settings, test reports them
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(
        dataset,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(
        dataset,
        data_prefix=dict(img_path='img_dir/test',
                         seg_map_path='ann_dir/test'),
        pipeline=test_pipeline))

# the demo's student schedule, what run_demo.py trains (why this length:
# projects/shapes_demo/docs/segmentation_setting.md, "A longer student
# schedule")
max_iters = 400
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
# The learning rate (the stock 0.01 is for a 40k-iteration schedule) is the
# one select_settings.py chose from lr_grid on the val split (its record:
# report/selection.md and selection.json; the figures and why distilled
# students also try the distill_lr_scales multiples of the chosen rate:
# projects/shapes_demo/docs/protocol.md).
lr_grid = [0.05, 0.075, 0.1, 0.15, 0.2, 0.3]
distill_lr_scales = [1.0, 0.5]
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.15, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                        end=max_iters, by_epoch=False)]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters))
randomness = dict(seed=0)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
