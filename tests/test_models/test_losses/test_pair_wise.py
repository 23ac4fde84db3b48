"""PairWiseLoss: mean over node pairs and batch of (a^S_ij - a^T_ij)², with
a_ij the cosine similarity of pooled nodes (norms detached, raised to a floor
relative to the sample's mean node norm, +1e-8), computed either from the
N'×N' affinity matrices or from C×C Gram matrices."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses.pair_wise import NORM_FLOOR, PairWiseLoss
from mmkd.registry import MODELS
from mmkd.utils.config_checks import ConfigValueError, describe

METHODS = ('gram', 'affinity')

# The hand-computed graph. A 2×2 student map with 2 channels, nodes in
# row-major order:
#   f1 = (1, 0)  f2 = (0, 1)
#   f3 = (1, 1)  f4 = (1, 0)
# Cosine affinities: a12 = a24 = 0, a13 = a23 = a34 = 1/√2, a14 = 1, a_ii = 1.
# The teacher's nodes all point the same way, so every a^T_ij = 1.
# Over the 16 ordered pairs (a^S - a^T)² sums to
#   (1,2),(2,1),(2,4),(4,2): 1 each                          -> 4
#   (1,3),(3,1),(2,3),(3,2),(3,4),(4,3): (1 - 1/√2)² each    -> 6 (1 - 1/√2)²
# and L = (4 + 6 (1 - 1/√2)²) / N'² with N' = 4 nodes.
HAND_LOSS = (4 + 6 * (1 - 1 / math.sqrt(2))**2) / 16


def hand_student() -> torch.Tensor:
    feat = torch.zeros(1, 2, 2, 2)
    feat[0, :, 0, 0] = torch.tensor([1.0, 0.0])
    feat[0, :, 0, 1] = torch.tensor([0.0, 1.0])
    feat[0, :, 1, 0] = torch.tensor([1.0, 1.0])
    feat[0, :, 1, 1] = torch.tensor([1.0, 0.0])
    return feat


def hand_teacher() -> torch.Tensor:
    # 3 channels (the channel counts may differ), all nodes (2, 0, 0).
    feat = torch.zeros(1, 3, 2, 2)
    feat[0, 0] = 2.0
    return feat


def official_sim_dis(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """The official ``sim_dis_compute`` (utils/criterion.py), in float64."""

    def similarity(feat):
        norm = (feat.pow(2).sum(1)**0.5).unsqueeze(1).detach() + 1e-8
        feat = (feat / norm).flatten(2)
        return torch.einsum('icm,icn->imn', feat, feat)

    err = (similarity(f_t) - similarity(f_s))**2
    return (err / (f_t.shape[-1] * f_t.shape[-2])**2 / f_t.shape[0]).sum()


@pytest.mark.parametrize('method', METHODS)
def test_hand_computed_2x2_nodes(method):
    loss = PairWiseLoss(node_size=1, method=method)
    assert loss(hand_student(), hand_teacher()).item() == pytest.approx(
        HAND_LOSS, rel=1e-6)
    assert HAND_LOSS == pytest.approx(0.2821699, abs=1e-7)


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('pool', ['max', 'avg'])
def test_node_patches_pool_to_the_hand_graph(method, pool):
    # Each hand node sits in the top-left corner of a 2×2 block of zeros: max
    # pooling gives the node, avg pooling node / 4 (same cosines).
    student = torch.zeros(1, 2, 4, 4)
    student[..., ::2, ::2] = hand_student()
    teacher = torch.zeros(1, 3, 4, 4)
    teacher[..., ::2, ::2] = hand_teacher()
    for kwargs in (dict(node_size=2), dict(pool_scale=0.5)):
        loss = PairWiseLoss(pool=pool, method=method, **kwargs)
        assert loss(student, teacher).item() == pytest.approx(
            HAND_LOSS, rel=1e-6)


@pytest.mark.parametrize('method', METHODS)
def test_max_and_avg_pooling_give_different_graphs(method):
    # node_size=2 on a 2×4 map whose second row repeats the first.
    # Block 1 holds (1, 0) and (-1, 1): max -> (1, 1), avg -> (0, 0.5).
    # Block 2 holds (1, 0) twice: max and avg -> (1, 0).
    # Teacher: all (1, 0), so a^T = 1 everywhere; two off-diagonal pairs.
    row = torch.tensor([[1.0, -1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    student = row[None, :, None, :].expand(1, 2, 2, 4).contiguous()
    teacher = torch.zeros(1, 2, 2, 4)
    teacher[0, 0] = 1.0
    max_loss = PairWiseLoss(pool='max', node_size=2, method=method)
    avg_loss = PairWiseLoss(pool='avg', node_size=2, method=method)
    # max: a12 = 1/√2 -> 2 (1 - 1/√2)² / 4; avg: a12 = 0 -> 2 / 4.
    # (abs 2e-7: the gram form's fp32 Gram entries leave an absolute error of
    # order 1e-7 on the normalised loss, see the class doc.)
    assert max_loss(student, teacher).item() == pytest.approx(
        2 * (1 - 1 / math.sqrt(2))**2 / 4, abs=2e-7)
    assert avg_loss(student, teacher).item() == pytest.approx(0.5, abs=2e-7)


def test_official_relative_window_gives_3x3_nodes_on_65x65():
    # kernel = stride = int(0.5 · 65) = 32, ceil_mode: 3 nodes per side.
    loss = PairWiseLoss(pool='max', pool_scale=0.5)
    assert loss.kernel_size(65, 65) == (32, 32)
    assert loss.build_nodes(torch.randn(2, 4, 65, 65)).shape == (2, 4, 9)
    # Height and width get their own window: (4, 6) on 8×12 -> 2×2 nodes.
    assert loss.kernel_size(8, 12) == (4, 6)
    assert loss.build_nodes(torch.randn(1, 4, 8, 12)).shape == (1, 4, 4)


def test_kernel_is_clamped_to_the_map():
    # int(0.1 · 5) = 0 -> 1: every location is a node.
    assert PairWiseLoss(pool_scale=0.1).kernel_size(5, 5) == (1, 1)
    # A node larger than the map is the whole map: one node, loss 0.
    loss = PairWiseLoss(node_size=8)
    assert loss.kernel_size(3, 5) == (3, 5)
    value = loss(torch.randn(2, 4, 3, 5), torch.randn(2, 6, 3, 5))
    assert value.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize('norm_floor', [None, NORM_FLOOR])
@pytest.mark.parametrize('method', METHODS)
def test_matches_official_formula(method, norm_floor):
    torch.manual_seed(0)
    student = torch.randn(2, 6, 5, 7)
    teacher = torch.randn(2, 9, 5, 7)
    expected = official_sim_dis(student.double(), teacher.double())
    value = PairWiseLoss(
        node_size=1, method=method, norm_floor=norm_floor)(student, teacher)
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize('method', METHODS)
def test_identical_inputs_give_zero(method):
    feat = torch.randn(2, 8, 5, 5)
    value = PairWiseLoss(node_size=1, method=method)(feat, feat.clone())
    assert value.item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize('method', METHODS)
def test_teacher_resized_to_student(method):
    torch.manual_seed(0)
    student = torch.randn(2, 4, 6, 6)
    teacher = torch.randn(2, 8, 12, 12)
    resized = F.interpolate(
        teacher, size=(6, 6), mode='bilinear', align_corners=False)
    loss = PairWiseLoss(node_size=2, method=method)
    assert loss(student, teacher).item() == pytest.approx(
        loss(student, resized).item(), rel=1e-5)


def test_mean_over_batch_and_loss_weight():
    student = torch.cat([hand_student(), hand_student()])
    # Second sample: teacher identical to the student -> 0.
    teacher = torch.cat([
        F.pad(hand_student(), (0, 0, 0, 0, 0, 1)),
        F.pad(hand_student(), (0, 0, 0, 0, 0, 1))
    ])
    teacher[0] = hand_teacher()[0]
    value = PairWiseLoss(node_size=1, loss_weight=0.5)(student, teacher)
    assert value.item() == pytest.approx(0.5 * HAND_LOSS / 2, rel=1e-6)


def test_gram_equals_affinity_on_random_features():
    torch.manual_seed(0)
    student = torch.randn(2, 8, 6, 7, requires_grad=True)
    teacher = torch.randn(2, 16, 6, 7)
    values, grads = [], []
    for method in METHODS:
        value = PairWiseLoss(node_size=1, method=method)(student, teacher)
        (grad, ) = torch.autograd.grad(value, student)
        values.append(value.item())
        grads.append(grad)
    # Both are fp32 computations of a loss of order 0.1: they agree to a few
    # fp32 ulps.
    assert values[0] == pytest.approx(values[1], rel=1e-5)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-9)


def test_gram_equals_affinity_on_many_nodes():
    # 2304 nodes, 2 samples: 10.6M affinity entries. A single fp32 reduction
    # over all of them was off by 7e-4 here (3.7% at 65×65, batch 8); row
    # sums with a float64 total agree with the gram form to fp32 precision.
    torch.manual_seed(0)
    student = torch.randn(2, 8, 48, 48)
    teacher = torch.randn(2, 32, 48, 48)
    gram = PairWiseLoss(node_size=1, method='gram')(student, teacher)
    affinity = PairWiseLoss(node_size=1, method='affinity')(student, teacher)
    assert affinity.item() == pytest.approx(gram.item(), rel=1e-5)


def test_gram_and_affinity_on_near_identical_features():
    # S = T + 1e-4 noise: the loss is about 1e-9, while the three Gram terms
    # are each of order 1 (mean squared affinity) and cancel. The float64
    # combination adds no error of its own, but the Gram entries carry fp32
    # rounding: the class doc puts the absolute error on the normalised loss
    # at about 1e-7 times the mean squared affinity (measured 2.0e-8 with
    # torch 2.13 on CPU for a mean squared affinity of 0.21, i.e. 0.99e-7
    # times it; tolerance twice the documented scale), so the gram VALUE is
    # only good in absolute terms at this scale. The affinity form
    # subtracts entry by entry and stays accurate in relative terms
    # (measured < 1.2e-4, tolerance 1e-3).
    # Gradients of both forms come within 0.8% of the largest float64
    # gradient entry (fp32 rounding of the affinities against differences of
    # about 1e-5); tolerance 2%.
    torch.manual_seed(0)
    for teacher in (torch.randn(2, 32, 16, 16),
                    torch.relu(torch.randn(2, 32, 16, 16)) + 0.1):
        student = (teacher + 1e-4 * torch.randn_like(teacher))
        student.requires_grad_(True)
        reference = official_sim_dis(student.double(), teacher.double())
        (ref_grad, ) = torch.autograd.grad(reference, student)
        assert 1e-11 < reference.item() < 1e-7

        affinity = PairWiseLoss(
            node_size=1, method='affinity')(student, teacher)
        gram = PairWiseLoss(node_size=1, method='gram')(student, teacher)
        nodes = F.normalize(teacher.double().flatten(2), dim=1)
        mean_sq_affinity = (nodes.transpose(1, 2) @ nodes).square().mean()
        gram_tol = 2e-7 * mean_sq_affinity.item()
        assert affinity.item() == pytest.approx(reference.item(), rel=1e-3)
        assert gram.item() == pytest.approx(reference.item(), abs=gram_tol)
        assert gram.item() >= 0
        assert gram.item() == pytest.approx(affinity.item(), abs=gram_tol)

        scale = ref_grad.abs().max().item()
        for value in (affinity, gram):
            (grad, ) = torch.autograd.grad(value, student)
            torch.testing.assert_close(
                grad, ref_grad.float(), rtol=0, atol=2e-2 * scale)


def test_auto_picks_the_cheaper_form():
    loss = PairWiseLoss(node_size=1)
    # Official: 3×3 nodes, 128 / 512 channels -> affinity.
    assert loss.choose_method(9, 128, 512) == 'affinity'
    # Every location of a 65×65 map -> gram.
    assert loss.choose_method(65 * 65, 128, 512) == 'gram'
    # C_s = C_t = C: gram once N' > 1.5 C.
    assert loss.choose_method(96, 64, 64) == 'affinity'
    assert loss.choose_method(97, 64, 64) == 'gram'
    assert PairWiseLoss(
        node_size=1, method='gram').choose_method(9, 128, 512) == 'gram'


@pytest.mark.parametrize('method', METHODS)
def test_degenerate_inputs_stay_finite(method):
    loss = PairWiseLoss(node_size=1, method=method)
    cases = [
        # all-equal values (every node the same direction)
        (torch.full((2, 4, 3, 3), 0.5), torch.full((2, 6, 3, 3), 2.0)),
        # all-zero nodes (norm 1e-8)
        (torch.zeros(2, 4, 3, 3), torch.zeros(2, 6, 3, 3)),
        (torch.zeros(2, 4, 3, 3), torch.randn(2, 6, 3, 3)),
        # a single location: one node, a^S = a^T = 1
        (torch.randn(2, 4, 1, 1), torch.randn(2, 6, 1, 1)),
        # huge values
        (1e4 * torch.randn(2, 4, 3, 3), -1e4 * torch.randn(2, 6, 3, 3)),
    ]
    for student, teacher in cases:
        student.requires_grad_(True)
        value = loss(student, teacher)
        (grad, ) = torch.autograd.grad(value, student)
        assert torch.isfinite(value) and torch.isfinite(grad).all()
    value = loss(torch.randn(2, 4, 1, 1), torch.randn(2, 6, 1, 1))
    assert value.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize('method', METHODS)
def test_autocast_bfloat16_gives_fp32_finite_loss(method):
    torch.manual_seed(0)
    student = torch.randn(2, 8, 6, 6)
    teacher = torch.randn(2, 16, 6, 6)
    loss = PairWiseLoss(node_size=1, method=method)
    reference = loss(student, teacher)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(student.bfloat16(), teacher.bfloat16())
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert value.item() == pytest.approx(reference.item(), rel=5e-2)


def test_gradient_reaches_student_only():
    student = torch.randn(1, 4, 3, 3, requires_grad=True)
    teacher = torch.randn(1, 6, 3, 3, requires_grad=True)
    PairWiseLoss(node_size=1)(student, teacher).backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None


def test_the_official_node_scheme_is_the_default():
    """Neither node_size nor pool_scale: max pooling with a node side of
    half the map's (the official code), so a 4x6 map has 2x2 nodes of 2x3
    locations, each the max of its patch."""
    loss = PairWiseLoss()
    assert (loss.pool, loss.pool_scale, loss.node_size) == ('max', 0.5, None)
    assert loss.kernel_size(65, 65) == (32, 32)
    feat = torch.arange(24.).reshape(1, 1, 4, 6)
    nodes = loss.build_nodes(feat)
    # one channel: every node normalises to 1; the pooling is in the shape
    assert nodes.shape == (1, 1, 4)
    student = torch.rand(2, 3, 4, 6)
    teacher = torch.rand(2, 5, 4, 6)
    expected = PairWiseLoss(pool='max', pool_scale=0.5)(student, teacher)
    assert torch.equal(loss(student, teacher), expected)


def test_errors_are_explained():
    with pytest.raises(ConfigValueError) as e:
        PairWiseLoss(node_size=2, pool_scale=0.5)
    assert e.value.key == 'node_size'
    assert e.value.expected == 'at most one of node_size and pool_scale'
    assert e.value.found == 'node_size=2, pool_scale=0.5'
    for bad in (0, 'a', 2.0, True):
        with pytest.raises(ConfigValueError) as e:
            PairWiseLoss(node_size=bad)
        assert (e.value.key, e.value.expected) == ('node_size', 'an int >= 1')
        assert e.value.found == describe(bad)
    for bad in (1.5, 0, True, '0.5', float('nan')):
        with pytest.raises(ConfigValueError) as e:
            PairWiseLoss(pool_scale=bad)
        assert e.value.key == 'pool_scale'
        assert e.value.expected == 'a number in (0, 1]'
        assert e.value.found == describe(bad)
    with pytest.raises(ConfigValueError) as e:
        PairWiseLoss(pool='sum', node_size=1)
    assert e.value.key == 'pool'
    assert e.value.expected == "'max' or 'avg'"
    assert e.value.found == "'sum' (str)"
    with pytest.raises(ConfigValueError) as e:
        PairWiseLoss(node_size=1, method='fast')
    assert e.value.key == 'method'
    assert e.value.expected == "'auto', 'gram' or 'affinity'"
    assert e.value.found == "'fast' (str)"
    for bad in (0, 1.5, -0.1, '0.05', True, float('inf')):
        with pytest.raises(ConfigValueError) as e:
            PairWiseLoss(node_size=1, norm_floor=bad)
        assert e.value.key == 'norm_floor'
        assert e.value.expected == 'a number in (0, 1]'
        assert e.value.found == describe(bad)


def test_norm_floor_of_one_floors_every_node_at_the_mean_norm():
    """ρ = 1, the top of (0, 1]: a node below its sample's mean node norm is
    divided by the mean norm instead of its own."""
    loss = PairWiseLoss(node_size=1, norm_floor=1)
    assert loss.norm_floor == 1.0
    feat = torch.tensor([[[[3.0, 1.0]]]])  # norms 3 and 1, mean 2
    nodes = loss.build_nodes(feat)
    torch.testing.assert_close(nodes, torch.tensor([[[1.0, 0.5]]]))


def test_registered():
    loss = MODELS.build(
        dict(type='PairWiseLoss', pool='avg', node_size=2, loss_weight=0.5))
    assert isinstance(loss, PairWiseLoss) and loss.loss_weight == 0.5


# Nodes of negligible norm. On a narrow ReLU feature whole nodes reach
# (nearly) zero norm; the official 1/(‖f‖ + 1e-8) scales their gradient by up
# to 1e8. The default floor (ρ = 0.05 of the sample's mean node norm) bounds
# it, and leaves nodes at or above the floor exactly as the official code.


def test_a_node_below_the_floor_is_divided_by_the_floor():
    # f1 = (3, 4), norm 5; f2 = (0, 1e-6). Mean norm m = (5 + 1e-6) / 2, floor
    # ρ·m = 0.125 (+ 2.5e-8): x1 = f1 / 5 = (0.6, 0.8) (+1e-8 on the norm, as
    # the official code), x2 = f2 / 0.125 = (0, 8e-6). The official code
    # makes x2 nearly a unit vector: (0, 1e-6 / (1e-6 + 1e-8)) = (0, 1/1.01).
    feat = torch.tensor([[3.0, 0.0], [4.0, 1e-6]]).view(1, 2, 1, 2)
    nodes = PairWiseLoss(node_size=1).build_nodes(feat)
    torch.testing.assert_close(
        nodes[0], torch.tensor([[0.6, 0.0], [0.8, 8e-6]]), rtol=1e-6, atol=0)
    official = PairWiseLoss(node_size=1, norm_floor=None).build_nodes(feat)
    torch.testing.assert_close(
        official[0, :, 1], torch.tensor([0.0, 1 / 1.01]), rtol=1e-6, atol=0)


def ordinary_and_dead(dead_norm: float, num: int = 16, channels: int = 8):
    """``(ordinary, with_dead)``: ``num`` ReLU-like nodes of ordinary norm,
    and the same nodes followed by ``num`` nodes of norm ``dead_norm``, as
    ``(2, channels, 1, nodes)`` maps."""
    torch.manual_seed(0)
    ordinary = torch.relu(torch.randn(2, channels, 1, num)) + 0.05
    dead = F.normalize(torch.randn(2, channels, 1, num), dim=1) * dead_norm
    return ordinary, torch.cat([ordinary, dead], dim=-1)


def grad_of(loss: PairWiseLoss, student: torch.Tensor,
            teacher: torch.Tensor):
    student = student.clone().requires_grad_(True)
    value = loss(student, teacher)
    (grad, ) = torch.autograd.grad(value, student)
    return value, grad


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('dead_norm', [0.0, 1e-6])
def test_dead_nodes_do_not_dominate_the_gradient(method, dead_norm):
    # Half the student's nodes dead (norm 0 or 1e-6). The largest gradient
    # entry is compared with the largest one of the same ordinary nodes
    # alone (against the same teacher nodes). Bound: 1/ρ = 20 times (a
    # floored node's gradient is ∂L/∂x_i / (ρ·m), an ordinary one's
    # ∂L/∂x_i / ‖f_i‖); measured 10.6. The official code: 4.3e7 (norm 0) and
    # 9.3e5 (norm 1e-6) times.
    ordinary, with_dead = ordinary_and_dead(dead_norm)
    torch.manual_seed(1)
    teacher = torch.relu(torch.randn(2, 12, 1, with_dead.shape[-1]))
    num = ordinary.shape[-1]
    loss = PairWiseLoss(node_size=1, method=method)
    _, reference = grad_of(loss, ordinary, teacher[..., :num])
    value, grad = grad_of(loss, with_dead, teacher)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    ratio = grad.abs().max() / reference.abs().max()
    assert ratio <= 1 / NORM_FLOOR
    official = PairWiseLoss(node_size=1, method=method, norm_floor=None)
    _, official_grad = grad_of(official, with_dead, teacher)
    assert official_grad.abs().max() / reference.abs().max() > 1e5


@pytest.mark.parametrize('method', METHODS)
def test_zero_nodes_keep_the_official_value_and_other_gradients(method):
    # A zero node is x_i = 0 with or without the floor: the loss and the
    # ordinary nodes' gradients are the official ones; only the zero nodes'
    # own gradient changes (bounded instead of scaled by 1e8).
    _, with_dead = ordinary_and_dead(0.0)
    torch.manual_seed(1)
    teacher = torch.relu(torch.randn(2, 12, 1, with_dead.shape[-1]))
    value, grad = grad_of(PairWiseLoss(node_size=1, method=method), with_dead,
                          teacher)
    official_value, official_grad = grad_of(
        PairWiseLoss(node_size=1, method=method, norm_floor=None), with_dead,
        teacher)
    num = with_dead.shape[-1] // 2
    assert torch.equal(value, official_value)
    assert torch.equal(grad[..., :num], official_grad[..., :num])
    assert official_grad[..., num:].abs().max() > 1e3
    assert grad[..., num:].abs().max() < 1


@pytest.mark.parametrize('method', METHODS)
def test_ordinary_nodes_give_exactly_the_official_value_and_gradient(method):
    torch.manual_seed(0)
    for student, teacher in (
        (torch.relu(torch.randn(2, 8, 6, 6)), torch.randn(2, 16, 6, 6)),
        (torch.randn(2, 4, 12, 12), torch.relu(torch.randn(2, 16, 12, 12))),
    ):
        loss = PairWiseLoss(node_size=2, pool='avg', method=method)
        for feat in (student, teacher):  # no node below the floor
            norms = F.avg_pool2d(feat, 2).flatten(2).norm(dim=1)
            assert (norms >= NORM_FLOOR * norms.mean(1, keepdim=True)).all()
        value, grad = grad_of(loss, student, teacher)
        official = PairWiseLoss(node_size=2, pool='avg', method=method,
                                norm_floor=None)
        official_value, official_grad = grad_of(official, student, teacher)
        assert torch.equal(value, official_value)
        assert torch.equal(grad, official_grad)


def test_gram_equals_affinity_with_dead_nodes():
    for dead_norm in (0.0, 1e-6):
        _, with_dead = ordinary_and_dead(dead_norm)
        torch.manual_seed(1)
        teacher = torch.relu(torch.randn(2, 12, 1, with_dead.shape[-1]))
        (gram_value, gram_grad), (affinity_value, affinity_grad) = (
            grad_of(PairWiseLoss(node_size=1, method=method), with_dead,
                    teacher) for method in METHODS)
        assert gram_value.item() == pytest.approx(
            affinity_value.item(), rel=1e-5)
        torch.testing.assert_close(gram_grad, affinity_grad, rtol=1e-4,
                                   atol=1e-7)
