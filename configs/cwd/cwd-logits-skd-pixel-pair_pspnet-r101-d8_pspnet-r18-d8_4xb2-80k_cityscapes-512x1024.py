# CWD on the logits beside SKD's pixel-wise and pair-wise terms (Liu et al.,
# CVPR 2019; configs/skd/_base_/skd_terms.py): each term with its published
# weight (CWD: tau 1, 5; pixel-wise: tau 1, 10; pair-wise: max-pooled nodes,
# pool_scale 0.5, 1).
# No published result combines them: a starting point, not a reproduction.
_base_ = [
    './cwd-logits_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py',  # noqa: E501
    '../skd/_base_/skd_terms.py'
]

model = dict(
    # SKD's distiller (its holistic term needs it); without a holistic term
    # it trains exactly as the single-teacher distiller.
    type='mmkd.SingleTeacherDistiller',
    distill_losses=dict(pixel={{_base_.skd_losses.pixel}},
                        pair={{_base_.skd_losses.pair}}),
    # How to schedule a term's weight, by iteration (an illustration, not a
    # published setting): the SKD terms are off for the first 1k iterations
    # (warmup) and from iteration 72k on (stop), so the last 8k iterations
    # train on the labels and CWD alone. Logged: distill.<name> (scheduled)
    # and distill_factor.<name> (the factor). Also possible: decay='linear' /
    # 'cosine' with decay_end and min_factor, and by_epoch=True.
    loss_schedules=dict(
        pixel=dict(warmup=1000, stop=72000),
        pair=dict(warmup=1000, stop=72000)))
