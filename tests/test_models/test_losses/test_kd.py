"""KDLoss: tau^2 * KL(teacher || student) on softmax or sigmoid outputs,
averaged over samples (over all levels together)."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses.kd import KDLoss
from mmkd.registry import MODELS
from mmkd.utils.config_checks import ConfigValueError, describe

# Teacher probabilities (0.75, 0.25) against a uniform student.
KL_75_25 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)


def test_hand_computed_two_classes():
    student = torch.zeros(1, 2)
    teacher = torch.tensor([[math.log(3.0), 0.0]])
    assert KDLoss()(student, teacher).item() == pytest.approx(KL_75_25)
    assert KDLoss(loss_weight=3.0)(student,
                                   teacher).item() == pytest.approx(
                                       3 * KL_75_25)


def test_average_over_samples():
    student = torch.zeros(2, 2)
    teacher = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    assert KDLoss()(student, teacher).item() == pytest.approx(KL_75_25 / 2)


def test_tau_softens_and_scales_by_tau_squared():
    student = torch.zeros(1, 2)
    # At tau = 2 the teacher's probabilities are again (0.75, 0.25).
    teacher = torch.tensor([[2 * math.log(3.0), 0.0]])
    assert KDLoss(tau=2.0)(student, teacher).item() == pytest.approx(
        4 * KL_75_25)


def test_identical_inputs_give_zero():
    logits = torch.randn(2, 6, 5, 5)
    assert KDLoss(class_dim=1)(logits, logits).item() == pytest.approx(
        0.0, abs=1e-6)
    assert KDLoss(class_dim=1, use_sigmoid=True)(
        logits, logits).item() == pytest.approx(0.0, abs=1e-6)


def test_huge_logits_stay_finite():
    student = torch.tensor([[1e4, -1e4], [-3e4, 3e4]], requires_grad=True)
    teacher = torch.tensor([[-1e4, 1e4], [-3e4, 3e4]])
    for loss in (KDLoss(), KDLoss(tau=4.0), KDLoss(use_sigmoid=True)):
        value = loss(student, teacher)
        assert torch.isfinite(value)
        (grad, ) = torch.autograd.grad(value, student)
        assert torch.isfinite(grad).all()


def test_dense_map_equals_rows():
    torch.manual_seed(0)
    student = torch.randn(2, 4, 3, 5)
    teacher = torch.randn(2, 4, 3, 5)
    rows = KDLoss(tau=2.0)(
        student.permute(0, 2, 3, 1).reshape(-1, 4),
        teacher.permute(0, 2, 3, 1).reshape(-1, 4))
    dense = KDLoss(tau=2.0, class_dim=1)(student, teacher)
    assert dense.item() == pytest.approx(rows.item(), rel=1e-5)


def test_anchor_groups_split_as_mmdet_heads():
    torch.manual_seed(0)
    num_anchors, num_classes = 3, 4
    student = torch.randn(2, num_anchors * num_classes, 3, 3)
    teacher = torch.randn(2, num_anchors * num_classes, 3, 3)

    def as_rows(x):  # mmdet's AnchorHead.loss_by_feat_single layout
        return x.permute(0, 2, 3, 1).reshape(-1, num_classes)

    expected = KDLoss()(as_rows(student), as_rows(teacher))
    value = KDLoss(class_dim=1, num_classes=num_classes)(student, teacher)
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ConfigValueError) as e:
        KDLoss(class_dim=1, num_classes=5)(student, teacher)
    assert (e.value.key, e.value.owner) == ('num_classes', 'KDLoss')
    assert e.value.expected == ('a divisor of the 12 channels of the class '
                                'dimension (dim 1) at level 0')
    assert e.value.found == '5'


def test_sigmoid_binary_kl_hand_computed():
    student = torch.zeros(1, 1)
    teacher = torch.tensor([[math.log(3.0)]])  # sigmoid = 0.75
    value = KDLoss(use_sigmoid=True)(student, teacher)
    assert value.item() == pytest.approx(KL_75_25)


def test_sigmoid_same_gradient_as_soft_bce():
    torch.manual_seed(0)
    student = torch.randn(2, 9, 4, 4, requires_grad=True)
    teacher = torch.randn(2, 9, 4, 4)
    (grad, ) = torch.autograd.grad(
        KDLoss(use_sigmoid=True, class_dim=1)(student, teacher), student)
    (expected, ) = torch.autograd.grad(
        F.binary_cross_entropy_with_logits(student, torch.sigmoid(teacher)),
        student)
    torch.testing.assert_close(grad, expected)


def test_levels_average_over_all_samples():
    torch.manual_seed(0)
    s = [torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2)]
    t = [torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2)]
    flat_s = torch.cat([x.permute(0, 2, 3, 1).reshape(-1, 3) for x in s])
    flat_t = torch.cat([x.permute(0, 2, 3, 1).reshape(-1, 3) for x in t])
    value = KDLoss(class_dim=1)(s, t)
    assert value.item() == pytest.approx(KDLoss()(flat_s, flat_t).item(),
                                         rel=1e-5)


def test_no_gradient_into_teacher():
    student = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3, requires_grad=True)
    KDLoss(tau=2.0)(student, teacher).backward()
    assert student.grad is not None
    assert teacher.grad is None


def test_built_from_registry():
    from mmengine.registry import MODELS as ROOT_MODELS
    assert isinstance(MODELS.build(dict(type='KDLoss', tau=2.0)), KDLoss)
    assert isinstance(ROOT_MODELS.build(dict(type='mmkd.KDLoss')), KDLoss)


@pytest.mark.parametrize('tau', [0.0, -1.0, math.inf, math.nan, None, '2'])
def test_error_tau_no_temperature(tau):
    with pytest.raises(ConfigValueError) as e:
        KDLoss(tau=tau)
    assert (e.value.key, e.value.expected) == ('tau', 'a finite number > 0')
    assert e.value.found == describe(tau)


@pytest.mark.parametrize('num_classes', [0, 2.5, '3', True])
def test_error_num_classes_not_a_positive_int(num_classes):
    with pytest.raises(ConfigValueError) as e:
        KDLoss(num_classes=num_classes)
    assert (e.value.key, e.value.expected) == ('num_classes', 'an int >= 1')
    assert e.value.found == describe(num_classes)


@pytest.mark.parametrize('class_dim', ['1', 1.0, True])
def test_error_class_dim_not_an_int(class_dim):
    with pytest.raises(ConfigValueError) as e:
        KDLoss(class_dim=class_dim)
    assert (e.value.key, e.value.expected) == ('class_dim', 'an int')
    assert e.value.found == describe(class_dim)
