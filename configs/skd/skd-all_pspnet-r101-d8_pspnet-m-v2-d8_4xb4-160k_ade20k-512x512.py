# SKD, all three terms, on ADE20K (150 classes, 512x512 crops): mmseg ships
# no PSPNet-R18 ADE20K config, so the student is its PSPNet with a
# MobileNetV2 backbone (29.68 mIoU), the teacher PSPNet-R101 (44.39). Same
# head type, so the same taps; the stock 160k schedule (no published SKD
# schedule for this pair). 64x64 logits: the official critic layout scores a
# 1x1 map, as in the official code.
_base_ = [
    'mmseg::mobilenet_v2/mobilenet-v2-d8_pspnet_4xb4-160k_ade20k-512x512.py',  # noqa: E501
    './_base_/skd_terms.py', './_base_/skd_critic.py'
]

model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='mmseg::pspnet/pspnet_r101-d8_4xb4-160k_ade20k-512x512.py',
    teacher_checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/'
    'pspnet/pspnet_r101-d8_512x512_160k_ade20k/'
    'pspnet_r101-d8_512x512_160k_ade20k_20200615_100650-967c316f.pth',
    # feat: the PSP module output, 512 channels in both
    student_taps=dict(logits='decode_head.conv_seg',
                      feat='decode_head.bottleneck'),
    teacher_taps=dict(logits='decode_head.conv_seg',
                      feat='decode_head.bottleneck'),
    distill_losses={{_base_.skd_losses}},
    discriminator=dict(type='mmkd.SegDiscriminator', in_channels=150 + 3))

optim_wrapper = {{_base_.skd_critic_optim_wrapper}}
param_scheduler = dict(
    _delete_=True,
    student=[dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                  end=160000, by_epoch=False)],
    discriminator=[dict(type='PolyLR', eta_min=0, power=0.9, begin=0,
                        end=160000, by_epoch=False)])
model_wrapper_cfg = {{_base_.skd_critic_model_wrapper_cfg}}
