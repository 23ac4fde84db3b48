"""Multi-level taps: every loss takes one map or one map per level, and
combines the levels as its docstring says (docs/multi_level_taps.md)."""
import math

import pytest
import torch

from mmkd.models.losses import (ChannelWiseLoss, FeatureMSELoss, KDLoss,
                                PairWiseLoss, PixelWiseLoss)
from mmkd.models.losses.levelwise import LevelwiseLoss
from mmkd.utils.config_checks import ConfigValueError

# one channel of two locations: teacher logits (0, ln 3) give the
# distribution (1/4, 3/4), student logits (0, 0) give (1/2, 1/2)
KL_QUARTER = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)


def two_levels():
    """Level 0: (1, 1, 1, 2) maps with KL_QUARTER between their channel
    distributions; level 1: (1, 1, 1, 1) maps (a one-point distribution,
    CWD 0)."""
    s0 = torch.zeros(1, 1, 1, 2)
    t0 = torch.tensor([0., math.log(3)]).reshape(1, 1, 1, 2)
    s1, t1 = torch.zeros(1, 1, 1, 1), torch.full((1, 1, 1, 1), 5.)
    return [s0, s1], [t0, t1]


def test_channel_wise_sums_the_levels_by_default():
    students, teachers = two_levels()
    loss = ChannelWiseLoss(loss_weight=2.0)
    assert loss.level_reduction == 'sum'
    assert loss(students, teachers).item() == pytest.approx(2 * KL_QUARTER)
    assert loss(tuple(students), tuple(teachers)).item() == pytest.approx(
        2 * KL_QUARTER)
    # a single map is that map's loss, exactly
    assert loss(students[0], teachers[0]).item() == pytest.approx(
        2 * KL_QUARTER)
    mean = ChannelWiseLoss(loss_weight=2.0, level_reduction='mean')
    assert mean(students, teachers).item() == pytest.approx(KL_QUARTER)


def test_pixel_wise_on_two_levels():
    """Classes along the channels: two classes at one location; level 0 has
    KL_QUARTER, level 1 (equal logits) 0."""
    s0 = torch.zeros(1, 2, 1, 1)
    t0 = torch.tensor([0., math.log(3)]).reshape(1, 2, 1, 1)
    s1 = torch.tensor([1., 2.]).reshape(1, 2, 1, 1)
    loss = PixelWiseLoss()
    assert loss([s0, s1], [t0, s1.clone()]).item() == pytest.approx(
        KL_QUARTER)
    assert PixelWiseLoss(level_reduction='mean')(
        [s0, s1], [t0, s1.clone()]).item() == pytest.approx(KL_QUARTER / 2)


def test_pair_wise_and_feature_mse_per_level():
    s = [torch.rand(2, 3, 4, 4), torch.rand(2, 3, 2, 2)]
    t = [torch.rand(2, 5, 4, 4), torch.rand(2, 5, 2, 2)]
    pair = PairWiseLoss(node_size=1)
    assert pair(s, t).item() == pytest.approx(
        pair(s[0], t[0]).item() + pair(s[1], t[1]).item())
    t_same = [torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 2, 2)]
    # FeatureMSELoss averages the levels: (mean s0² + mean s1²) / 2
    expected = (s[0].pow(2).mean() + s[1].pow(2).mean()) / 2
    assert FeatureMSELoss()(s, t_same).item() == pytest.approx(
        expected.item())
    assert FeatureMSELoss(level_reduction='sum')(s, t_same).item() == \
        pytest.approx(2 * expected.item())


def test_kd_pools_the_samples_of_all_levels():
    """KDLoss averages over every sample (location) of every level
    together, as mmdet's dense heads average their classification loss over
    the anchors of all levels: level 0 has one sample with KL_QUARTER,
    level 1 three samples with KL 0, so the loss is KL_QUARTER / 4."""
    s0 = torch.zeros(1, 2, 1, 1)
    t0 = torch.tensor([0., math.log(3)]).reshape(1, 2, 1, 1)
    s1 = torch.rand(1, 2, 1, 3)
    loss = KDLoss(class_dim=1)
    assert loss([s0, s1], [t0, s1.clone()]).item() == pytest.approx(
        KL_QUARTER / 4)


def test_extra_inputs_given_per_level_go_to_their_level():
    seen = []

    class Probe(LevelwiseLoss):

        def forward_level(self, student, teacher, level, weight, scale):
            seen.append((level, weight.item(), scale))
            return (student - teacher).sum() * weight * scale

    s = [torch.ones(1, 1, 1, 1), torch.ones(1, 1, 1, 1)]
    t = [torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1)]
    value = Probe()(s, t, weight=(torch.tensor(2.), torch.tensor(3.)),
                    scale=10)
    assert value.item() == 50
    assert seen == [(0, 2.0, 10), (1, 3.0, 10)]


def test_level_reduction_is_a_choice():
    with pytest.raises(ConfigValueError) as e:
        ChannelWiseLoss(level_reduction='max')
    assert e.value.key == 'level_reduction'
    assert e.value.expected == "'sum' or 'mean'"
    assert e.value.found == "'max' (str)"
