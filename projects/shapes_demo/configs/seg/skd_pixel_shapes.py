# SKD pixel-wise term (the paper's lambda_pi = 10).
# Loss weight chosen on the val split by select_settings.py (selection seeds
# 1000+, never reported) from a grid fixed before any selection run: the
# published weight x 0.05 / 0.2 / 1. A term's SGD step is lr x weight; the
# published weights were set for lr 0.01 and the demo's lr is 0.2, so x 0.05
# gives the published step, x 1 the published weight, x 0.2 lies between.
# Chosen: 0.5 (val mIoU at 0.5 / 2 / 10: 29.85 / 25.29 / 16.58, seed 1000;
# the baseline at its chosen lr 0.2: 33.24).
_base_ = './skd_base_shapes.py'

paper_loss_weights = dict(pixel=10.0)
weight_grid = dict(pixel=[0.5, 2.0, 10.0])

model = dict(distill_losses=dict(
    pixel=dict(type='mmkd.PixelWiseLoss', loss_weight=0.5,
               student='logits', teacher='logits')))
