"""ImitationLoss: FGFI's masked L2, normalised by the number of mask
locations over the batch and all levels."""
import pytest
import torch

from mmkd.models.connectors.conv_connector import ConvConnector
from mmkd.models.losses.imitation import ImitationLoss
from mmkd.registry import MODELS


def _tiny_case():
    """One image, 2 channels, 2x2 map; two mask locations.

    Squared distances: (0, 0): 1 + 4 = 5, (1, 1): 9 + 0 = 9, others 100.
    """
    student = torch.zeros(1, 2, 2, 2)
    teacher = torch.full((1, 2, 2, 2), 10.0 / 2**0.5)
    teacher[0, :, 0, 0] = torch.tensor([1.0, 2.0])
    teacher[0, :, 1, 1] = torch.tensor([3.0, 0.0])
    mask = torch.tensor([[[True, False], [False, True]]])
    return student, teacher, mask


def test_hand_computed_value():
    student, teacher, mask = _tiny_case()
    # (5 + 9) / (2 * 2): unmasked locations do not count.
    assert ImitationLoss()(student, teacher, mask).item() == pytest.approx(3.5)
    assert ImitationLoss(loss_weight=0.01)(
        student, teacher, mask).item() == pytest.approx(0.035)


def test_zero_one_float_mask_equals_bool_mask():
    student, teacher, mask = _tiny_case()
    loss = ImitationLoss()
    assert loss(student, teacher, mask.float()).item() == pytest.approx(
        loss(student, teacher, mask).item())


def test_levels_share_one_normaliser():
    student, teacher, mask = _tiny_case()
    s2 = torch.zeros(1, 2, 1, 1)
    t2 = torch.ones(1, 2, 1, 1)  # squared distance 2
    m2 = torch.ones(1, 1, 1, dtype=torch.bool)
    value = ImitationLoss()([student, s2], (teacher, t2), [mask, m2])
    # (5 + 9 + 2) / (2 * 3): N_p counts the locations of all levels.
    assert value.item() == pytest.approx(16 / 6)


def test_batch_shares_one_normaliser():
    student, teacher, mask = _tiny_case()
    empty = torch.zeros_like(mask)
    value = ImitationLoss()(
        torch.cat([student, student]), torch.cat([teacher, teacher]),
        torch.cat([mask, empty]))
    assert value.item() == pytest.approx(14 / 4)


def test_empty_mask_gives_exact_zero_and_backward_works():
    student = torch.randn(2, 3, 4, 4, requires_grad=True)
    teacher = torch.randn(2, 3, 4, 4)
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    value = ImitationLoss()([student], [teacher], [mask])
    assert value.item() == 0.0
    assert not torch.isnan(value)
    value.backward()
    assert student.grad is not None
    assert torch.count_nonzero(student.grad) == 0


def test_gradients_reach_student_and_connector_never_teacher():
    torch.manual_seed(0)
    connector = ConvConnector(3, 5, init_std=0.1)
    student = torch.randn(2, 3, 6, 6, requires_grad=True)
    teacher = torch.randn(2, 5, 6, 6, requires_grad=True)
    mask = torch.rand(2, 6, 6) > 0.5
    ImitationLoss()(connector(student), teacher, mask).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in connector.parameters())
    assert teacher.grad is None


def test_half_inputs_give_fp32_loss():
    student, teacher, mask = _tiny_case()
    value = ImitationLoss()(student.half(), teacher.half(), mask)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(3.5)


def test_built_from_registry():
    assert isinstance(MODELS.build(dict(type='ImitationLoss')), ImitationLoss)
    from mmengine.registry import MODELS as ROOT_MODELS
    assert isinstance(
        ROOT_MODELS.build(dict(type='mmkd.ImitationLoss', loss_weight=0.01)),
        ImitationLoss)


def test_error_spatial_sizes_differ_names_level_and_shapes():
    s = torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError) as err:
        ImitationLoss()([s, torch.zeros(1, 2, 4, 4)],
                        [s, torch.zeros(1, 2, 2, 2)],
                        [torch.ones(1, 2, 2), torch.ones(1, 4, 4)])
    message = str(err.value)
    assert 'level 1' in message
    assert '(1, 2, 4, 4)' in message and '(1, 2, 2, 2)' in message


