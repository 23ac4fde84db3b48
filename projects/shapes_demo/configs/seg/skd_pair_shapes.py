# SKD pair-wise term (lambda_pa = 1) on the PSP bottleneck: 2x2 average-pooled
# nodes (the TPAMI paper's best beta) on the 12x12 map.
# Loss weight chosen on the val split by select_settings.py (selection seeds
# 1000+, never reported) from a grid fixed before any selection run: the
# published weight x 0.05 / 0.2 / 1. A term's SGD step is lr x weight; the
# published weights were set for lr 0.01 and the demo's lr is 0.2, so x 0.05
# gives the published step, x 1 the published weight, x 0.2 lies between.
# Chosen: 0.05 (val mIoU at 0.05 / 0.2 / 1: 27.06 / 26.34 / 16.58, seed 1000;
# the baseline at its chosen lr 0.2: 33.24).
_base_ = './skd_base_shapes.py'

paper_loss_weights = dict(pair=1.0)
weight_grid = dict(pair=[0.05, 0.2, 1.0])

model = dict(distill_losses=dict(
    pair=dict(type='mmkd.PairWiseLoss', loss_weight=0.05, pool='avg',
              node_size=2, student='feat', teacher='feat')))
