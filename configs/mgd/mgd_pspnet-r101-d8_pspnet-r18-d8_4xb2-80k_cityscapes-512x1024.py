# MGD for segmentation (Yang et al., ECCV 2022): PSPNet-R101 teacher ->
# PSPNet-R18 student, Cityscapes, mmseg's stock 80k 512x1024 config. The
# official seg code (yzd-v/MGD, seg/) generates the teacher's last backbone
# stage from the student's and adds channel-wise distillation of the logits
# (_base_/mgd_seg_terms.py).
_base_ = [
    'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    './_base_/mgd_seg_terms.py'
]

model = dict(
    _delete_=True,
    type='mmkd.SingleTeacherDistiller',
    student={{_base_.model}},
    teacher={{_base_.mgd_seg_teacher}},
    teacher_checkpoint={{_base_.mgd_seg_teacher_checkpoint}},
    student_taps={{_base_.mgd_seg_taps}},
    teacher_taps={{_base_.mgd_seg_taps}},
    distill_losses={{_base_.mgd_seg_losses}})
