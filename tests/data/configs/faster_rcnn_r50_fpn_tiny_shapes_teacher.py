# A CPU-sized Faster R-CNN R50-FPN teacher for the tiny shapes dataset.
_base_ = './faster_rcnn_r18_fpn_tiny_shapes.py'

model = dict(
    backbone=dict(depth=50),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=32),
                  bbox_head=dict(in_channels=32)))
