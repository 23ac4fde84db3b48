# Channel-wise distillation (Shu et al., ICCV 2021) on the logits: tau 1,
# weight 5 (MMRazor's public Cityscapes reproduction).
_base_ = './skd_base_shapes.py'

model = dict(distill_losses=dict(
    cwd=dict(type='mmkd.ChannelWiseLoss', tau=1.0, loss_weight=5.0,
             student='logits', teacher='logits')))
