"""HolisticLoss: conditional WGAN-GP between student (fake) and teacher
(real) score maps. Generator: -E[D(x_S)]; critic: E[D(x_S)] - E[D(x_T)] +
λ_gp E[(‖∇_q̂ D(x̂)‖₂ - 1)²] with one α ~ U(0, 1) per sample."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmkd.models.discriminators.seg_discriminator import SegDiscriminator
from mmkd.models.losses.holistic import HolisticLoss
from mmkd.registry import MODELS
from mmkd.utils.config_checks import ConfigValueError, describe


class LinearCritic(nn.Module):
    """D(x) = sum_{c,h,w} w_chw · x_chw, so ∇_x D = w for every input."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).flatten(1).sum(1)


class QuadraticCritic(nn.Module):
    """D(x) = ½ ‖x[:, :C]‖², so ∇_q D = q: the penalty sees x̂ itself."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x[:, :self.num_classes]
        return 0.5 * self.scale * q.pow(2).flatten(1).sum(1)


def one_pixel_pair():
    """1×1 maps, 2 classes. Student logits (0, 0) -> q_S = (0.5, 0.5);
    teacher logits (ln 3, 0) -> q_T = (0.75, 0.25). The image is a constant
    2×2 image of ones: resized to 1×1 it is (1, 1, 1)."""
    student = torch.zeros(1, 2, 1, 1)
    teacher = torch.tensor([math.log(3.0), 0.0]).view(1, 2, 1, 1)
    image = torch.ones(1, 3, 2, 2)
    return student, teacher, image


def small_discriminator(in_channels: int) -> SegDiscriminator:
    # Accepts 8×8 maps: 2 stride-2 layers and a 2×2 last conv.
    return SegDiscriminator(
        in_channels,
        conv_channels=(8, 16),
        attn_after=(0, 1),
        last_kernel_size=2)


def test_build_input_paper_form_is_softmax_plus_resized_image():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 4, 6)
    image = torch.randn(2, 3, 32, 48)
    x = HolisticLoss().build_input(logits, image)
    assert x.shape == (2, 5 + 3, 4, 6)
    torch.testing.assert_close(x[:, :5], F.softmax(logits, dim=1))
    torch.testing.assert_close(
        x[:, 5:],
        F.interpolate(image, (4, 6), mode='bilinear', align_corners=False))


def test_build_input_master_form_is_per_sample_normalised_logits():
    torch.manual_seed(0)
    logits = 5 * torch.randn(3, 4, 5, 5) + 2
    loss = HolisticLoss(condition='none')
    x = loss.build_input(logits)
    assert x.shape == logits.shape
    flat = x.flatten(1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        flat.var(1, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
    # Per sample: a sample's input does not depend on the rest of the batch.
    torch.testing.assert_close(loss.build_input(logits[:1]), x[:1])


def test_hand_computed_losses_with_a_linear_critic():
    student, teacher, image = one_pixel_pair()
    # w over (q_0, q_1, image r, g, b).
    critic = LinearCritic(
        torch.tensor([3.0, 4.0, 0.5, 0.5, 0.5]).view(5, 1, 1))
    loss = HolisticLoss(loss_weight=0.1, gp_weight=10.0)
    # D(x_S) = 3·0.5 + 4·0.5 + 1.5 = 5; D(x_T) = 3·0.75 + 4·0.25 + 1.5 = 4.75
    # ∇_q̂ D = (3, 4) for any α: ‖∇‖ = 5, penalty (5 - 1)² = 16.
    out = loss.discriminator_loss(critic, student, teacher, image)
    assert out['gradient_penalty'].item() == pytest.approx(16.0, rel=1e-6)
    assert out['wasserstein'].item() == pytest.approx(4.75 - 5, rel=1e-6)
    assert out['loss_d'].item() == pytest.approx(5 - 4.75 + 160, rel=1e-6)
    # Generator: -0.1 · D(x_S).
    assert loss.generator_loss(critic, student, image).item() == pytest.approx(
        -0.5, rel=1e-6)
    # d_loss_weight scales loss_d only.
    scaled = HolisticLoss(d_loss_weight=0.1).discriminator_loss(
        critic, student, teacher, image)
    assert scaled['loss_d'].item() == pytest.approx(16.025, rel=1e-6)
    assert scaled['gradient_penalty'].item() == pytest.approx(16.0, rel=1e-6)


def test_penalty_is_the_hand_formula_for_any_linear_critic():
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    weight = 0.3 * torch.randn(3, 2, 2)
    critic = LinearCritic(weight)
    out = HolisticLoss(condition='none').discriminator_loss(
        critic, student, teacher)
    expected = (weight.norm() - 1).pow(2).item()
    assert out['gradient_penalty'].item() == pytest.approx(expected, rel=1e-5)


def test_alpha_is_drawn_per_sample():
    # ∇_q̂ D = q̂ = α q_T + (1 - α) q_S, so each sample's norm shows its α.
    student, teacher, image = one_pixel_pair()
    student = torch.cat([student, student])
    teacher = torch.cat([teacher, teacher])
    image = torch.cat([image, image])
    critic = QuadraticCritic(2)
    loss = HolisticLoss()

    # Given α = (0, 1): sample 0 uses q_S = (0.5, 0.5), ‖·‖ = 1/√2; sample 1
    # uses q_T = (0.75, 0.25), ‖·‖ = √0.625.
    out = loss.discriminator_loss(
        critic, student, teacher, image, alpha=torch.tensor([0.0, 1.0]))
    expected = ((1 / math.sqrt(2) - 1)**2 + (math.sqrt(0.625) - 1)**2) / 2
    assert out['gradient_penalty'].item() == pytest.approx(expected, rel=1e-6)

    # Drawn: torch.rand(N), one value per sample, from the global generator.
    torch.manual_seed(123)
    drawn = loss.discriminator_loss(critic, student, teacher, image)
    torch.manual_seed(123)
    alpha = torch.rand(2)
    assert alpha[0] != alpha[1]
    q_s, q_t = torch.tensor([0.5, 0.5]), torch.tensor([0.75, 0.25])
    norms = torch.stack([(a * q_t + (1 - a) * q_s).norm() for a in alpha])
    assert drawn['gradient_penalty'].item() == pytest.approx(
        (norms - 1).pow(2).mean().item(), rel=1e-5)


def test_wasserstein_sign_follows_the_critic():
    student, teacher, image = one_pixel_pair()
    # Weight on class 0, where the teacher is more confident: D(T) > D(S).
    likes_teacher = LinearCritic(
        torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]).view(5, 1, 1))
    out = HolisticLoss().discriminator_loss(likes_teacher, student, teacher,
                                            image)
    assert out['wasserstein'].item() == pytest.approx(0.25, rel=1e-6)
    likes_student = LinearCritic(
        torch.tensor([-1.0, 0.0, 0.0, 0.0, 0.0]).view(5, 1, 1))
    out = HolisticLoss().discriminator_loss(likes_student, student, teacher,
                                            image)
    assert out['wasserstein'].item() == pytest.approx(-0.25, rel=1e-6)


def test_generator_loss_reaches_student_not_discriminator():
    torch.manual_seed(0)
    student = torch.randn(2, 4, 8, 8, requires_grad=True)
    image = torch.randn(2, 3, 64, 64)
    disc = small_discriminator(4 + 3)
    HolisticLoss().generator_loss(disc, student, image).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert all(p.grad is None for p in disc.parameters())
    assert all(p.requires_grad for p in disc.parameters())


def test_discriminator_loss_reaches_discriminator_not_student():
    torch.manual_seed(0)
    student = torch.randn(2, 4, 8, 8, requires_grad=True)
    teacher = torch.randn(2, 4, 8, 8, requires_grad=True)
    image = torch.randn(2, 3, 64, 64)
    disc = small_discriminator(4 + 3)
    out = HolisticLoss().discriminator_loss(disc, student, teacher, image)
    out['loss_d'].backward()
    assert student.grad is None and teacher.grad is None
    grads = [p.grad for p in disc.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # The penalty's double backward reaches the first layer's weight.
    first = disc.layers[0][0].parametrizations.weight.original
    assert first.grad.abs().sum() > 0
    assert not out['wasserstein'].requires_grad
    assert not out['gradient_penalty'].requires_grad


def test_teacher_resized_to_student():
    torch.manual_seed(0)
    student = torch.randn(2, 3, 2, 2)
    teacher = torch.randn(2, 3, 4, 4)
    resized = F.interpolate(
        teacher, (2, 2), mode='bilinear', align_corners=False)
    critic = LinearCritic(torch.randn(3, 2, 2))
    loss = HolisticLoss(condition='none')
    alpha = torch.tensor([0.3, 0.8])
    a = loss.discriminator_loss(critic, student, teacher, alpha=alpha)
    b = loss.discriminator_loss(critic, student, resized, alpha=alpha)
    for key in a:
        assert a[key].item() == pytest.approx(b[key].item(), rel=1e-6)


def test_zero_gradient_gives_finite_penalty_and_gradients():
    # ‖∇‖ = 0: sqrt(0 + 1e-12) = 1e-6 keeps the norm differentiable.
    student, teacher = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2)
    critic = LinearCritic(torch.zeros(3, 2, 2))
    out = HolisticLoss(condition='none').discriminator_loss(
        critic, student, teacher)
    assert out['gradient_penalty'].item() == pytest.approx(1.0, abs=1e-5)
    out['loss_d'].backward()
    assert torch.isfinite(critic.weight.grad).all()


@pytest.mark.parametrize('condition', ['image', 'none'])
def test_degenerate_inputs_stay_finite(condition):
    torch.manual_seed(0)
    loss = HolisticLoss(condition=condition)
    disc = small_discriminator(4 + 3 if condition == 'image' else 4)
    image = torch.randn(2, 3, 16, 16)
    cases = [
        (torch.zeros(2, 4, 8, 8), torch.zeros(2, 4, 8, 8)),  # all equal
        (torch.full((2, 4, 8, 8), 7.0), torch.full((2, 4, 8, 8), 7.0)),
        (1e4 * torch.randn(2, 4, 8, 8), -1e4 * torch.randn(2, 4, 8, 8)),
    ]
    for student, teacher in cases:
        disc.zero_grad()
        out = loss.discriminator_loss(disc, student, teacher, image)
        out['loss_d'].backward()
        assert all(torch.isfinite(v) for v in out.values())
        assert all(
            torch.isfinite(p.grad).all() for p in disc.parameters()
            if p.grad is not None)
        student = student.clone().requires_grad_(True)
        value = loss.generator_loss(disc, student, image)
        (grad, ) = torch.autograd.grad(value, student)
        assert torch.isfinite(value) and torch.isfinite(grad).all()


def test_identical_student_and_teacher_give_zero_wasserstein():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 8, 8)
    disc = small_discriminator(7).eval()  # eval: spectral norm u, v fixed
    out = HolisticLoss().discriminator_loss(disc, logits, logits.clone(),
                                            torch.randn(2, 3, 8, 8))
    assert out['wasserstein'].item() == 0.0


def test_one_pixel_maps_stay_finite():
    student, teacher, image = one_pixel_pair()
    critic = LinearCritic(torch.randn(5, 1, 1))
    out = HolisticLoss().discriminator_loss(critic, student, teacher, image)
    assert all(torch.isfinite(v) for v in out.values())


def test_autocast_bfloat16_gives_fp32_finite_losses():
    torch.manual_seed(0)
    student = torch.randn(2, 4, 8, 8)
    teacher = torch.randn(2, 4, 8, 8)
    image = torch.randn(2, 3, 16, 16)
    disc = small_discriminator(7)
    loss = HolisticLoss()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = loss.discriminator_loss(disc, student.bfloat16(),
                                      teacher.bfloat16(), image.bfloat16())
        gen = loss.generator_loss(disc, student.bfloat16(), image.bfloat16())
    for value in (*out.values(), gen):
        assert value.dtype == torch.float32 and torch.isfinite(value)


def test_condition_is_a_choice():
    with pytest.raises(ConfigValueError) as e:
        HolisticLoss(condition='text')
    assert e.value.key == 'condition'
    assert e.value.expected == "'image' or 'none'"
    assert e.value.found == "'text' (str)"


@pytest.mark.parametrize('arg, value, expected', [
    ('gp_weight', math.nan, 'a finite number >= 0'),
    ('gp_weight', -1.0, 'a finite number >= 0'),
    ('d_loss_weight', None, 'a finite number >= 0'),
    ('d_loss_weight', math.inf, 'a finite number >= 0'),
    ('grad_norm_eps', 0.0, 'a finite number > 0')])
def test_weights_that_are_no_weights(arg, value, expected):
    """NaN weights were accepted (and gave NaN discriminator losses)."""
    with pytest.raises(ConfigValueError) as e:
        HolisticLoss(**{arg: value})
    assert (e.value.key, e.value.expected) == (arg, expected)
    assert e.value.found == describe(value)


def test_registered():
    loss = MODELS.build(dict(type='HolisticLoss', condition='none'))
    assert isinstance(loss, HolisticLoss)
    assert loss.loss_weight == 0.1 and loss.gp_weight == 10.0
