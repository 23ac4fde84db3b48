# MGD for segmentation with a DeepLabV3-R18 student of the PSPNet-R101
# teacher (the official seg code's second student), Cityscapes, mmseg's
# stock 80k 512x1024 config; the terms of _base_/mgd_seg_terms.py.
_base_ = [
    'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
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
