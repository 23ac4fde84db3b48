# The paper's D variant: output distillation only, no feature imitation: the
# RPN head's objectness logits (binary KL per logit, tau 2, as mmkd's
# published FGFI D config) and its box regression outputs (mean squared
# error), both maps the same shape on both sides (no adaptation layer).
_base_ = './fgfi_base_shapes.py'

# mmkd's published D weight (1.0; the paper gives none) and 4x either side
paper_loss_weights = dict(_delete_=True, rpn_cls=1.0, rpn_reg=1.0)
weight_grid = dict(_delete_=True, rpn_cls=[0.25, 1.0, 4.0],
                   rpn_reg=[0.25, 1.0, 4.0])

model = dict(
    # the teacher runs up to its RPN head (its taps end there)
    teacher_forward='tensor',
    student_taps=dict(rpn_cls='rpn_head.rpn_cls', rpn_reg='rpn_head.rpn_reg'),
    teacher_taps=dict(_delete_=True, rpn_cls='rpn_head.rpn_cls',
                      rpn_reg='rpn_head.rpn_reg'),
    connectors=dict(_delete_=True),
    distill_losses=dict(
        _delete_=True,
        # the weights select_settings.py chose (see fgfi_base_shapes.py)
        rpn_cls=dict(type='mmkd.KDLoss', tau=2.0, use_sigmoid=True,
                     loss_weight=0.25, student='rpn_cls', teacher='rpn_cls'),
        rpn_reg=dict(type='mmkd.FeatureMSELoss', loss_weight=0.25,
                     student='rpn_reg', teacher='rpn_reg')))
