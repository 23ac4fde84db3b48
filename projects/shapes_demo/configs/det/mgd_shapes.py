# MGD (Yang et al., ECCV 2022) on the demo's detector pair: the teacher's
# FPN outputs P2-P6 generated from the student's, with random locations
# masked out, as the demo's FGFI variants distil the levels (the official
# Faster R-CNN config skips P6, a 2x2 map here). The student's 16 channels
# are aligned to the teacher's 64 inside the loss (a 1x1 conv, official).
# Official Faster R-CNN values: alpha (loss_weight) 5e-7, lambda 0.45.
_base_ = './fgfi_base_shapes.py'

# the official alpha and the alphas at which the term's gradient at the
# student's P2-P3 outputs is about 10% and 100% of the task's, as for the
# FGFI variants (fgfi_base_shapes.py), fixed before any selection from
# diagnose_fgfi.py --variant mgd: at 5e-7 the ratio is 1.2e-4 (P2) and
# 2.0e-4 (P3), geometric mean 1.5e-4 (the official alpha was set for
# 256-channel COCO features summed over 100x168 maps)
paper_loss_weights = dict(_delete_=True, mgd=5e-7)
weight_grid = dict(_delete_=True, mgd=[5e-7, 3.2e-4, 3.2e-3])

model = dict(
    mask_tap=None,  # no imitation region
    connectors=dict(_delete_=True),
    distill_losses=dict(
        _delete_=True,
        mgd=dict(type='mmkd.MGDLoss', student_channels=16,
                 teacher_channels=64, num_levels=5, loss_weight=5e-7,
                 mask_ratio=0.45, student='fpn', teacher='fpn')))
