# SKD with all three terms (the paper's weights: 10, 1, 0.1).
# Loss weights chosen on the val split by select_settings.py (selection seeds
# 1000+, never reported) from a grid fixed before any selection run: the
# published weights x 0.05 / 0.2 / 1. A term's SGD step is lr x weight; the
# published weights were set for lr 0.01 and the demo's lr is 0.2, so x 0.05
# gives the published step, x 1 the published weight, x 0.2 lies between.
# Chosen: x 0.05 (val mIoU at x 0.05 / 0.2 / 1: 30.24 / 29.67 / 16.58, seed
# 1000; the baseline at its chosen lr 0.2: 33.24).
_base_ = './skd_holistic_shapes.py'

paper_loss_weights = dict(pixel=10.0, pair=1.0, holistic=0.1)
weight_grid = dict(pixel=[0.5, 2.0, 10.0], pair=[0.05, 0.2, 1.0],
                   holistic=[0.005, 0.02, 0.1])

model = dict(distill_losses=dict(
    pixel=dict(type='mmkd.PixelWiseLoss', loss_weight=0.5,
               student='logits', teacher='logits'),
    pair=dict(type='mmkd.PairWiseLoss', loss_weight=0.05, pool='avg',
              node_size=2, student='feat', teacher='feat'),
    holistic=dict(loss_weight=0.005)))
