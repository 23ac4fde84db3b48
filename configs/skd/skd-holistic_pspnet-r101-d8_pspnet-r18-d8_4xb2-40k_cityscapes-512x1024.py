# SKD holistic term alone: a conditional WGAN-GP critic scores the student's
# and the teacher's whole score maps; the student raises its score
# (lambda_ho 0.1). Paper's condition: softmax(logits) + the image, so the
# critic (official layout) takes 19 + 3 channels. One critic step per
# student step, SGD lr 4e-4 poly; its loss is scaled by 0.1 as in the
# official code (d_loss_weight).
_base_ = [
    './_base_/skd_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x1024.py',  # noqa: E501
    './_base_/skd_critic.py'
]

model = dict(
    distill_losses=dict(holistic={{_base_.skd_losses.holistic}}),
    discriminator=dict(type='mmkd.SegDiscriminator', in_channels=19 + 3))

optim_wrapper = {{_base_.skd_critic_optim_wrapper}}
param_scheduler = dict(
    _delete_=True,
    student=[dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                  end=40000, by_epoch=False)],
    discriminator=[dict(type='PolyLR', eta_min=0, power=0.9, begin=0,
                        end=40000, by_epoch=False)])
model_wrapper_cfg = {{_base_.skd_critic_model_wrapper_cfg}}
