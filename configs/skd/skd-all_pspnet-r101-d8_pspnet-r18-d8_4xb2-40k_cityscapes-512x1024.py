# SKD, all three terms (the official README's 74.08): the holistic config
# plus the pixel-wise term on the logits (lambda_pi 10) and the pair-wise
# term on the PSP module output (lambda_pa 1, official nodes: max pooling,
# pool_scale 0.5).
_base_ = './skd-holistic_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x1024.py'

model = dict(distill_losses={{_base_.skd_losses}})
