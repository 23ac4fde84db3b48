# The study regime's segmentation teacher: the demo's PSPNet-R50 teacher
# starting as the papers' teachers do, from a backbone pretrained on another
# task (resnetv1c50_shapes_objects.py: the class of an object cropped from a
# pool scene; the ImageNet analogue), its heads from the stock
# initialisation, trained for the study's schedule at the teacher's own
# rate. run_demo.py --study sets SHAPES_SEG_TEACHER_CLASSIFIER.
_base_ = '../../seg/pspnet_r50_shapes_teacher.py'

model = dict(backbone=dict(init_cfg=dict(
    _delete_=True, type='Pretrained', prefix='backbone.',
    checkpoint='{{$SHAPES_SEG_TEACHER_CLASSIFIER:work_dirs/shapes_demo_study/seg_teacher_pretrain/iter_2000.pth}}')))  # noqa
max_iters = 16000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                        end=max_iters, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=max_iters))
