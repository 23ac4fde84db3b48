# mmyolo's RTMDet distillation (configs/rtmdet/distillation of mmyolo, built
# on MMRazor), shared by the pair configs of this folder: channel-wise
# distillation (tau 1, weight 1 per level) of the three neck outputs P3-P5 (the
# convolution of each neck.out_convs.i, before its norm and activation), each
# channel standardised over the batch first (normalize='batch': mmyolo's
# NormConnector on the teacher, a normalising 1x1 connector on the student);
# the term stops at epoch 280 of 300 (mmyolo's StopDistillHook).
neck_taps = dict(p3='neck.out_convs.0.conv', p4='neck.out_convs.1.conv',
                 p5='neck.out_convs.2.conv')
cwd_neck = dict(type='mmkd.ChannelWiseLoss', tau=1.0, loss_weight=1.0,
                normalize='batch')
cwd_losses = dict(
    cwd_p3=dict(cwd_neck, student='p3', connector='p3_adapt', teacher='p3'),
    cwd_p4=dict(cwd_neck, student='p4', connector='p4_adapt', teacher='p4'),
    cwd_p5=dict(cwd_neck, student='p5', connector='p5_adapt', teacher='p5'))
cwd_stop = dict(cwd_p3=dict(stop=280, by_epoch=True),
                cwd_p4=dict(stop=280, by_epoch=True),
                cwd_p5=dict(stop=280, by_epoch=True))
