# The demo's pretraining stage: the segmentation student trained from scratch
# on a separate pool of generated scenes (none of them in train / val / test);
# the demo's students start from its weights (backbone and decode head).
# run_demo.py runs it once and reuses it.
_base_ = './pspnet_r18_shapes_student.py'

model = dict(
    backbone=dict(init_cfg=None),
    # the stock decode head's initialisation
    decode_head=dict(init_cfg=dict(_delete_=True, type='Normal', std=0.01,
                                   override=dict(name='conv_seg'))))
# not the student's selected rate: fixed before any selection
optim_wrapper = dict(optimizer=dict(lr=0.2))
