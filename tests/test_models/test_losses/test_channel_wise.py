"""ChannelWiseLoss: per channel, KL(softmax(T/tau) || softmax(S/tau)) over the
H·W locations, times tau², summed and divided by N·C."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope

from mmkd.models.losses.channel_wise import ChannelWiseLoss
from mmkd.registry import MODELS
from mmkd.utils.config_checks import ConfigValueError, describe

# The 1×2×2×2 case (N=1, C=2, H=W=2), student all zeros, so each student
# channel is uniform over the 4 locations: q^S = (1/4, 1/4, 1/4, 1/4).
# Teacher channel 0, logits (ln 3, 0, 0, 0): exp -> (3, 1, 1, 1), sum 6,
#   p0 = (1/2, 1/6, 1/6, 1/6);
#   KL0 = 1/2·ln((1/2)/(1/4)) + 3·1/6·ln((1/6)/(1/4))
#       = 1/2·ln 2 + 1/2·ln(2/3) = 1/2·ln(4/3).
# Teacher channel 1, logits (ln 2, ln 2, 0, 0): exp -> (2, 2, 1, 1), sum 6,
#   p1 = (1/3, 1/3, 1/6, 1/6);
#   KL1 = 2·1/3·ln((1/3)/(1/4)) + 2·1/6·ln((1/6)/(1/4))
#       = 2/3·ln(4/3) + 1/3·ln(2/3).
# tau = 1, so tau² = 1; divided by N·C = 2:
#   L = (KL0 + KL1) / 2 = 7/12·ln(4/3) + 1/6·ln(2/3) = 0.1002370...
KL0 = 0.5 * math.log(4 / 3)
KL1 = 2 / 3 * math.log(4 / 3) + 1 / 3 * math.log(2 / 3)
HAND = (KL0 + KL1) / 2


def hand_case():
    student = torch.zeros(1, 2, 2, 2)
    teacher = torch.tensor([[[math.log(3.0), 0.0], [0.0, 0.0]],
                            [[math.log(2.0), math.log(2.0)], [0.0, 0.0]]
                            ]).view(1, 2, 2, 2)
    return student, teacher


def test_hand_computed_1x2x2x2():
    student, teacher = hand_case()
    assert HAND == pytest.approx(0.1002370, abs=1e-7)
    assert ChannelWiseLoss()(student, teacher).item() == pytest.approx(
        HAND, rel=1e-6)


def test_kl_direction_is_teacher_to_student():
    # Swapped, it is KL(uniform || p) per channel:
    #   channel 0: 1/4·ln((1/4)/(1/2)) + 3/4·ln((1/4)/(1/6))
    #            = 1/4·ln(1/2) + 3/4·ln(3/2)
    #   channel 1: 2/4·ln((1/4)/(1/3)) + 2/4·ln((1/4)/(1/6))
    #            = 1/2·ln(3/4) + 1/2·ln(3/2) = 1/2·ln(9/8)
    student, teacher = hand_case()
    swapped = (0.25 * math.log(0.5) + 0.75 * math.log(1.5) +
               0.5 * math.log(9 / 8)) / 2
    value = ChannelWiseLoss()(teacher, student).item()
    assert value == pytest.approx(swapped, rel=1e-6)
    assert value != pytest.approx(HAND, rel=1e-3)


def test_loss_weight_multiplies():
    student, teacher = hand_case()
    assert ChannelWiseLoss(loss_weight=5.0)(
        student, teacher).item() == pytest.approx(5 * HAND, rel=1e-6)


def test_tau_squared_times_kl_at_temperature():
    # At tau = 2 the teacher logits are halved: channel 0 exp -> (√3, 1, 1,
    # 1), channel 1 exp -> (√2, √2, 1, 1); the zero student stays uniform.
    # L = 2² · (KL0' + KL1') / 2.
    student, teacher = hand_case()

    def kl_to_uniform(weights):
        total = sum(weights)
        return sum(w / total * math.log(w / total / 0.25) for w in weights)

    r3, r2 = math.sqrt(3), math.sqrt(2)
    expected = 4 * (kl_to_uniform([r3, 1, 1, 1]) +
                    kl_to_uniform([r2, r2, 1, 1])) / 2
    # (fp32 math: about 1e-6 relative rounding)
    assert ChannelWiseLoss(tau=2.0)(student, teacher).item() == \
        pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('tau', [0.5, 2.0, 4.0])
def test_scaled_inputs_at_tau_give_tau_squared_times_tau_one(tau):
    # softmax(tau·x / tau) = softmax(x): the KL of inputs scaled by tau at
    # temperature tau is exactly the KL of the unscaled inputs at tau = 1,
    # so the loss is tau² times the loss at tau = 1.
    torch.manual_seed(0)
    student = torch.randn(2, 3, 4, 5)
    teacher = torch.randn(2, 3, 4, 5)
    at_one = ChannelWiseLoss(tau=1.0)(student, teacher)
    scaled = ChannelWiseLoss(tau=tau)(tau * student, tau * teacher)
    assert scaled.item() == pytest.approx(tau**2 * at_one.item(), rel=1e-5)


def test_matches_the_reference_formulation():
    # MMRazor's ChannelWiseDivergence / the official CriterionCWD:
    # sum KL over the flattened (N·C, H·W) maps · tau² / (N·C).
    torch.manual_seed(1)
    student = torch.randn(3, 4, 5, 6)
    teacher = torch.randn(3, 4, 5, 6)
    tau = 3.0
    s = student.reshape(-1, 30) / tau
    t = teacher.reshape(-1, 30) / tau
    reference = F.kl_div(F.log_softmax(s, dim=1), F.softmax(t, dim=1),
                         reduction='sum') * tau**2 / (3 * 4)
    assert ChannelWiseLoss(tau=tau)(student, teacher).item() == \
        pytest.approx(reference.item(), rel=1e-5)


def test_mean_over_batch_and_channels():
    # The hand case's channels, one per sample, beside all-equal channels:
    # the KL sum is unchanged, N·C grows from 2 to 2·3 = 6.
    student, teacher = hand_case()
    big_s = torch.zeros(2, 3, 2, 2)
    big_t = torch.zeros(2, 3, 2, 2)
    big_t[0, 1] = teacher[0, 0]
    big_t[1, 2] = teacher[0, 1]
    assert ChannelWiseLoss()(big_s, big_t).item() == pytest.approx(
        (KL0 + KL1) / 6, rel=1e-6)


def test_a_constant_per_channel_changes_nothing():
    # Each channel is a distribution over locations: softmax ignores a
    # shift of the whole channel map.
    torch.manual_seed(2)
    student = torch.randn(2, 3, 4, 4)
    teacher = torch.randn(2, 3, 4, 4)
    shift = torch.randn(2, 3, 1, 1) * 10
    loss = ChannelWiseLoss()
    assert loss(student + shift, teacher - shift).item() == pytest.approx(
        loss(student, teacher).item(), rel=1e-5, abs=1e-6)


def test_identical_inputs_give_exactly_zero():
    torch.manual_seed(3)
    maps = torch.randn(2, 19, 8, 8)
    assert ChannelWiseLoss()(maps, maps.clone()).item() == 0.0
    equal = torch.full((2, 19, 8, 8), 3.0)
    assert ChannelWiseLoss(tau=4.0)(equal, equal).item() == 0.0


def test_one_by_one_maps_give_zero():
    # One location: every channel's distribution is a single point.
    student = torch.randn(2, 5, 1, 1, requires_grad=True)
    teacher = torch.randn(2, 5, 1, 1)
    value = ChannelWiseLoss()(student, teacher)
    assert value.item() == 0.0
    (grad, ) = torch.autograd.grad(value, student)
    assert torch.isfinite(grad).all()


def test_huge_activations_stay_finite():
    # One channel, 1×3 map: the student peaks at location 0, the teacher at
    # location 1. p^T = (0, 1, 0), so KL = log p^T_1 - log q^S_1
    # = 0 - (0 - 1e4) = 1e4 (N·C = 1).
    student = torch.tensor([1e4, 0.0, -1e4]).view(1, 1, 1, 3)
    student.requires_grad_(True)
    teacher = torch.tensor([0.0, 1e4, -1e4]).view(1, 1, 1, 3)
    value = ChannelWiseLoss()(student, teacher)
    assert value.item() == pytest.approx(1e4, rel=1e-6)
    (grad, ) = torch.autograd.grad(value, student)
    assert torch.isfinite(grad).all()
    # and at scale, random maps of 1e4-sized activations
    torch.manual_seed(4)
    big = ChannelWiseLoss(tau=0.5)(torch.randn(2, 4, 6, 6) * 1e4,
                                   torch.randn(2, 4, 6, 6) * 1e4)
    assert torch.isfinite(big)


def test_teacher_resized_bilinearly_to_student():
    torch.manual_seed(5)
    student = torch.randn(2, 3, 4, 5)
    teacher = torch.randn(2, 3, 8, 10)
    resized = F.interpolate(
        teacher, size=(4, 5), mode='bilinear', align_corners=False)
    loss = ChannelWiseLoss()
    assert loss(student, teacher).item() == pytest.approx(
        loss(student, resized).item(), rel=1e-6)


def test_gradient_reaches_student_only():
    student = torch.randn(1, 3, 2, 2, requires_grad=True)
    teacher = torch.randn(1, 3, 2, 2, requires_grad=True)
    ChannelWiseLoss()(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_autocast_bfloat16_gives_fp32_finite_loss():
    torch.manual_seed(6)
    student = torch.randn(2, 5, 4, 4)
    teacher = torch.randn(2, 5, 4, 4)
    reference = ChannelWiseLoss()(student, teacher)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = ChannelWiseLoss()(student.bfloat16(), teacher.bfloat16())
    assert value.dtype == torch.float32
    assert torch.isfinite(value)
    # Only the bf16 rounding of the inputs differs.
    assert value.item() == pytest.approx(reference.item(), rel=5e-2)


def test_bad_arguments_are_explained():
    for tau in (0, -1.0, float('inf'), float('nan'), None, '2'):
        with pytest.raises(ConfigValueError) as e:
            ChannelWiseLoss(tau=tau)
        assert e.value.key == 'tau'
        assert e.value.expected == 'a finite number > 0'
        assert e.value.found == describe(tau)


def test_registered():
    # as a config names it, in an mmseg run (default scope 'mmseg')
    with DefaultScope.overwrite_default_scope('mmseg'):
        loss = MODELS.build(
            dict(type='mmkd.ChannelWiseLoss', tau=1.0, loss_weight=5))
    assert isinstance(loss, ChannelWiseLoss) and loss.loss_weight == 5


def test_batch_normalize_standardises_each_channel_first():
    """normalize='batch' (mmyolo's RTMDet distillation): one channel of
    one sample, values [0, 2] for the student and [1, 5] for the teacher,
    both become [-1, 1] (mean 1 / 3, biased std 1 / 2; eps 1e-5 aside): the
    same distribution, so the loss is 0, where the raw maps give the KL
    of softmax([1, 5]) against softmax([0, 2])."""
    student = torch.tensor([[[[0.0, 2.0]]]])
    teacher = torch.tensor([[[[1.0, 5.0]]]])
    plain = ChannelWiseLoss()(student, teacher)
    p_t, p_s = F.softmax(torch.tensor([1.0, 5.0]), 0), F.softmax(
        torch.tensor([0.0, 2.0]), 0)
    assert math.isclose(plain.item(),
                        (p_t * (p_t.log() - p_s.log())).sum().item(),
                        rel_tol=1e-6)
    assert ChannelWiseLoss(normalize='batch')(student, teacher).item() \
        == pytest.approx(0.0, abs=1e-6)
    # two samples: the statistics are the batch's, not each sample's
    student = torch.tensor([[[[0.0, 2.0]]], [[[4.0, 6.0]]]])  # mean 3, var 5
    z = (student - 3.0) / math.sqrt(5.0 + 1e-5)
    teacher = torch.tensor([[[[1.0, 1.5]]], [[[0.5, 3.0]]]])
    t = (teacher - teacher.mean()) / (teacher.var(unbiased=False) +
                                      1e-5).sqrt()
    expected = ChannelWiseLoss()(z, t)
    torch.testing.assert_close(
        ChannelWiseLoss(normalize='batch')(student, teacher), expected)


def test_normalize_takes_batch_or_none():
    with pytest.raises(ConfigValueError) as error:
        ChannelWiseLoss(normalize='layer')
    assert (error.value.key, error.value.found) == ('normalize',
                                                    describe('layer'))
