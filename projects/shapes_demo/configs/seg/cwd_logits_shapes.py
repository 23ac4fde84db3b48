# Channel-wise distillation (Shu et al., ICCV 2021) on the logits: tau 1,
# weight 5 (MMRazor's public Cityscapes reproduction).
# Loss weight and learning rate chosen on the val split by select_settings.py
# (selection seeds 1000 and 1001, never reported) from a grid fixed before any
# selection run: the published weight x 0.05 / 0.2 / 1, each at the
# baseline's chosen rate (0.15) and half of it. A term's SGD step is
# lr x weight; the published weights were set for lr 0.01 and the demo's
# rates are 7.5-15x that, so x 0.05 is about the published step and x 1 the
# published weight.
# Chosen: 0.25 at lr 0.15 (val mIoU, mean of the two seeds, weight 0.25 / 1 /
# 5 at lr 0.15: 40.01 / 34.60 / 25.66; at lr 0.075: 39.52 / 38.50 / 29.38;
# the baseline at its chosen lr 0.15: 38.65).
_base_ = './skd_base_shapes.py'

paper_loss_weights = dict(cwd=5.0)
weight_grid = dict(cwd=[0.25, 1.0, 5.0])

model = dict(distill_losses=dict(
    cwd=dict(type='mmkd.ChannelWiseLoss', tau=1.0, loss_weight=0.25,
             student='logits', teacher='logits')))
optim_wrapper = dict(optimizer=dict(lr=0.15))
