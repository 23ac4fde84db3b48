# SKD with all three terms, the paper's weights (10, 1, 0.1).
_base_ = './skd_holistic_shapes.py'

model = dict(distill_losses=dict(
    pixel=dict(type='mmkd.PixelWiseLoss', loss_weight=10.0,
               student='logits', teacher='logits'),
    pair=dict(type='mmkd.PairWiseLoss', loss_weight=1.0, pool='avg',
              node_size=2, student='feat', teacher='feat')))
