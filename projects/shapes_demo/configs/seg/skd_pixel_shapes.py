# SKD pixel-wise term (lambda_pi = 10, the paper's weight).
_base_ = './skd_base_shapes.py'

model = dict(distill_losses=dict(
    pixel=dict(type='mmkd.PixelWiseLoss', loss_weight=10.0,
               student='logits', teacher='logits')))
