# The study regime's segmentation student: the demo's PSPNet-R18 student
# starting as the papers' students do, from a backbone pretrained on another
# task (resnetv1c18_shapes_objects.py: the class of an object cropped from a
# pool scene; the ImageNet analogue), its decode head from the stock
# initialisation, trained for the study's schedule. run_demo.py --study sets
# SHAPES_SEG_CLASSIFIER.
_base_ = '../../seg/pspnet_r18_shapes_student.py'

model = dict(
    backbone=dict(init_cfg=dict(
        type='Pretrained', prefix='backbone.',
        checkpoint='{{$SHAPES_SEG_CLASSIFIER:work_dirs/shapes_demo_study/seg_pretrain/iter_2000.pth}}')),  # noqa
    decode_head=dict(init_cfg=dict(_delete_=True, type='Normal', std=0.01,
                                   override=dict(name='conv_seg'))))
max_iters = 12150
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                        end=max_iters, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=max_iters))
