# SKD pixel-wise term (the paper's lambda_pi = 10).
# The loss weight and learning rate below: those select_settings.py chose
# (see skd_base_shapes.py).
_base_ = './skd_base_shapes.py'

paper_loss_weights = dict(pixel=10.0)
weight_grid = dict(pixel=[0.5, 2.0, 10.0])

model = dict(distill_losses=dict(
    pixel=dict(type='mmkd.PixelWiseLoss', loss_weight=2.0,
               student='logits', teacher='logits')))
optim_wrapper = dict(optimizer=dict(lr=0.075))
