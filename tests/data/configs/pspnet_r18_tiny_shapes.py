# A CPU-sized PSPNet-R18 student on the tiny generated shapes dataset
# (mmkd.testing.make_tiny_seg_dataset): the stock mmseg config, shrunk.
# Data root: $MMKD_TINY_SEG (default data/tiny_seg).
_base_ = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'

crop_size = (64, 64)
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(size=crop_size)
model = dict(
    pretrained=None,
    data_preprocessor=data_preprocessor,
    backbone=dict(stem_channels=8, base_channels=8, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=64, channels=16, num_classes=3, dropout_ratio=0.0,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=32, channels=8, num_classes=3, dropout_ratio=0.0,
        norm_cfg=norm_cfg))

data_root = '{{$MMKD_TINY_SEG:data/tiny_seg}}'
metainfo = dict(
    classes=('background', 'disc', 'square'),
    palette=[[0, 0, 0], [200, 60, 60], [60, 200, 60]])
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
dataset = dict(
    _delete_=True,
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='.png',
    seg_map_suffix='.png',
    pipeline=pipeline)
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(dataset, data_prefix=dict(
        img_path='img_dir/train', seg_map_path='ann_dir/train')))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(dataset, data_prefix=dict(
        img_path='img_dir/val', seg_map_path='ann_dir/val')))
test_dataloader = val_dataloader

train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=1000)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                        end=2, by_epoch=False)]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2))
randomness = dict(seed=0)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
