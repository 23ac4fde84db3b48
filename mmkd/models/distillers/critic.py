"""The critic of SKD's holistic term (Liu et al., CVPR 2019): a conditional
WGAN-GP whose discriminator trains beside the student, one component of the
distiller (:class:`~mmkd.models.distillers.SingleTeacherDistiller`)."""
from typing import Any, Dict, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.dist import get_dist_info
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor

from mmkd.utils.config_checks import ConfigValueError


class Critic:
    """The holistic term's side of a training step: the generator term the
    student's loss gets, and the discriminator's own steps after the
    student's.

    The distiller owns the discriminator (a registered submodule: in the
    training checkpoint, resumed with its optimizer state, not in the
    student-only checkpoint) and passes it in, as a model wrapper may have
    wrapped it. One training step with a critic:

    1. teacher forward (no grad) and student forward, taps recording;
    2. student losses + distillation losses; the holistic term is the
       generator's ``-E[D(S)]`` (:meth:`generator_loss`, D frozen);
    3. the student's optimizer step (``optim_wrapper['student']``);
    4. ``n_critic`` × the discriminator's loss on the detached logits and
       its optimizer step (``optim_wrapper['discriminator']``;
       :meth:`discriminator_steps`).

    Args:
        loss_name (str): The holistic term's name in
            ``model.distill_losses``.
        n_critic (int): Discriminator steps per student step.
    """

    def __init__(self, loss_name: str, n_critic: int) -> None:
        self.loss_name, self.n_critic = loss_name, n_critic
        #: set by the distiller's train_step around the student's forward
        self.in_train_step = False
        self._kept: Optional[Tuple[Tensor, Tensor, Optional[Tensor]]] = None

    def generator_loss(self, loss: nn.Module, discriminator: nn.Module,
                       student: Tensor, teacher: Tensor,
                       inputs: Tensor) -> Tensor:
        """The student's holistic term, keeping the detached logits for
        the discriminator's steps.

        Args:
            loss (nn.Module): The holistic loss (``mmkd.HolisticLoss``).
            discriminator (nn.Module): The critic.
            student (Tensor): ``(N, C, H, W)`` student logits.
            teacher (Tensor): ``(N, C, H, W)`` teacher logits.
            inputs (Tensor): ``(N, 3, H', W')`` the batch (the condition
                with ``condition='image'``).
        """
        key = f'model.distill_losses.{self.loss_name}'
        if not self.in_train_step and dist.is_available() \
                and dist.is_initialized():
            raise RuntimeError(
                f"{key}: the holistic term trains a critic in the "
                "distiller's own train_step, which the model wrapper "
                "bypassed. Set model_wrapper_cfg=dict(type='MMSeparate"
                "DistributedDataParallel') (tools/train.py sets it for "
                'configs with model.discriminator).')
        if student.shape[1] != teacher.shape[1]:
            raise ConfigValueError(
                f'{key}.teacher', 'score maps of the classes of the student '
                f'tap ({student.shape[1]}): the discriminator compares them',
                f'{teacher.shape[1]} classes',
                'Tap the logits of models with the same classes.')
        image = inputs if loss.condition == 'image' else None
        self._kept = (student.detach(), teacher.detach(), image)
        return loss.generator_loss(discriminator, student, image)

    def discriminator_steps(self, loss: nn.Module, discriminator: nn.Module,
                            optim_wrapper: OptimWrapper) -> Dict[str, float]:
        """``n_critic`` steps of the discriminator on the logits kept by
        :meth:`generator_loss`.

        Returns:
            dict: ``disc.loss``, ``disc.wasserstein`` (E[D(T)] − E[D(S)])
            and ``disc.gradient_penalty`` of the last step.
        """
        refuse_sync_bn(discriminator)  # e.g. converted by sync_bn
        student, teacher, image = self._kept
        self._kept = None
        for step in range(self.n_critic):
            with optim_wrapper.optim_context(discriminator):
                out = loss.discriminator_loss(
                    discriminator, student, teacher, image,
                    alpha=penalty_alpha(len(student), step, student.device))
            optim_wrapper.update_params(out['loss_d'])
        return {'disc.loss': out['loss_d'].item(),
                'disc.wasserstein': out['wasserstein'].item(),
                'disc.gradient_penalty': out['gradient_penalty'].item()}

    def split_wrappers(self, optim_wrapper: Any
                       ) -> Tuple[OptimWrapper, OptimWrapper]:
        """The student's and the discriminator's optimizer wrappers."""
        if not isinstance(optim_wrapper, OptimWrapperDict) or \
                'discriminator' not in optim_wrapper or \
                'student' not in optim_wrapper:
            found = (sorted(optim_wrapper.keys()) if isinstance(
                optim_wrapper, OptimWrapperDict) else
                     type(optim_wrapper).__name__)
            raise ConfigValueError(
                'optim_wrapper', "'student' and 'discriminator' entries: the "
                f'holistic term (model.distill_losses.{self.loss_name}) '
                'trains a discriminator with its own optimizer', str(found),
                "Use optim_wrapper=dict(constructor='mmkd.DistillerOptim"
                "WrapperConstructor', student=dict(optimizer=...), "
                "discriminator=dict(optimizer=dict(type='SGD', lr=4e-4, "
                'momentum=0.9, weight_decay=5e-4))).')
        return optim_wrapper['student'], optim_wrapper['discriminator']


def penalty_alpha(num: int, critic_step: int, device: Any) -> Tensor:
    """Per-sample interpolation weights ``(num, )`` of the gradient penalty.

    Drawn from a generator seeded by the iteration (a resumed run draws the
    same ones as an uninterrupted run), for the global batch of
    ``num · world_size`` samples; rank ``r`` takes the samples
    ``r, r + world_size, ...`` (how mmengine's distributed samplers deal
    samples), so the weights do not depend on the number of ranks.
    """
    iteration = MessageHub.get_current_instance().get_info('iter') or 0
    generator = torch.Generator().manual_seed(
        1_000_003 * int(iteration) + critic_step)
    rank, world_size = get_dist_info()
    alpha = torch.rand(num * world_size, generator=generator)
    return alpha.view(num, world_size)[:, rank].to(device)


def refuse_sync_bn(discriminator: nn.Module) -> None:
    """Raise if the critic (possibly DDP-wrapped) has a SyncBatchNorm: the
    gradient penalty differentiates the critic twice, and torch has no
    double backward for SyncBatchNorm."""
    module = getattr(discriminator, 'module', discriminator)
    found = [name for name, m in module.named_modules()
             if isinstance(m, nn.SyncBatchNorm) or
             'SyncBatchNorm' in type(m).__name__]
    if found:
        raise ConfigValueError(
            'model.discriminator',
            'a critic without SyncBatchNorm: the gradient penalty '
            'differentiates the critic twice, and torch has no double '
            'backward for SyncBatchNorm',
            f'SyncBatchNorm in {found}',
            "Use norm_cfg=dict(type='GN', ...) or LayerNorm in the critic, "
            'or none (mmkd.SegDiscriminator has none); with sync_bn set, '
            'keep BatchNorm out of the critic.')
