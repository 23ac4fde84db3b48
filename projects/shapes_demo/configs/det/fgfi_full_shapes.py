# The paper's F variant: imitate every location (hint learning), with the
# loss weight and learning rate select_settings.py chose (see
# fgfi_base_shapes.py).
_base_ = './fgfi_base_shapes.py'

model = dict(region='full',
             distill_losses=dict(imitation=dict(loss_weight=0.0005)))
optim_wrapper = dict(optimizer=dict(lr=0.08))
