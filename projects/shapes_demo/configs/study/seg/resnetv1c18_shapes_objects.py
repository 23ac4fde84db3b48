# The study regime's segmentation pretraining (the ImageNet analogue): the
# segmentation student's backbone (ResNetV1c-18, 8 base channels, dilated as
# PSPNet's) classifies the objects of the pretraining pool, each cropped from
# its box (48 x 48 px; shapes_demo/classifier.py). The study's students take
# its backbone.
_base_ = '../../seg/pspnet_r18_shapes_student.py'

custom_imports = dict(imports=['shapes_demo.classifier'],
                      allow_failed_imports=False)
# the segmentation student's backbone, trained from scratch here
backbone = dict(
    type='ResNetV1c', depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
    dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), contract_dilation=True,
    norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
    style='pytorch', stem_channels=8, base_channels=8, init_cfg=None)
model = dict(
    _delete_=True, type='ShapesObjectClassifier', backbone=backbone,
    in_channels=64,
    data_preprocessor=dict(type='ImgDataPreprocessor',
                           mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True))
pool_root = '{{$SHAPES_POOL_DET:data/shapes_demo/pool/det}}'
train_dataloader = dict(
    _delete_=True, batch_size=64, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ShapesObjectDataset', data_root=pool_root,
                 split='train', size=48, flip=True))
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None
max_iters = 2000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop',
                 max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=0.1))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                        end=max_iters, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=max_iters))
