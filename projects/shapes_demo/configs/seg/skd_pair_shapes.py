# SKD pair-wise term (lambda_pa = 1) on the PSP bottleneck: 2x2 average-pooled
# nodes (the TPAMI paper's best beta) on the 12x12 map.
# The loss weight and learning rate below: those select_settings.py chose
# (see skd_base_shapes.py).
_base_ = './skd_base_shapes.py'

paper_loss_weights = dict(pair=1.0)
weight_grid = dict(pair=[0.05, 0.2, 1.0])

model = dict(distill_losses=dict(
    pair=dict(type='mmkd.PairWiseLoss', loss_weight=0.2, pool='avg',
              node_size=2, student='feat', teacher='feat')))
optim_wrapper = dict(optimizer=dict(lr=0.15))
