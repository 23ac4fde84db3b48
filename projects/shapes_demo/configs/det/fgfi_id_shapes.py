# The paper's ID variant: the imitation of the method (I, fgfi_imitation_
# shapes.py) plus the output distillation of D (fgfi_d_shapes.py).
_base_ = './fgfi_imitation_shapes.py'

# the imitation weight scanned as I's, D's terms at their published weight
paper_loss_weights = dict(imitation=0.01, rpn_cls=1.0, rpn_reg=1.0)
weight_grid = dict(imitation=[0.01, 0.1, 1.0], rpn_cls=[1.0, 1.0, 1.0],
                   rpn_reg=[1.0, 1.0, 1.0])

model = dict(
    teacher_forward='tensor',  # the teacher's RPN head must run (see D)
    student_taps=dict(rpn_cls='rpn_head.rpn_cls', rpn_reg='rpn_head.rpn_reg'),
    teacher_taps=dict(rpn_cls='rpn_head.rpn_cls', rpn_reg='rpn_head.rpn_reg'),
    distill_losses=dict(
        rpn_cls=dict(type='mmkd.KDLoss', tau=2.0, use_sigmoid=True,
                     loss_weight=1.0, student='rpn_cls', teacher='rpn_cls'),
        rpn_reg=dict(type='mmkd.FeatureMSELoss', loss_weight=1.0,
                     student='rpn_reg', teacher='rpn_reg')))
