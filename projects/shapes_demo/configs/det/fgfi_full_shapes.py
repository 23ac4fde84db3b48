# The paper's F variant: imitate every location (hint learning).
_base_ = './fgfi_base_shapes.py'

model = dict(region='full')
# Chosen: 0.0005 at lr 0.08 (val bbox mAP, weight 0.0005 / 0.002 / 0.01 at
# lr 0.08: 12.5 / 12.2 / 12.0; at lr 0.04: 11.5 / 11.1 / 11.0; the baseline
# at its chosen lr 0.08: 12.1).
model = dict(distill_losses=dict(imitation=dict(loss_weight=0.0005)))
optim_wrapper = dict(optimizer=dict(lr=0.08))
