# SKD with all three terms (the paper's weights: 10, 1, 0.1), the three
# scaled together. The loss weights and learning rate below: those
# select_settings.py chose (see skd_base_shapes.py).
_base_ = './skd_holistic_shapes.py'

paper_loss_weights = dict(pixel=10.0, pair=1.0, holistic=0.1)
weight_grid = dict(pixel=[0.5, 2.0, 10.0], pair=[0.05, 0.2, 1.0],
                   holistic=[0.005, 0.02, 0.1])

model = dict(distill_losses=dict(
    pixel=dict(type='mmkd.PixelWiseLoss', loss_weight=2.0,
               student='logits', teacher='logits'),
    pair=dict(type='mmkd.PairWiseLoss', loss_weight=0.2, pool='avg',
              node_size=2, student='feat', teacher='feat'),
    holistic=dict(loss_weight=0.02)))
# the critic keeps 0.04x the student's rate
optim_wrapper = dict(student=dict(optimizer=dict(lr=0.075)),
                     discriminator=dict(optimizer=dict(lr=3e-3)))
