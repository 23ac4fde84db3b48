# FGFI (I): imitate the anchors near each object (psi 0.5, max IoU over all
# levels).
_base_ = './fgfi_base_shapes.py'

model = dict(
    region='imitation',
    mask_generator=dict(type='mmkd.ImitationMaskGenerator', psi=0.5,
                        max_iou_scope='all'))
