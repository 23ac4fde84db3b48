# Channel-wise distillation (Shu et al., ICCV 2021) on the logits: tau 1,
# weight 5 (MMRazor's public Cityscapes reproduction).
# The loss weight and learning rate below: those select_settings.py chose
# (see skd_base_shapes.py).
_base_ = './skd_base_shapes.py'

paper_loss_weights = dict(cwd=5.0)
weight_grid = dict(cwd=[0.25, 1.0, 5.0])

model = dict(distill_losses=dict(
    cwd=dict(type='mmkd.ChannelWiseLoss', tau=1.0, loss_weight=0.25,
             student='logits', teacher='logits')))
optim_wrapper = dict(optimizer=dict(lr=0.075))
