# The demo's pretraining stage: the segmentation student trained from scratch
# on a separate pool of generated scenes (none of them in train / val / test);
# the demo's students start from its backbone, as the paper's ResNet-18 starts
# from ImageNet weights. run_demo.py runs it once and reuses it.
_base_ = './pspnet_r18_shapes_student.py'

model = dict(backbone=dict(init_cfg=None))
# not the student's selected rate: fixed before any selection
optim_wrapper = dict(optimizer=dict(lr=0.2))
