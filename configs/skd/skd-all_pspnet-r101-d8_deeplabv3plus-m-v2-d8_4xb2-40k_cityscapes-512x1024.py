# SKD, all three terms, on another student family: mmseg's DeepLabV3+ with
# a MobileNetV2 backbone (the paper's MobileNetV2Plus student, 70.1 -> 74.5)
# learns from the same PSPNet-R101 teacher, 40k iterations (official).
# The student decodes at 1/4: the teacher's 1/8 logits are resized to the
# student's 128x256 by the pixel-wise and holistic terms.
_base_ = [
    'mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py',  # noqa: E501
    './_base_/skd_terms.py', './_base_/skd_critic.py'
]

model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='mmseg::pspnet/pspnet_r101-d8_4xb2-40k_cityscapes-512x1024.py',
    teacher_checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/'
    'pspnet/pspnet_r101-d8_512x1024_40k_cityscapes/'
    'pspnet_r101-d8_512x1024_40k_cityscapes_20200604_232751-467e7cf4.pth',
    # feat: the student's ASPP output (512 channels, 1/8) against the
    # teacher's PSP module output (512 channels, 1/8): the context features.
    student_taps=dict(logits='decode_head.conv_seg',
                      feat='decode_head.bottleneck'),
    teacher_taps=dict(logits='decode_head.conv_seg',
                      feat='decode_head.bottleneck'),
    distill_losses={{_base_.skd_losses}},
    discriminator=dict(type='mmkd.SegDiscriminator', in_channels=19 + 3))

optim_wrapper = {{_base_.skd_critic_optim_wrapper}}
param_scheduler = dict(
    _delete_=True,
    student=[dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                  end=40000, by_epoch=False)],
    discriminator=[dict(type='PolyLR', eta_min=0, power=0.9, begin=0,
                        end=40000, by_epoch=False)])
train_cfg = dict(max_iters=40000, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
model_wrapper_cfg = {{_base_.skd_critic_model_wrapper_cfg}}
