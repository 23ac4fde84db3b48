# The CWD setting shared by configs/cwd/cwd-*: mmseg's PSPNet-R18 Cityscapes
# config (80k iterations, 512x1024 crops, 4x2 images, SGD lr 0.01 poly, as
# inherited) as the student of a frozen PSPNet-R101 (mmseg model zoo, 79.76
# mIoU), the setting of MMRazor's CWD reproduction. Each variant adds its
# distillation losses (and connectors).
_base_ = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'

model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py',
    teacher_checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/'
    'pspnet/pspnet_r101-d8_512x1024_80k_cityscapes/'
    'pspnet_r101-d8_512x1024_80k_cityscapes_20200606_112211-e1e1100f.pth',
    # logits: decode-head class scores at 1/8 (19 channels, 64x128 here);
    # feat: the PSP module output (decode_head.bottleneck, after its
    # conv-BN-ReLU), 128 channels in the student, 512 in the teacher.
    student_taps=dict(logits='decode_head.conv_seg',
                      feat='decode_head.bottleneck'),
    teacher_taps=dict(logits='decode_head.conv_seg',
                      feat='decode_head.bottleneck'))
