# The paper's F variant: imitate every location (hint learning).
_base_ = './fgfi_base_shapes.py'

model = dict(region='full')
# F's gradient per unit weight is about a quarter of I's (see
# fgfi_base_shapes.py)
weight_grid = dict(imitation=[0.01, 0.3, 3.0])
