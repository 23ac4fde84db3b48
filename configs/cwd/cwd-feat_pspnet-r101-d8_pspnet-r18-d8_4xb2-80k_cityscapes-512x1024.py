# CWD on the features: the PSP module output (decode_head.bottleneck), after
# a 1x1 convolution maps the student's 128 channels to the teacher's 512.
#
# The connector: the paper aligns channel counts with a 1x1 convolution.
# Linear (act=False): a ReLU would make channels that are all <= 0 constant
# maps (uniform distributions) that send the student no gradient, and the
# softmax over locations needs no non-negative input. PyTorch's default
# init (init_std=None), not mmkd's FGFI default N(0, 1e-4): with 1e-4
# weights the adapted maps start near 0 (uniform distributions) and the
# student's gradient through the connector is scaled by 1e-4, so nothing
# would be distilled for a long while. (The official feature variant,
# irfanICMLL/TorchDistiller kd_model.py, uses 1x1 conv + BN + ReLU.)
#
# tau 1 and weight 5 are the logits' values, not tuned for features: no
# public feature-CWD result exists for this setting. The official code's
# feature runs sweep weights 35-40 and tau 1-10, without published results.
_base_ = './_base_/cwd_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py'  # noqa: E501

model = dict(
    connectors=dict(
        feat_adapt=dict(type='mmkd.ConvConnector', in_channels=128,
                        out_channels=512, kernel_size=1, act=False,
                        init_std=None)),
    distill_losses=dict(
        cwd=dict(type='mmkd.ChannelWiseLoss', tau=1.0, loss_weight=5.0,
                 student='feat', connector='feat_adapt', teacher='feat')))
