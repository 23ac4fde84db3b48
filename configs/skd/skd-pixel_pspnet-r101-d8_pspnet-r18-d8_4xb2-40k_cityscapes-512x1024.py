# SKD pixel-wise term alone: the student's logits imitate the teacher's,
# per pixel (KL, tau 1, lambda_pi 10, averaged over batch and pixels).
_base_ = './_base_/skd_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x1024.py'

model = dict(distill_losses=dict(pixel={{_base_.skd_losses.pixel}}))
