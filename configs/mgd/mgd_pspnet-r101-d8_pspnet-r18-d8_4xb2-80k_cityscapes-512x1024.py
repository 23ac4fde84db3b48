# MGD for segmentation (Yang et al., ECCV 2022): PSPNet-R101 teacher (mmseg
# model zoo, 79.76 mIoU) -> PSPNet-R18 student, Cityscapes, mmseg's stock
# 80k 512x1024 config. The official seg code (yzd-v/MGD, seg/) generates the
# teacher's last backbone stage (2048 channels) from the student's (512,
# aligned by a 1x1 conv): alpha 2e-5, lambda 0.75, and adds channel-wise
# distillation of the logits (tau 4, weight 3), which its published numbers
# include.
_base_ = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'

model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher='mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py',
    teacher_checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/'
    'pspnet/pspnet_r101-d8_512x1024_80k_cityscapes/'
    'pspnet_r101-d8_512x1024_80k_cityscapes_20200606_112211-e1e1100f.pth',
    student_taps=dict(c5='backbone.layer4', logits='decode_head.conv_seg'),
    teacher_taps=dict(c5='backbone.layer4', logits='decode_head.conv_seg'),
    distill_losses=dict(
        mgd=dict(type='mmkd.MGDLoss', student_channels=512,
                 teacher_channels=2048, loss_weight=2e-5, mask_ratio=0.75,
                 student='c5', teacher='c5'),
        cwd=dict(type='mmkd.ChannelWiseLoss', tau=4.0, loss_weight=3.0,
                 student='logits', teacher='logits')))
