# The SKD terms with the paper's weights and the official code's layout, in
# one place for every config that uses them (configs/skd/skd-*, and SKD terms
# beside other methods): helper values, not a model. A config lists this
# file among its bases, beside its student's config, and takes the terms it
# uses as base variables (_base_.skd_losses.pixel, ...).
skd_losses = dict(
    # pixel-wise: the student's logits imitate the teacher's per pixel (KL,
    # tau 1, lambda_pi 10, averaged over batch and pixels)
    pixel=dict(type='mmkd.PixelWiseLoss', loss_weight=10.0,
               student='logits', teacher='logits'),
    # pair-wise: the affinity graph of the student's features imitates the
    # teacher's (lambda_pa 1); official nodes: max pooling, kernel = stride
    # = int(0.5 * side)
    pair=dict(type='mmkd.PairWiseLoss', loss_weight=1.0, pool='max',
              pool_scale=0.5, student='feat', teacher='feat'),
    # holistic: a conditional WGAN-GP critic scores the whole score maps,
    # conditioned on the image (the paper's D(Q | I)); the student raises
    # its score (lambda_ho 0.1) and the critic's loss is scaled by 0.1 as in
    # the official code (d_loss_weight)
    holistic=dict(type='mmkd.HolisticLoss', loss_weight=0.1,
                  condition='image', d_loss_weight=0.1,
                  student='logits', teacher='logits'))
