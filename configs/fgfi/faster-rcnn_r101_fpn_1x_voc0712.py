# The teacher for the VOC0712 FGFI config: mmdet's Faster R-CNN R50-FPN VOC
# config with a ResNet-101 backbone. mmdet ships neither this config nor its
# weights: train it first (python tools/train.py
# configs/fgfi/faster-rcnn_r101_fpn_1x_voc0712.py).
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet101')))
