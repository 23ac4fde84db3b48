# The paper's G variant: imitate the locations inside the ground-truth boxes.
_base_ = './fgfi_base_shapes.py'

model = dict(region='gt')
