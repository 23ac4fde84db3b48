# SKD with all three terms (the paper's weights: 10, 1, 0.1).
# Loss weights and learning rate chosen on the val split by select_settings.py
# (selection seeds 1000 and 1001, never reported) from a grid fixed before any
# selection run: the published weights x 0.05 / 0.2 / 1, each at the
# baseline's chosen rate (0.15) and half of it. A term's SGD step is
# lr x weight; the published weights were set for lr 0.01 and the demo's
# rates are 7.5-15x that, so x 0.05 is about the published step and x 1 the
# published weight.
# Chosen: x 0.05 at lr 0.075 (val mIoU, mean of the two seeds, x 0.05 / 0.2 /
# 1 at lr 0.15: 35.82 / 34.53 / 16.58; at lr 0.075: 38.46 / 36.80 / 32.64;
# the baseline at its chosen lr 0.15: 38.65).
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
# the critic keeps 0.04x the student's rate
optim_wrapper = dict(student=dict(optimizer=dict(lr=0.075)),
                     discriminator=dict(optimizer=dict(lr=3e-3)))
