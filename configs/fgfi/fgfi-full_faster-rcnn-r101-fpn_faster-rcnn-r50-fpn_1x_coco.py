# FGFI ablation F: full-feature imitation (hint learning) -- every location
# of every FPN level inside the image, same adaptation layer, loss and lambda
# as the method, so that only the region differs.
_base_ = './fgfi_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_1x_coco.py'

model = dict(region='full')
