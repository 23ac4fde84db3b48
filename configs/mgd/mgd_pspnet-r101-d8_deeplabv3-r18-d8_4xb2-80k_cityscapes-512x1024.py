# MGD for segmentation with a DeepLabV3-R18 student of the PSPNet-R101
# teacher (the official seg code's second student), Cityscapes, mmseg's
# stock 80k 512x1024 config; the distillation of
# mgd_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py.
_base_ = 'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py'

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
