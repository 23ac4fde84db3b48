"""The errors of the losses on their inputs: tensors of one batch, which no
config value sets (a config value that does not fit them raises a
``ConfigValueError``, tested with each loss by its key). The message is the
point: it names the input, the shapes or counts found and what to do, and
the checks the losses share (levels, ``(N, C, H, W)`` maps, batches, channels)
word it the same for every loss."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmdet.structures import DetDataSample

from mmkd.models.losses import (ChannelWiseLoss, FeatureMSELoss, FGDLoss,
                                HolisticLoss, ImitationLoss, KDLoss, MGDLoss,
                                PairWiseLoss, PixelWiseLoss, PKDLoss)


def zeros(*shape: int) -> torch.Tensor:
    return torch.zeros(*shape)


class SumCritic(nn.Module):
    """One score per sample: the sum of its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).sum(1)


X, MAP, ONE = zeros(4, 3), zeros(1, 3, 2, 2), zeros(1, 1, 2, 2)
MASK = torch.ones(1, 2, 2)
# HolisticLoss: 1x1 maps of 2 classes and a 2x2 image
LOGITS, IMAGE = zeros(1, 2, 1, 1), torch.ones(1, 3, 2, 2)
HOLISTIC = HolisticLoss()
SAMPLES = [DetDataSample(), DetDataSample()]

