# SKD pair-wise term (lambda_pa = 1) on the PSP bottleneck: 2x2 average-pooled
# nodes (the TPAMI paper's best beta) on the 12x12 map.
_base_ = './skd_base_shapes.py'

model = dict(distill_losses=dict(
    pair=dict(type='mmkd.PairWiseLoss', loss_weight=1.0, pool='avg',
              node_size=2, student='feat', teacher='feat')))
