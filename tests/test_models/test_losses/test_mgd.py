"""MGDLoss: hand-computed values with a known generator, the official
formula (yzd-v/MGD's FeatureLoss, re-implemented here from it) with the
same random mask, one generator per level, gradients, clear errors."""
import pytest
import torch
import torch.nn as nn

from mmkd.models.losses import MGDLoss
from mmkd.utils.config_checks import ConfigValueError


def official_mgd(loss, s, t, level=0):
    """The official formula on ``loss``'s layers: align, a mask dropping
    each location with probability lambda (drawn on the CPU), generation,
    sum of squared errors / N, times alpha."""
    align = loss.align[level]
    if not isinstance(align, nn.Identity):
        s = align(s)
    n, c, h, w = t.shape
    mat = torch.rand((n, 1, h, w))
    mat = torch.where(mat > 1 - loss.mask_ratio, 0, 1)
    new = loss.generation[level](torch.mul(s, mat))
    return nn.MSELoss(reduction='sum')(new, t) / n * loss.loss_weight


def identity_generator(loss):
    """G(x) = relu(x): both convs pass each channel through, no bias."""
    for conv in (loss.generation[0][0], loss.generation[0][2]):
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
        for c in range(conv.out_channels):
            conv.weight.data[c, c, 1, 1] = 1.0


def test_hand_computed_values():
    s = torch.tensor([[1., -2.], [3., 0.5]]).reshape(1, 1, 2, 2)
    t = torch.tensor([[0., 1.], [1., 1.]]).reshape(1, 1, 2, 2)
    keep_all = MGDLoss(1, 1, loss_weight=2.0, mask_ratio=0.0)
    identity_generator(keep_all)
    # relu(s) = [1, 0, 3, 0.5]: errors 1, 1, 4, 0.25 -> 6.25, times 2
    assert keep_all(s, t).item() == pytest.approx(12.5)
    drop_all = MGDLoss(1, 1, loss_weight=2.0, mask_ratio=1.0)
    identity_generator(drop_all)
    # everything masked: G(0) = 0, so the teacher's own energy, 3, times 2
    assert drop_all(s, t).item() == pytest.approx(6.0)


@pytest.mark.parametrize('channels', [(8, 8), (6, 8)], ids=['same', 'align'])
def test_matches_the_official_formula(channels):
    torch.manual_seed(0)
    loss = MGDLoss(*channels, loss_weight=2e-5, mask_ratio=0.65)
    s = torch.randn(2, channels[0], 6, 7)
    t = torch.randn(2, channels[1], 6, 7) * 4
    torch.manual_seed(3)
    ours = loss(s, t)
    torch.manual_seed(3)
    expected = official_mgd(loss, s, t)
    assert ours.item() == pytest.approx(expected.item(), rel=1e-5)
    assert isinstance(loss.align[0], nn.Identity) == (channels[0] ==
                                                      channels[1])


def test_the_mask_drops_the_given_share_of_locations():
    """With a generator that sees its input, the share of locations whose
    student value reaches the loss is 1 - mask_ratio."""
    torch.manual_seed(0)
    loss = MGDLoss(1, 1, loss_weight=1.0, mask_ratio=0.65)
    identity_generator(loss)
    s = torch.ones(4, 1, 50, 50)
    t = torch.zeros(4, 1, 50, 50)
    kept = loss(s, t).item() * 4 / s.numel()  # sum of kept ones / N
    assert kept == pytest.approx(0.35, abs=0.02)


def test_one_generator_per_level_and_gradients():
    torch.manual_seed(0)
    loss = MGDLoss(4, 8, num_levels=2)
    s = [torch.randn(2, 4, 6, 6, requires_grad=True),
         torch.randn(2, 4, 3, 3, requires_grad=True)]
    t = [torch.randn(2, 8, 6, 6, requires_grad=True),
         torch.randn(2, 8, 3, 3, requires_grad=True)]
    torch.manual_seed(1)
    total = loss(s, t)
    torch.manual_seed(1)
    by_level = loss.forward_level(s[0], t[0], 0) + loss.forward_level(
        s[1], t[1], 1)
    assert total.item() == pytest.approx(by_level.item(), rel=1e-6)
    total.backward()
    assert all(x.grad.abs().sum() > 0 for x in s)
    assert all(x.grad is None for x in t)
    for level in range(2):
        assert loss.generation[level][0].weight.grad.abs().sum() > 0
        assert loss.align[level].weight.grad.abs().sum() > 0


def test_errors():
    with pytest.raises(ConfigValueError) as e:
        MGDLoss(4, 4)([torch.zeros(1, 4, 2, 2)] * 2,
                      [torch.zeros(1, 4, 2, 2)] * 2)
    assert (e.value.key, e.value.owner) == ('num_levels', 'MGDLoss')
    assert e.value.expected == '2, the levels of the student tap'
    assert e.value.found == '1'
    with pytest.raises(ConfigValueError) as e:
        MGDLoss(4, 4)(torch.zeros(1, 3, 2, 2), torch.zeros(1, 4, 2, 2))
    assert (e.value.key, e.value.owner) == ('student_channels', 'MGDLoss')
    assert e.value.expected == '3, the channels of the student map'
    assert e.value.found == '4'
    with pytest.raises(ConfigValueError) as e:
        MGDLoss(4, 5, num_levels=2)([torch.zeros(1, 4, 2, 2)] * 2,
                                    [torch.zeros(1, 5, 2, 2),
                                     torch.zeros(1, 6, 2, 2)])
    assert e.value.key == 'teacher_channels'
    assert e.value.expected == '6, the channels of the teacher map'
    assert e.value.found == '5 at level 1'
    with pytest.raises(ConfigValueError) as e:
        MGDLoss(4, 4, mask_ratio=1.5)
    assert e.value.key == 'mask_ratio'
    assert e.value.expected == 'a number in [0, 1]'
    assert e.value.found == '1.5'
