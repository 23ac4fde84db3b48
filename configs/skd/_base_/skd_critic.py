# What training the SKD holistic term's critic needs, in one place for every
# config with that term: helper values, not a model. A config lists this
# file among its bases and takes both as base variables.
# The student's stock SGD (lr 0.01, momentum 0.9, wd 5e-4) and the critic's,
# one critic step per student step at the official lr 4e-4 (each config
# schedules both).
skd_critic_optim_wrapper = dict(
    _delete_=True,
    constructor='mmkd.DistillerOptimWrapperConstructor',
    student=dict(type='OptimWrapper', optimizer=dict(
        type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4)),
    discriminator=dict(type='OptimWrapper', optimizer=dict(
        type='SGD', lr=4e-4, momentum=0.9, weight_decay=5e-4)))
# The model runs its own two optimizer steps: wrap student and critic
# separately for distributed training.
skd_critic_model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel',
                                    broadcast_buffers=False,
                                    find_unused_parameters=False)
