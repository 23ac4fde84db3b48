# The SKD setting shared by configs/skd/skd-*_pspnet-r101-d8_pspnet-r18-d8_*:
# the 40k PSPNet-R18 baseline as the student of a frozen PSPNet-R101 (mmseg
# model zoo, 78.34 mIoU; the paper's teacher has 78.5). The student optimizer
# is the stock one: SGD lr 0.01, momentum 0.9, wd 5e-4, poly 0.9. Each
# variant adds its distillation losses (from skd_terms.py).
_base_ = ['../pspnet_r18-d8_4xb2-40k_cityscapes-512x1024.py', './skd_terms.py']

model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='mmseg::pspnet/pspnet_r101-d8_4xb2-40k_cityscapes-512x1024.py',
    teacher_checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/'
    'pspnet/pspnet_r101-d8_512x1024_40k_cityscapes/'
    'pspnet_r101-d8_512x1024_40k_cityscapes_20200604_232751-467e7cf4.pth',
    # logits: decode-head class scores at 1/8 (19 channels, 64x128 here);
    # feat: the PSP module output (decode_head.bottleneck), 128 channels in
    # the student, 512 in the teacher: the official pair-wise feature.
    student_taps=dict(logits='decode_head.conv_seg',
                      feat='decode_head.bottleneck'),
    teacher_taps=dict(logits='decode_head.conv_seg',
                      feat='decode_head.bottleneck'))
