# PKD (Cao et al., NeurIPS 2022) on the demo's detector pair: the Pearson
# correlation of each FPN output P2-P6, as the demo's FGFI variants distil
# them (the official Faster R-CNN config skips P6, a 2x2 map here). PKD
# correlates channel c with channel c, so the student's 16 FPN channels go
# through a 1x1 conv per level to the teacher's 64 first (the official pairs
# have equal channels and no adapter). Official Faster R-CNN weight: 6.
_base_ = './fgfi_base_shapes.py'

# why these three: fgfi_base_shapes.py
paper_loss_weights = dict(_delete_=True, pkd=6.0)
weight_grid = dict(_delete_=True, pkd=[6.0, 6.0, 6.0])

model = dict(
    mask_tap=None,  # no imitation region
    connectors=dict(_delete_=True, fpn_align=dict(
        type='mmkd.ConvConnector', in_channels=16, out_channels=64,
        kernel_size=1, act=False, init_std=None, num_levels=5)),
    distill_losses=dict(
        _delete_=True,
        pkd=dict(type='mmkd.PKDLoss', loss_weight=6.0, student='fpn',
                 connector='fpn_align', teacher='fpn')))
