"""PixelWiseLoss: per-pixel KL(softmax(T/tau) || softmax(S/tau)), averaged
over batch and pixels ('mean') or summed over batch and pixels / (H·W)
('official')."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses.pixel_wise import PixelWiseLoss
from mmkd.registry import MODELS
from mmkd.utils.config_checks import ConfigValueError, describe

# One pixel, two classes: teacher logits (ln 3, 0) -> q^T = (0.75, 0.25),
# student logits (0, 0) -> q^S = (0.5, 0.5).
# KL = 0.75 ln(0.75/0.5) + 0.25 ln(0.25/0.5) = 0.130812...
KL_75_25 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)


def one_pixel(teacher_first_logit: float = math.log(3.0)):
    student = torch.zeros(1, 2, 1, 1)
    teacher = torch.tensor([teacher_first_logit, 0.0]).view(1, 2, 1, 1)
    return student, teacher


def test_hand_computed_one_pixel_two_classes():
    student, teacher = one_pixel()
    assert PixelWiseLoss()(student, teacher).item() == pytest.approx(
        KL_75_25, rel=1e-6)
    assert KL_75_25 == pytest.approx(0.1308120, abs=1e-7)


def test_loss_weight_multiplies():
    student, teacher = one_pixel()
    assert PixelWiseLoss(loss_weight=10.0)(student,
                                           teacher).item() == pytest.approx(
                                               10 * KL_75_25, rel=1e-6)


def test_tau_is_plain_kl_at_temperature():
    student, teacher = one_pixel()
    # At tau = 2 the teacher logits are (ln 3 / 2, 0): q^T_0 = √3 / (√3 + 1);
    # the uniform student stays uniform. No tau² factor.
    p = math.sqrt(3) / (math.sqrt(3) + 1)
    expected = p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5)
    assert PixelWiseLoss(tau=2.0)(student, teacher).item() == pytest.approx(
        expected, rel=1e-6)


def test_mean_over_pixels_and_batch():
    # Batch of 2, 1×2 map: one pixel with KL_75_25, three with 0.
    student = torch.zeros(2, 2, 1, 2)
    teacher = torch.zeros(2, 2, 1, 2)
    teacher[0, 0, 0, 1] = math.log(3.0)
    assert PixelWiseLoss()(student, teacher).item() == pytest.approx(
        KL_75_25 / 4, rel=1e-6)
    # official: sum / (H·W) = KL_75_25 / 2.
    assert PixelWiseLoss(reduction='official')(
        student, teacher).item() == pytest.approx(
            KL_75_25 / 2, rel=1e-6)


@pytest.mark.parametrize('batch', [1, 3])
def test_official_is_batch_times_mean(batch):
    torch.manual_seed(batch)
    student = torch.randn(batch, 5, 4, 6)
    teacher = torch.randn(batch, 5, 4, 6)
    mean = PixelWiseLoss()(student, teacher)
    official = PixelWiseLoss(reduction='official')(student, teacher)
    assert official.item() == pytest.approx(batch * mean.item(), rel=1e-5)


def test_official_matches_official_cross_entropy_gradient():
    # The official code: sum(-softmax(T) · log_softmax(S)) / W / H. It differs
    # from the KL by the teacher's entropy, so the student gradient is equal.
    torch.manual_seed(0)
    teacher = torch.randn(2, 4, 3, 5)
    student = torch.randn(2, 4, 3, 5, requires_grad=True)
    ce = (-F.softmax(teacher, 1) * F.log_softmax(student, 1)).sum() / 15
    (grad_ce, ) = torch.autograd.grad(ce, student)
    kl = PixelWiseLoss(reduction='official')(student, teacher)
    (grad_kl, ) = torch.autograd.grad(kl, student)
    torch.testing.assert_close(grad_kl, grad_ce)
    entropy = -(F.softmax(teacher, 1) * F.log_softmax(teacher, 1)).sum() / 15
    assert kl.item() == pytest.approx((ce - entropy).item(), rel=1e-5)


def test_identical_inputs_give_exactly_zero():
    logits = torch.randn(2, 19, 8, 8)
    assert PixelWiseLoss()(logits, logits.clone()).item() == 0.0
    equal = torch.full((2, 19, 8, 8), 3.0)
    assert PixelWiseLoss()(equal, equal).item() == 0.0


def test_teacher_resized_bilinearly_to_student():
    torch.manual_seed(0)
    student = torch.randn(2, 3, 4, 5)
    teacher = torch.randn(2, 3, 8, 10)
    resized = F.interpolate(
        teacher, size=(4, 5), mode='bilinear', align_corners=False)
    loss = PixelWiseLoss()
    assert loss(student, teacher).item() == pytest.approx(
        loss(student, resized).item(), rel=1e-6)


def test_gradient_reaches_student_only():
    student = torch.randn(1, 3, 2, 2, requires_grad=True)
    teacher = torch.randn(1, 3, 2, 2, requires_grad=True)
    PixelWiseLoss()(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_single_pixel_and_huge_logits_stay_finite():
    student = torch.tensor([1e4, -1e4, 0.0]).view(1, 3, 1, 1)
    student.requires_grad_(True)
    teacher = torch.tensor([-1e4, 1e4, 0.0]).view(1, 3, 1, 1)
    value = PixelWiseLoss()(student, teacher)
    # q^T = (0, 1, 0): KL = log q^T_1 - log q^S_1 = 0 - (-2e4) = 2e4.
    assert value.item() == pytest.approx(2e4, rel=1e-6)
    (grad, ) = torch.autograd.grad(value, student)
    assert torch.isfinite(grad).all()


def test_autocast_bfloat16_gives_fp32_finite_loss():
    torch.manual_seed(0)
    student = torch.randn(2, 5, 4, 4)
    teacher = torch.randn(2, 5, 4, 4)
    reference = PixelWiseLoss()(student, teacher)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = PixelWiseLoss()(student.bfloat16(), teacher.bfloat16())
    assert value.dtype == torch.float32
    assert torch.isfinite(value)
    # Only the bf16 rounding of the inputs differs.
    assert value.item() == pytest.approx(reference.item(), rel=5e-2)


def test_bad_arguments_are_explained():
    for tau in (0, -1.0, float('inf'), float('nan'), None, '2'):
        with pytest.raises(ConfigValueError) as e:
            PixelWiseLoss(tau=tau)
        assert e.value.key == 'tau'
        assert e.value.expected == 'a finite number > 0'
        assert e.value.found == describe(tau)
    with pytest.raises(ConfigValueError) as e:
        PixelWiseLoss(reduction='sum')
    assert e.value.key == 'reduction'
    assert e.value.expected == "'mean' or 'official'"
    assert e.value.found == "'sum' (str)"


def test_registered():
    loss = MODELS.build(dict(type='PixelWiseLoss', loss_weight=10.0))
    assert isinstance(loss, PixelWiseLoss) and loss.loss_weight == 10.0
