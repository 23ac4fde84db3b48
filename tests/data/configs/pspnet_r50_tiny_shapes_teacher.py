# A CPU-sized PSPNet-R50 teacher for the tiny shapes dataset.
_base_ = './pspnet_r18_tiny_shapes.py'

model = dict(
    backbone=dict(depth=50),
    decode_head=dict(in_channels=256, channels=32),
    auxiliary_head=dict(in_channels=128, channels=16))
