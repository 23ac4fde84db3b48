# SKD pair-wise term (lambda_pa = 1) on the PSP bottleneck: 2x2 average-pooled
# nodes (the TPAMI paper's best beta) on the 12x12 map.
# Loss weight and learning rate chosen on the val split by select_settings.py
# (selection seeds 1000 and 1001, never reported) from a grid fixed before any
# selection run: the published weight x 0.05 / 0.2 / 1, each at the
# baseline's chosen rate (0.15) and half of it. A term's SGD step is
# lr x weight; the published weights were set for lr 0.01 and the demo's
# rates are 7.5-15x that, so x 0.05 is about the published step and x 1 the
# published weight.
# Chosen: 0.05 at lr 0.15 (val mIoU, mean of the two seeds, weight 0.05 /
# 0.2 / 1 at lr 0.15: 38.19 / 37.93 / 36.31; at lr 0.075: 37.80 / 37.68 /
# 37.28; the baseline at its chosen lr 0.15: 38.65).
_base_ = './skd_base_shapes.py'

paper_loss_weights = dict(pair=1.0)
weight_grid = dict(pair=[0.05, 0.2, 1.0])

model = dict(distill_losses=dict(
    pair=dict(type='mmkd.PairWiseLoss', loss_weight=0.05, pool='avg',
              node_size=2, student='feat', teacher='feat')))
optim_wrapper = dict(optimizer=dict(lr=0.15))
