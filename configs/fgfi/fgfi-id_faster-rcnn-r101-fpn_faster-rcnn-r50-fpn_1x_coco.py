# FGFI ablation ID: the imitation of the method (I) plus the output
# distillation of D on the RPN objectness logits.
_base_ = './fgfi_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_1x_coco.py'

model = dict(
    teacher_forward='tensor',  # the teacher's RPN head must run (see D)
    student_taps=dict(rpn_cls='rpn_head.rpn_cls'),
    teacher_taps=dict(rpn_cls='rpn_head.rpn_cls'),
    distill_losses=dict(
        kd=dict(type='mmkd.KDLoss', tau=2.0, use_sigmoid=True,
                loss_weight=1.0, student='rpn_cls', teacher='rpn_cls')))
