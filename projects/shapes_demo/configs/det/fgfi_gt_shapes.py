# The paper's G variant: imitate the locations inside the ground-truth boxes,
# with the weight select_settings.py chose (see fgfi_base_shapes.py).
_base_ = './fgfi_base_shapes.py'

model = dict(region='gt',
             distill_losses=dict(imitation=dict(loss_weight=0.01)))
# G's gradient per unit weight is about half of I's (see
# fgfi_base_shapes.py)
weight_grid = dict(imitation=[0.01, 0.2, 2.0])
