# Channel-wise distillation (Shu et al., ICCV 2021) on the logits: tau 1,
# weight 5 (MMRazor's public Cityscapes reproduction).
# Loss weight chosen on the val split by select_settings.py (selection seeds
# 1000+, never reported) from a grid fixed before any selection run: the
# published weight x 0.05 / 0.2 / 1. A term's SGD step is lr x weight; the
# published weights were set for lr 0.01 and the demo's lr is 0.2, so x 0.05
# gives the published step, x 1 the published weight, x 0.2 lies between.
# Chosen: 0.25 (val mIoU at 0.25 / 1 / 5: 31.85 / 31.33 / 22.89, seed 1000;
# the baseline at its chosen lr 0.2: 33.24).
_base_ = './skd_base_shapes.py'

paper_loss_weights = dict(cwd=5.0)
weight_grid = dict(cwd=[0.25, 1.0, 5.0])

model = dict(distill_losses=dict(
    cwd=dict(type='mmkd.ChannelWiseLoss', tau=1.0, loss_weight=0.25,
             student='logits', teacher='logits')))
