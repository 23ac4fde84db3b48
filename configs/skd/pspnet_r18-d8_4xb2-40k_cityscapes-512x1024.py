# The baseline of the SKD comparisons: mmseg's PSPNet-R18 Cityscapes config
# on the 40k-iteration schedule of the official SKD code (the stock config
# trains 80k). The skd-*_pspnet-r101-d8_pspnet-r18-d8_* configs inherit it.
_base_ = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'

train_cfg = dict(max_iters=40000, val_interval=4000)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=40000,
         by_epoch=False)
]
default_hooks = dict(checkpoint=dict(interval=4000))
