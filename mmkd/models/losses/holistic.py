"""Holistic distillation of SKD (Liu et al., CVPR 2019, Sec. 3.1): a
conditional Wasserstein GAN with gradient penalty on whole score maps."""
from contextlib import contextmanager
from typing import Dict, Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from mmkd.utils.config_checks import check_choice, check_number
from .utils import check_dims, check_map_pair, fp32_math, resize_to


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Record a forward of ``module`` without gradients to its parameters.

    Gradients still flow through the module to its input; its parameters
    get no ``.grad`` from a backward of what is computed inside.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _score(discriminator: nn.Module, x: Tensor) -> Tensor:
    """Run the critic and check that it gives one score per sample."""
    score = discriminator(x)
    if not isinstance(score, Tensor) or score.shape != (x.shape[0], ):
        found = (
            tuple(score.shape) if isinstance(score, Tensor) else type(score))
        raise ValueError(
            f'HolisticLoss expects the discriminator to return (N,) = '
            f'({x.shape[0]},) scores, found {found}.')
    return score


@MODELS.register_module()
class HolisticLoss(nn.Module):
    """Conditional WGAN-GP between the student's and the teacher's score maps.

    A discriminator (critic) ``D`` (e.g. ``SegDiscriminator``) scores whole
    segmentation maps. The teacher's maps are "real" and the student's are
    "fake". The student is trained to raise its score:

        generator (student):  L_ho = -E[D(x_S)] · loss_weight
        discriminator:        L_D  = (E[D(x_S)] - E[D(x_T)]
                                      + gp_weight · E[(‖∇_q̂ D(x̂)‖₂ - 1)²])
                                     · d_loss_weight

    ``x = build_input(logits, image)`` is the discriminator's input, with a
    score-map part ``q`` and an optional image condition. For the gradient
    penalty, ``q̂ = α·q_T + (1-α)·q_S`` with one ``α ~ U(0, 1)`` per sample.
    ``x̂`` is ``q̂`` with the same condition, and the gradient is taken with
    respect to ``q̂``, the part that is interpolated.

    Two conditions (``condition``):

    - ``'image'`` (default; the paper's ``D(Q | I)``, the repo's cvpr_19
      branch): ``q = softmax(logits)``, concatenated with the image resized
      bilinearly to the logits' ``H×W``. This gives ``C + 3`` channels. The
      image is the data preprocessor's normalised tensor.
    - ``'none'`` (the repo's master branch): the logits alone. There the
      discriminator starts with ``BatchNorm2d(C)``, which uses batch
      statistics in training. mmkd uses an affine-free per-sample layer
      norm over ``(C, H, W)`` (``F.layer_norm``) instead. Batch statistics
      make each sample's score depend on the other samples, and the WGAN-GP
      penalty is defined per sample (Gulrajani et al., 2017, suggest layer
      norm in the critic for this reason). ``C`` channels.

    Differences from the official code, for reproductions:

    - The official code multiplies the discriminator loss by ``lambda_d``
      (0.1) as well. Set ``d_loss_weight=0.1`` to do the same.
    - The official penalty differentiates the sum of the score map. Here it
      differentiates the per-sample score (its mean). The two are the same
      for the official 65×65 input, whose score map is 1×1.

    Everything runs in fp32 with autocast off, including the discriminator's
    forward passes. The gradient norm is ``sqrt(sum g² + 1e-12)``, so it
    stays finite (and differentiable) when the gradient is 0.

    The loss needs the distiller's help (``distiller_needs``): a distiller
    with a critic (``discriminator``: ``SingleTeacherDistiller``) calls
    ``generator_loss`` in the student's step and ``discriminator_loss`` in
    the discriminator's own optimizer step (official: one D step after each
    student step, SGD lr 4e-4). The discriminator's ``in_channels`` is
    ``C + 3`` with ``condition='image'``, ``C`` otherwise.

    Args:
        loss_weight (float): ``lambda_ho`` of the generator loss (paper:
            0.1). Defaults to 0.1.
        gp_weight (float): ``lambda_gp`` (official: 10). Defaults to 10.0.
        condition (str): ``'image'`` or ``'none'`` (see above). Defaults to
            ``'image'``.
        d_loss_weight (float): Multiplier of the discriminator loss.
            Defaults to 1.0.
        grad_norm_eps (float): Added under the square root of the gradient
            norm. Defaults to 1e-12.
    """

    #: What this loss needs of the distiller (see
    #: :mod:`mmkd.models.distillers.loss_routes`).
    distiller_needs = ('critic', )

    def __init__(self,
                 loss_weight: float = 0.1,
                 gp_weight: float = 10.0,
                 condition: str = 'image',
                 d_loss_weight: float = 1.0,
                 grad_norm_eps: float = 1e-12) -> None:
        super().__init__()
        self.condition = check_choice(
            condition, 'condition', ('image', 'none'), 'HolisticLoss',
            "'image' is the paper's softmax + image, 'none' the official "
            "master branch's normalised logits.")
        self.loss_weight = loss_weight
        self.gp_weight = check_number(
            gp_weight, 'gp_weight', low=0, owner='HolisticLoss',
            hint='It weighs the gradient penalty of the discriminator loss '
            '(official: 10).')
        self.d_loss_weight = check_number(
            d_loss_weight, 'd_loss_weight', low=0, owner='HolisticLoss',
            hint='It multiplies the discriminator loss (1, or 0.1 as the '
            'official code).')
        self.grad_norm_eps = check_number(
            grad_norm_eps, 'grad_norm_eps', low=0, low_open=True,
            owner='HolisticLoss',
            hint='It keeps the gradient norm differentiable at 0 (1e-12).')

    def score_part(self, logits: Tensor) -> Tensor:
        """The score-map part ``q`` of the discriminator's input.

        Args:
            logits (Tensor): ``(N, C, H, W)`` logits.

        Returns:
            Tensor: ``(N, C, H, W)``: ``softmax`` over classes
            (``condition='image'``) or the per-sample affine-free layer norm
            over ``(C, H, W)`` (``condition='none'``).
        """
        if self.condition == 'image':
            return F.softmax(logits, dim=1)
        return F.layer_norm(logits, logits.shape[1:])

    def attach_condition(self, score: Tensor,
                         image: Optional[Tensor]) -> Tensor:
        """Concatenate the image condition (if any) to a score part.

        Args:
            score (Tensor): ``(N, C, H, W)`` score part.
            image (Tensor, optional): ``(N, 3, H_img, W_img)`` image, resized
                bilinearly to ``H×W``. Required for ``condition='image'``,
                ignored otherwise.

        Returns:
            Tensor: ``(N, C + 3, H, W)`` or ``score`` itself.
        """
        if self.condition == 'none':
            return score
        if image is None:
            raise ValueError(
                "HolisticLoss(condition='image') needs the input image "
                '(N, 3, H, W) to condition the discriminator on, found None. '
                "Pass the batch's inputs or use condition='none'.")
        check_dims(image, 4, 'HolisticLoss image')
        if image.shape[0] != score.shape[0]:
            raise ValueError(
                f'HolisticLoss: image batch has {image.shape[0]} samples, '
                f'logits batch {score.shape[0]}.')
        image = resize_to(image.detach().float(), score.shape[-2:])
        return torch.cat([score, image], dim=1)

    def build_input(self,
                    logits: Tensor,
                    image: Optional[Tensor] = None) -> Tensor:
        """The discriminator's input for one model's logits.

        Args:
            logits (Tensor): ``(N, C, H, W)`` logits.
            image (Tensor, optional): ``(N, 3, H_img, W_img)`` image (for
                ``condition='image'``).

        Returns:
            Tensor: ``(N, C + 3, H, W)`` (``'image'``) or ``(N, C, H, W)``
            (``'none'``).
        """
        check_dims(logits, 4, 'HolisticLoss logits')
        return self.attach_condition(self.score_part(logits), image)

    def generator_loss(self,
                       discriminator: nn.Module,
                       student_logits: Tensor,
                       image: Optional[Tensor] = None) -> Tensor:
        """The student's adversarial loss ``-E[D(x_S)] · loss_weight``.

        The gradient flows through the discriminator into the student's
        logits. The discriminator's parameters get no gradient from it,
        because they are frozen while it is recorded.

        Args:
            discriminator (nn.Module): Maps ``(N, C', H, W)`` to ``(N,)``
                scores.
            student_logits (Tensor): ``(N, C, H, W)`` student logits.
            image (Tensor, optional): ``(N, 3, H_img, W_img)`` image.

        Returns:
            Tensor: Scalar fp32 loss.
        """
        with fp32_math(student_logits) as (logits, ):
            with _frozen(discriminator):
                score = _score(discriminator, self.build_input(logits, image))
            loss = -score.mean()
        return loss * self.loss_weight

    def discriminator_loss(
            self,
            discriminator: nn.Module,
            student_logits: Tensor,
            teacher_logits: Tensor,
            image: Optional[Tensor] = None,
            alpha: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """The critic's WGAN-GP loss on detached predictions.

        Args:
            discriminator (nn.Module): Maps ``(N, C', H, W)`` to ``(N,)``
                scores.
            student_logits (Tensor): ``(N, C, H, W)`` student logits.
            teacher_logits (Tensor): ``(N, C, H_t, W_t)`` teacher logits,
                resized bilinearly to ``H×W`` when the sizes differ.
            image (Tensor, optional): ``(N, 3, H_img, W_img)`` image.
            alpha (Tensor, optional): ``(N,)`` interpolation weights in
                [0, 1]. Defaults to None (drawn from ``U(0, 1)``, one per
                sample).

        Returns:
            dict[str, Tensor]: fp32 scalars:

            - ``loss_d``: the loss to minimise (with gradients to the
              discriminator's parameters only).
            - ``wasserstein``: ``E[D(x_T)] - E[D(x_S)]``, the critic's
              estimate of the Wasserstein distance (detached).
            - ``gradient_penalty``: ``E[(‖∇‖₂ - 1)²]`` before ``gp_weight``
              (detached).
        """
        check_map_pair(student_logits, teacher_logits, 'HolisticLoss',
                       ('student_logits', 'teacher_logits'),
                       same_classes='the discriminator compares score maps')
        n_s = student_logits.shape[0]
        with fp32_math(student_logits.detach(),
                       teacher_logits.detach()) as (s, t):
            t = resize_to(t, s.shape[-2:])
            q_s, q_t = self.score_part(s), self.score_part(t)
            d_s = _score(discriminator, self.attach_condition(q_s, image))
            d_t = _score(discriminator, self.attach_condition(q_t, image))

            if alpha is None:
                alpha = torch.rand(n_s, device=s.device)
            elif alpha.numel() != n_s:
                raise ValueError(
                    f'HolisticLoss alpha must hold one weight per sample '
                    f'({n_s}), found shape {tuple(alpha.shape)}.')
            alpha = alpha.to(s.device, torch.float32).reshape(n_s, 1, 1, 1)
            with torch.enable_grad():
                q_hat = (alpha * q_t + (1 - alpha) * q_s).requires_grad_(True)
                d_hat = _score(discriminator,
                               self.attach_condition(q_hat, image))
                grad, = torch.autograd.grad(
                    d_hat.sum(), q_hat, create_graph=True)
                grad_norm = (grad.flatten(1).pow(2).sum(dim=1) +
                             self.grad_norm_eps).sqrt()
                penalty = (grad_norm - 1).pow(2).mean()
            loss_d = (d_s.mean() - d_t.mean() + self.gp_weight * penalty)
        return dict(
            loss_d=loss_d * self.d_loss_weight,
            wasserstein=(d_t.mean() - d_s.mean()).detach(),
            gradient_penalty=penalty.detach())
