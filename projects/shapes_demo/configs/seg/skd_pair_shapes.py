# SKD pair-wise term (lambda_pa = 1) on the PSP bottleneck: 2x2 average-pooled
# nodes (the TPAMI paper's best beta) on the 12x12 map.
# Loss weight and learning rate chosen on the val split by select_settings.py
# (selection seed 1000, never reported) from a grid fixed before any
# selection run: the published weight x 0.05 / 0.2 / 1, each at the
# baseline's chosen rate (0.15) and half of it. A term's SGD step is
# lr x weight; the published weights were set for lr 0.01 and the demo's
# rates are 7.5-15x that, so x 0.05 is about the published step and x 1 the
# published weight.
# Chosen: 0.2 at lr 0.15 (val mIoU, weight 0.05 / 0.2 / 1 at lr 0.15: 38.37 /
# 43.37 / 16.58; at lr 0.075: 42.34 / 42.42 / 26.10; the baseline at its
# chosen lr 0.15: 42.95).
_base_ = './skd_base_shapes.py'

paper_loss_weights = dict(pair=1.0)
weight_grid = dict(pair=[0.05, 0.2, 1.0])

model = dict(distill_losses=dict(
    pair=dict(type='mmkd.PairWiseLoss', loss_weight=0.2, pool='avg',
              node_size=2, student='feat', teacher='feat')))
optim_wrapper = dict(optimizer=dict(lr=0.15))
