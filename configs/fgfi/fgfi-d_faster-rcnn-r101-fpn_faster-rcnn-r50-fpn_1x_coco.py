# FGFI ablation D: output distillation only -- a temperature KD loss on the
# RPN's objectness logits, no feature imitation.
#
# rpn_head.rpn_cls is one conv shared by the 5 FPN levels, so its tap is a
# tuple of 5 maps (N, 3, H_l, W_l) (3 anchors, one sigmoid logit each) on both
# sides; the student and teacher maps have the same shape, so no adaptation
# layer is needed.
#
# The teacher must run its RPN head: teacher_forward='tensor' runs
# TwoStageDetector._forward (backbone, neck, rpn_head.predict -- forward plus
# proposal NMS with test_cfg.rpn -- and the RoI head on those proposals). It
# works in training (proposals come from the teacher's own RPN; the data
# samples only give image metas), but the NMS and RoI head are wasted work:
# tools/analysis_tools/benchmark_fgfi_step.py measures it. The distiller has
# no cheaper teacher_forward.
_base_ = './fgfi_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_1x_coco.py'

model = dict(
    teacher_forward='tensor',
    # no loss asks for 'imitation_masks': no imitation region is built
    mask_tap=None,
    student_taps=dict(rpn_cls='rpn_head.rpn_cls'),
    teacher_taps=dict(_delete_=True, rpn_cls='rpn_head.rpn_cls'),
    # no unused adaptation layer (it would get no gradient: DDP complains)
    connectors=dict(_delete_=True),
    distill_losses=dict(
        _delete_=True,
        # binary KL per logit (the RPN classifier is a sigmoid); tau 2 softens
        # the teacher's confident background (the paper gives no value), and
        # the tau^2 factor keeps the gradient scale of tau 1
        kd=dict(type='mmkd.KDLoss', tau=2.0, use_sigmoid=True,
                loss_weight=1.0, student='rpn_cls', teacher='rpn_cls')),
    loss_schedules=dict(_delete_=True))
