# FGFI ablation G: the ground-truth boxes, scaled to each FPN level, as the
# imitation region (instead of the anchor-based imitation mask).
_base_ = './fgfi_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_1x_coco.py'

model = dict(region='gt')
