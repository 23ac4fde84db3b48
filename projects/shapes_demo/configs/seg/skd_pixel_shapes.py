# SKD pixel-wise term (the paper's lambda_pi = 10).
# Loss weight and learning rate chosen on the val split by select_settings.py
# (selection seeds 1000 and 1001, never reported) from a grid fixed before any
# selection run: the published weight x 0.05 / 0.2 / 1, each at the
# baseline's chosen rate (0.15) and half of it. A term's SGD step is
# lr x weight; the published weights were set for lr 0.01 and the demo's
# rates are 7.5-15x that, so x 0.05 is about the published step and x 1 the
# published weight.
# Chosen: 0.5 at lr 0.075 (val mIoU, mean of the two seeds, weight 0.5 / 2 /
# 10 at lr 0.15: 37.10 / 34.93 / 26.69; at lr 0.075: 38.06 / 38.06 / 30.94;
# the baseline at its chosen lr 0.15: 38.65).
_base_ = './skd_base_shapes.py'

paper_loss_weights = dict(pixel=10.0)
weight_grid = dict(pixel=[0.5, 2.0, 10.0])

model = dict(distill_losses=dict(
    pixel=dict(type='mmkd.PixelWiseLoss', loss_weight=0.5,
               student='logits', teacher='logits')))
optim_wrapper = dict(optimizer=dict(lr=0.075))
