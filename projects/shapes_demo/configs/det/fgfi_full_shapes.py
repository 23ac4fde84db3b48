# The paper's F variant: imitate every location (hint learning).
_base_ = './fgfi_base_shapes.py'

model = dict(region='full')
