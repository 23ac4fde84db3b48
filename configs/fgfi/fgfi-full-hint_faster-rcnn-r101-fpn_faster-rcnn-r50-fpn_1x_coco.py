# FGFI ablation F read as FitNets hint learning between maps of different
# sizes: the student's FPN P4 (stride 16, FitNets' "guided" layer, one level
# earlier than the teacher's) goes through a learned regressor onto the
# teacher's FPN P5 (stride 32, the "hint"), compared at every location.
# Faster R-CNN R101-FPN teacher -> R50-FPN student, COCO, mmdet's 1x
# schedule, as fgfi-full_*.py otherwise. Not reproduced, not tuned: an example
# of mmkd.HintRegressor.
#
# The regressor (mmkd.HintRegressor) is one convolution, stride 1, no
# padding, kernel (H_s - H_t + 1, W_s - W_t + 1): a fixed kernel maps one pair
# of map sizes only, and a detector's map sizes follow its input size (with
# mmdet's keep_ratio=True resize every image has its own, and a batch is
# padded to its largest). So this config trains on inputs of ONE size: every
# training image is resized to exactly 1344x800 (keep_ratio=False: aspect
# ratios are NOT kept, unlike the teacher's and the stock student's training;
# both sides divisible by 32, so no batch is padded and "every location" is
# every location inside the images). Other input sizes stop training with an
# error naming the regressor and both sizes. Testing runs the student alone,
# on mmdet's stock (keep_ratio=True) pipeline.
#
# Cost: student P4 50x84 -> teacher P5 25x42, kernel 26x43, so
# 256 * 256 * 26 * 43 = 73.3M weights (the R50-FPN Faster R-CNN student has
# 41.8M), with a fan-in of 256 * 26 * 43 = 286k per output (the 3x3 adaptation
# layer of the other FGFI configs: 2.3k).
_base_ = './fgfi-full_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_1x_coco.py'

# the one training input size, (width, height)
hint_input_size = (1344, 800)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=hint_input_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

model = dict(
    # no imitation region: no loss asks for it (the hint covers every
    # location)
    mask_tap=None,
    # The P4 and P5 outputs of the FPN (P6 is a max-pool, not a module):
    student_taps=dict(guided='neck.fpn_convs.2'),
    teacher_taps=dict(_delete_=True, hint='neck.fpn_convs.3'),
    connectors=dict(
        _delete_=True,
        hint_regressor=dict(
            type='mmkd.HintRegressor', in_channels=256, out_channels=256,
            # (H, W) at strides 16 and 32: 50x84 -> 25x42, kernel 26x43.
            # FPN outputs have no ReLU, so neither has the regressor.
            student_size=(hint_input_size[1] // 16,
                          hint_input_size[0] // 16),
            teacher_size=(hint_input_size[1] // 32,
                          hint_input_size[0] // 32))),
    distill_losses=dict(
        _delete_=True,
        # the same scale per location as the F variant's ImitationLoss
        # (lambda 0.01) on every location: lambda / (2 N_p) * sum of squared
        # differences over N_p locations and C = 256 channels equals
        # lambda * C / 2 * mean = 1.28 * mean over all elements
        hint=dict(type='mmkd.FeatureMSELoss', loss_weight=0.01 * 256 / 2,
                  student='guided', connector='hint_regressor',
                  teacher='hint')),
    # no hint for the first 400 iterations, as the FGFI configs; gradient
    # clipping at 10 is inherited
    loss_schedules=dict(_delete_=True, hint=dict(warmup=400)))