CASES = {
    # the levels of the two taps (and of a loss's per-level inputs)
    'kd_level_counts': (
        lambda: KDLoss()([X, X], [X]), ValueError,
        '^KDLoss: the student tap has 2 levels but the teacher tap has 1'),
    'pkd_level_counts': (
        lambda: PKDLoss()([MAP] * 2, [MAP]), ValueError,
        '^PKDLoss: the student tap has 2 levels but the teacher tap has 1'),
    'channel_wise_level_counts': (
        lambda: ChannelWiseLoss()([MAP] * 2, [MAP]), ValueError,
        '^ChannelWiseLoss: the student tap has 2 levels but the teacher tap '
        'has 1'),
    'feature_mse_level_counts': (
        lambda: FeatureMSELoss()([ONE, ONE], [ONE]), ValueError,
        '^FeatureMSELoss: the student tap has 2 levels but the teacher tap '
        'has 1'),
    'imitation_level_counts': (
        lambda: ImitationLoss()([MAP, MAP], [MAP], [MASK, MASK]), ValueError,
        '^ImitationLoss: the student tap has 2 levels but the teacher tap '
        'has 1'),
    'imitation_mask_levels': (
        lambda: ImitationLoss()([MAP, MAP], [MAP, MAP], [MASK]), ValueError,
        '^ImitationLoss: 1 mask levels for 2 feature levels'),
    'feature_mse_no_levels': (
        lambda: FeatureMSELoss()([], []), ValueError,
        '^FeatureMSELoss: got no levels'),
    'imitation_no_levels': (
        lambda: ImitationLoss()([], [], []), ValueError,
        '^ImitationLoss: got no levels'),
    # inputs that are no levels (a Tensor or a list/tuple of Tensors)
    'kd_logits_in_a_dict': (
        lambda: KDLoss()(dict(x=zeros(1, 2)), zeros(1, 2)), TypeError,
        r'^KDLoss student_logits: expected a Tensor or a list/tuple of '
        r'Tensors \(one per level\), found <class .dict.>'),
    'feature_mse_teacher_none': (
        lambda: FeatureMSELoss()(ONE, None), TypeError,
        r'^FeatureMSELoss teacher: expected a Tensor or a list/tuple of '
        r'Tensors \(one per level\)'),
    'imitation_masks_of_numpy': (
        lambda: ImitationLoss()(MAP, MAP, [np.ones((1, 2, 2))]), TypeError,
        r'^ImitationLoss masks: expected a Tensor or a list/tuple of '
        r'Tensors \(one per level\)'),
    'imitation_teacher_str': (
        lambda: ImitationLoss()(MAP, 'teacher', MASK), TypeError,
        '^ImitationLoss teacher_feats: expected a Tensor'),
    'pair_wise_student_list_of_ints': (
        lambda: PairWiseLoss(node_size=1)([1], zeros(2, 3, 4, 4)), TypeError,
        '^PairWiseLoss student: expected a Tensor or a list/tuple of '
        'Tensors'),
    # (N, C, H, W) maps
    'pixel_wise_2d': (
        lambda: PixelWiseLoss()(zeros(2, 3), zeros(2, 3)), ValueError,
        r'^PixelWiseLoss student_logits: expected a 4-D tensor, found shape '
        r'\(2, 3\)'),
    'channel_wise_2d': (
        lambda: ChannelWiseLoss()(zeros(2, 3), zeros(2, 3)), ValueError,
        r'^ChannelWiseLoss student: expected a 4-D tensor, found shape '
        r'\(2, 3\)'),
    'imitation_2d': (
        lambda: ImitationLoss()(zeros(3, 4), zeros(3, 4), torch.ones(3, 4)),
        ValueError,
        r'^ImitationLoss student feature \(level 0\): expected a 4-D tensor'),
    'pair_wise_student_3d': (
        lambda: PairWiseLoss(node_size=1)(zeros(2, 3, 4), zeros(2, 3, 4, 4)),
        ValueError,
        r'^PairWiseLoss student_feat: expected a 4-D tensor, found shape '
        r'\(2, 3, 4\)'),
    'pair_wise_teacher_2d': (
        lambda: PairWiseLoss(node_size=1)(zeros(2, 3, 4, 4), zeros(2, 3)),
        ValueError,
        r'^PairWiseLoss teacher_feat: expected a 4-D tensor, found shape '
        r'\(2, 3\)'),
    'holistic_2d': (
        lambda: HOLISTIC.generator_loss(SumCritic(), zeros(1, 2), IMAGE),
        ValueError, r'4-D tensor, found shape \(1, 2\)'),
    # the same batch on both sides
    'pixel_wise_batches': (
        lambda: PixelWiseLoss()(zeros(2, 3, 2, 2), MAP), ValueError,
        '^PixelWiseLoss: student batch has 2 samples, teacher batch 1'),
    'channel_wise_batches': (
        lambda: ChannelWiseLoss()(zeros(2, 3, 2, 2), MAP), ValueError,
        '^ChannelWiseLoss: student batch has 2 samples, teacher batch 1'),
    'pair_wise_batches': (
        lambda: PairWiseLoss(node_size=1)(zeros(2, 3, 4, 4),
                                          zeros(3, 3, 4, 4)), ValueError,
        '^PairWiseLoss: student batch has 2 samples, teacher batch 3'),
    'holistic_image_batch': (
        lambda: HOLISTIC.generator_loss(SumCritic(), LOGITS,
                                        torch.ones(2, 3, 2, 2)), ValueError,
        '^HolisticLoss: image batch has 2 samples, logits batch 1'),
    'fgd_data_samples': (
        lambda: FGDLoss(4, 4)(zeros(1, 4, 2, 2), zeros(1, 4, 2, 2),
                              data_samples=SAMPLES), ValueError,
        '^FGDLoss: 2 data samples for a batch of 1'),
    # classes and channels
    'pixel_wise_classes': (
        lambda: PixelWiseLoss()(zeros(1, 19, 2, 2), zeros(1, 21, 2, 2)),
        ValueError, '^PixelWiseLoss: student has 19 classes, teacher 21'),
    'holistic_classes': (
        lambda: HOLISTIC.discriminator_loss(SumCritic(), LOGITS,
                                            zeros(1, 3, 1, 1), IMAGE),
        ValueError,
        '^HolisticLoss: student has 2 classes, teacher 3.*same classes'),
    'channel_wise_channels': (
        lambda: ChannelWiseLoss()(zeros(1, 128, 2, 2), zeros(1, 512, 2, 2)),
        ValueError,
        r"^ChannelWiseLoss: the student map has 128 channels, the teacher "
        r"map 512.*a connector must map the student's C_s=128 channels to "
        r"the teacher's C_t=512 first"),
    'pkd_channels': (
        lambda: PKDLoss()(MAP, zeros(1, 4, 2, 2)), ValueError,
        '^PKDLoss: the student map has 3 channels, the teacher map 4: PKD '
        'correlates channel c'),
    'channel_wise_channels_of_level_1': (
        lambda: ChannelWiseLoss()([ONE, zeros(1, 2, 2, 2)],
                                  [ONE, zeros(1, 3, 2, 2)]), ValueError,
        '^level 1: ChannelWiseLoss: the student map has 2 channels, the '
        'teacher map 3'),
    'imitation_channels': (
        lambda: ImitationLoss()(MAP, zeros(1, 5, 2, 2), MASK), ValueError,
        "connector must map the student's C_s = 3 channels to the teacher's "
        'C_t = 5'),
    # sizes and shapes
    'mgd_map_sizes': (
        lambda: MGDLoss(4, 4)(zeros(1, 4, 2, 2), zeros(1, 4, 4, 4)),
        ValueError,
        r'^MGDLoss: student map \(1, 4, 2, 2\) and teacher map '
        r'\(1, 4, 4, 4\) differ in size'),
    'fgd_map_sizes': (
        lambda: FGDLoss(4, 4)(zeros(2, 4, 2, 2), zeros(2, 4, 4, 4),
                              data_samples=SAMPLES), ValueError,
        r'^FGDLoss: student map \(2, 4, 2, 2\) and teacher map '
        r'\(2, 4, 4, 4\) differ in size'),
    'feature_mse_shapes': (
        lambda: FeatureMSELoss()(ONE, zeros(1, 2, 2, 2)), ValueError,
        r'^FeatureMSELoss: student shape \(1, 1, 2, 2\) differs from teacher '
        r'shape'),
    'feature_mse_shapes_of_level_1': (
        lambda: FeatureMSELoss()([ONE, ONE], [ONE, zeros(1, 2, 2, 2)]),
        ValueError,
        r'^level 1: FeatureMSELoss: student shape \(1, 1, 2, 2\) differs '
        r'from teacher shape'),
    'kd_logit_shapes': (
        lambda: KDLoss()(X, zeros(4, 5)), ValueError,
        r'^KDLoss level 0: student logits \(4, 3\) and teacher logits '
        r'\(4, 5\)'),
    'imitation_mask_shape': (
        lambda: ImitationLoss()(zeros(2, 3, 4, 4), zeros(2, 3, 4, 4),
                                torch.ones(2, 1, 4, 4)), ValueError,
        r'expected a mask of shape \(2, 4, 4\).*found \(2, 1, 4, 4\)'),
    # HolisticLoss's image condition, critic and interpolation weights
    'holistic_no_image': (
        lambda: HOLISTIC.generator_loss(SumCritic(), LOGITS), ValueError,
        "condition='image'.*found None"),
    'holistic_critic_scores': (
        lambda: HOLISTIC.generator_loss(nn.Identity(), LOGITS, IMAGE),
        ValueError, r'\(N,\) = \(1,\) scores, found'),
    'holistic_alpha': (
        lambda: HOLISTIC.discriminator_loss(
            SumCritic(), LOGITS, LOGITS, IMAGE, alpha=torch.rand(2)),
        ValueError, r'one weight per sample \(1\)'),
}


@pytest.mark.parametrize('call, error, message', CASES.values(),
                         ids=CASES.keys())
def test_input_errors_are_explained(call, error, message):
    with pytest.raises(error, match=message):
        call()
