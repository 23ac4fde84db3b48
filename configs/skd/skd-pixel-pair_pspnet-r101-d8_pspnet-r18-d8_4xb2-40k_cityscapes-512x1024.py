# SKD pixel-wise + pair-wise (the official README's "+pair" row, 71.78):
# the pixel-wise config plus the pair-wise term on the PSP module output
# (official nodes: max pooling, pool_scale 0.5, see skd-pair_*).
_base_ = './skd-pixel_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x1024.py'

model = dict(distill_losses=dict(pair={{_base_.skd_losses.pair}}))
