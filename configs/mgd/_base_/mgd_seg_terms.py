# What the MGD segmentation configs share (configs/mgd/mgd_pspnet-*_
# cityscapes-*): the PSPNet-R101 teacher (mmseg model zoo, 79.76 mIoU), the
# taps and the two terms of the official seg code: helper values, not a
# model. A config lists this file among its bases, beside its student's
# config.
mgd_seg_teacher = (
    'mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py')
mgd_seg_teacher_checkpoint = (
    'https://download.openmmlab.com/mmsegmentation/v0.5/pspnet/'
    'pspnet_r101-d8_512x1024_80k_cityscapes/'
    'pspnet_r101-d8_512x1024_80k_cityscapes_20200606_112211-e1e1100f.pth')
# the last backbone stage (the student's 512 channels, the teacher's 2048)
# and the decode head's class scores
mgd_seg_taps = dict(c5='backbone.layer4', logits='decode_head.conv_seg')
mgd_seg_losses = dict(
    # the teacher's last stage generated from the student's, 75% of the
    # locations masked (alpha 2e-5, lambda 0.75; a 1x1 conv aligns 512 to
    # 2048 channels inside the loss)
    mgd=dict(type='mmkd.MGDLoss', student_channels=512,
             teacher_channels=2048, loss_weight=2e-5, mask_ratio=0.75,
             student='c5', teacher='c5'),
    # channel-wise distillation of the logits (tau 4, weight 3), which the
    # published numbers include
    cwd=dict(type='mmkd.ChannelWiseLoss', tau=4.0, loss_weight=3.0,
             student='logits', teacher='logits'))
