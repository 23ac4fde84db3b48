# The paper's G variant: imitate the locations inside the ground-truth boxes.
_base_ = './fgfi_base_shapes.py'

model = dict(region='gt')
# the setting select_settings.py chose: the published weight (inherited) at
# this rate (see fgfi_base_shapes.py)
optim_wrapper = dict(optimizer=dict(lr=0.04))
