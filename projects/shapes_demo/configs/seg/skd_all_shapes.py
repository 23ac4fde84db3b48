# SKD with all three terms, the paper's weights (10, 1, 0.1).
# Loss weights chosen on the val split by select_settings.py (selection seeds
# 1000+, never reported) from a grid fixed before any selection run: the
# published weights x 0.1 / 0.3 / 1 (the published weights were set for a
# learning rate of 0.01, the demo's is 10-20x larger, and a term's SGD step
# is lr x weight: the grid spans the published weight down to about the
# published step).
_base_ = './skd_holistic_shapes.py'

paper_loss_weights = dict(pixel=10.0, pair=1.0, holistic=0.1)
weight_grid = dict(pixel=[1.0, 3.0, 10.0], pair=[0.1, 0.3, 1.0],
                   holistic=[0.01, 0.03, 0.1])

model = dict(distill_losses=dict(
    pixel=dict(type='mmkd.PixelWiseLoss', loss_weight=10.0,
               student='logits', teacher='logits'),
    pair=dict(type='mmkd.PairWiseLoss', loss_weight=1.0, pool='avg',
              node_size=2, student='feat', teacher='feat')))
