"""A distiller with a critic: the holistic term of SKD (Liu et al., CVPR
2019), a conditional WGAN-GP whose discriminator trains beside the student."""
from typing import Any, Dict, Mapping, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.dist import get_dist_info
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor

from mmkd.registry import MODELS
from mmkd.utils.config_checks import (ConfigValueError, check_positive_int,
                                      config_errors_under, describe)
from .single_teacher_distiller import SingleTeacherDistiller


def _refuse_sync_bn(discriminator: nn.Module) -> None:
    """Raise if the critic (possibly DDP-wrapped) has a SyncBatchNorm."""
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


@MODELS.register_module(name=['CriticDistiller', 'SegmentationDistiller'])
class CriticDistiller(SingleTeacherDistiller):
    """A :class:`SingleTeacherDistiller` that provides a critic: it trains
    the discriminator of a loss that needs one (``distiller_needs =
    ('critic', )``, e.g. ``mmkd.HolisticLoss``). Registered also as
    ``mmkd.SegmentationDistiller``, its earlier name.

    Every other term is an ordinary ``distill_losses`` entry (SKD's
    pixel-wise and pair-wise terms run in the base class). A
    ``mmkd.HolisticLoss`` entry (``student``/``teacher`` logit taps) makes
    this a conditional WGAN-GP: the student's loss gets the adversarial
    term ``-E[D(S)]`` (D frozen), and after each student step the
    discriminator takes ``n_critic`` steps on the detached predictions, with
    its own optimizer. One training step:

    1. teacher forward (no grad) and student forward, taps recording;
    2. student losses + distillation losses (holistic: generator term);
    3. student optimizer step (``optim_wrapper['student']``);
    4. ``n_critic`` × discriminator loss on detached logits, discriminator
       optimizer step (``optim_wrapper['discriminator']``).

    The discriminator is a registered submodule: it is in the training
    checkpoint (and resumes with its optimizer state), not in the student-only
    checkpoint. Logged besides the losses: ``disc.loss``, ``disc.wasserstein``
    (E[D(T)] − E[D(S)]) and ``disc.gradient_penalty``.

    Args:
        discriminator (dict, optional): The discriminator config (e.g.
            ``mmkd.SegDiscriminator``); required with a holistic term.
        n_critic (int): Discriminator steps per student step. Defaults to 1.
        **kwargs: :class:`SingleTeacherDistiller` arguments.

    The optimizer config with a holistic term::

        optim_wrapper = dict(
            constructor='mmkd.DistillerOptimWrapperConstructor',
            student=dict(optimizer=dict(type='SGD', lr=0.01, ...)),
            discriminator=dict(optimizer=dict(type='SGD', lr=4e-4, ...)))

    Distributed training (``--launcher pytorch``): this step is the
    model's own ``train_step``, which mmengine's default DDP wrapper
    bypasses. A holistic distiller therefore runs under
    ``model_wrapper_cfg=dict(type='MMSeparateDistributedDataParallel')``
    (mmengine's wrapper for models with several optimizers, which wraps the
    student, the connectors and the critic each in its own DDP);
    :func:`mmkd.engine.runner_config.prepare_config` (``tools/train.py``)
    sets it for every config with a discriminator, and a step through the
    default wrapper raises a clear error. Both optimizers see gradients
    averaged over the ranks. The gradient penalty's
    ``autograd.grad(create_graph=True)`` runs on each rank's own batch;
    DDP averages the critic's gradients at the backward of its loss. The
    interpolation weights ``alpha`` are drawn for the global batch (the
    samples of all ranks, interleaved as the distributed samplers deal
    them) and each rank takes its own, so ``r`` ranks with batch ``b``
    draw what one process with batch ``r·b`` draws.

    The critic must not contain ``SyncBatchNorm``: torch has no double
    backward for it, and the gradient penalty needs one (a clear error at
    build time, and at the first step if ``sync_bn`` converted it).

    Mixed precision (``--amp``): each optimizer is an ``AmpOptimWrapper``
    with its own loss scaler; the student step runs under autocast. The
    holistic losses compute in fp32 with autocast off, and the gradient
    penalty differentiates the critic's unscaled score (the scaler only
    multiplies the finished critic loss for its backward), so the penalty
    is the same with or without a loss scaler.
    """

    provides = ('critic', )

    def __init__(self,
                 discriminator: Optional[Mapping] = None,
                 n_critic: int = 1,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        holistic = [name for name, loss in self.distill_losses.items()
                    if 'critic' in getattr(loss, 'distiller_needs', ())]
        if len(holistic) > 1:
            raise ConfigValueError(
                'model.distill_losses', 'one term with a critic at most',
                f'{holistic}', 'Keep one holistic term.')
        self.holistic_name = holistic[0] if holistic else None
        if self.holistic_name:
            self._check_holistic_route(self.holistic_name)
        if self.holistic_name and discriminator is None:
            raise ConfigValueError(
                'model.discriminator', 'the config of the critic of '
                f'model.distill_losses.{self.holistic_name}', 'nothing',
                "Give e.g. dict(type='mmkd.SegDiscriminator', "
                'in_channels=num_classes + 3).')
        self.n_critic = check_positive_int(
            n_critic, 'model.n_critic',
            todo='Give the discriminator steps per student step (official: '
            '1).')
        # drawn from a fork of the global generator, as the teacher and the
        # connectors are (see SingleTeacherDistiller)
        with torch.random.fork_rng(devices=[]):
            self.discriminator = None
            if discriminator is not None:
                with config_errors_under('model.discriminator'):
                    self.discriminator = MODELS.build(discriminator)
        if self.discriminator is not None:
            _refuse_sync_bn(self.discriminator)
        self._critic_inputs = None
        self._in_train_step = False

    def _check_holistic_route(self, name: str) -> None:
        """The holistic term is routed by :meth:`compute_loss` itself: the
        student and teacher logit taps as they are, and the batch's inputs
        as the condition."""
        key, route = f'model.distill_losses.{name}', self.loss_routes[name]
        for unused in ('connector', 'extra_inputs'):
            if route[unused]:
                raise ConfigValueError(
                    f'{key}.{unused}',
                    'nothing: the holistic term compares the student and '
                    'teacher logit taps as they are, conditioned on the '
                    "batch's inputs", describe(route[unused]),
                    f'Remove {unused} from the holistic term.')

    def compute_loss(self, name: str, loss: nn.Module,
                     sources: Mapping[str, Any]) -> Tensor:
        if name != self.holistic_name:
            return super().compute_loss(name, loss, sources)
        self._refuse_bypassed_train_step()
        route = self.loss_routes[name]
        student = self.student_taps[route['student']]
        teacher = self.teacher_taps[route['teacher']]
        image = sources['inputs'] if loss.condition == 'image' else None
        if student.shape[1] != teacher.shape[1]:
            raise ValueError(
                f'model.distill_losses.{name}: student tap '
                f"'{route['student']}' has {student.shape[1]} classes, "
                f"teacher tap '{route['teacher']}' {teacher.shape[1]}: the "
                'discriminator compares score maps of the same classes.')
        # kept for the discriminator step(s) that follow the student step
        self._critic_inputs = (student.detach(), teacher.detach(), image)
        return loss.generator_loss(self.discriminator, student, image)

    def train_step(self, data: Any,
                   optim_wrapper: OptimWrapper) -> Dict[str, Tensor]:
        if self.holistic_name is None:
            return super().train_step(data, optim_wrapper)
        student_wrapper, disc_wrapper = self._split_wrappers(optim_wrapper)
        _refuse_sync_bn(self.discriminator)  # e.g. converted by sync_bn
        # 1-3: the student step (teacher, student, distillation losses)
        self._in_train_step = True
        try:
            with student_wrapper.optim_context(self):
                data = self.data_preprocessor(data, True)
                losses = self._run_forward(data, mode='loss')
        finally:
            self._in_train_step = False
        parsed, log_vars = self.parse_losses(losses)
        student_wrapper.update_params(parsed)
        # 4: the discriminator step(s) on detached predictions
        student_logits, teacher_logits, image = self._critic_inputs
        self._critic_inputs = None
        holistic = self.distill_losses[self.holistic_name]
        for step in range(self.n_critic):
            with disc_wrapper.optim_context(self.discriminator):
                out = holistic.discriminator_loss(
                    self.discriminator, student_logits, teacher_logits,
                    image, alpha=self._alpha(len(student_logits), step,
                                             student_logits.device))
            disc_wrapper.update_params(out['loss_d'])
        log_vars.update({
            'disc.loss': out['loss_d'].item(),
            'disc.wasserstein': out['wasserstein'].item(),
            'disc.gradient_penalty': out['gradient_penalty'].item(),
        })
        return log_vars

    def _refuse_bypassed_train_step(self) -> None:
        """Refuse a distributed step that bypassed :meth:`train_step`
        (mmengine's default DDP wrapper computes the losses and calls
        ``parse_losses`` itself), which would leave the critic untrained."""
        if (not self._in_train_step and dist.is_available()
                and dist.is_initialized()):
            raise RuntimeError(
                f'model.distill_losses.{self.holistic_name}: the holistic '
                "term trains a critic in the distiller's own train_step, "
                'which the model wrapper bypassed. Set model_wrapper_cfg='
                "dict(type='MMSeparateDistributedDataParallel') (tools/"
                'train.py sets it for configs with model.discriminator).')

    @staticmethod
    def _alpha(num: int, critic_step: int, device) -> Tensor:
        """Per-sample interpolation weights of the gradient penalty.

        Drawn from a generator seeded by the iteration (a resumed run draws
        the same ones as an uninterrupted run), for the global batch of
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

    def _split_wrappers(self, optim_wrapper: Any):
        if not isinstance(optim_wrapper, OptimWrapperDict) or \
                'discriminator' not in optim_wrapper or \
                'student' not in optim_wrapper:
            found = (sorted(optim_wrapper.keys()) if isinstance(
                optim_wrapper, OptimWrapperDict) else
                     type(optim_wrapper).__name__)
            raise ConfigValueError(
                'optim_wrapper', "'student' and 'discriminator' entries: the "
                f'holistic term (model.distill_losses.{self.holistic_name}) '
                'trains a discriminator with its own optimizer', str(found),
                "Use optim_wrapper=dict(constructor='mmkd.DistillerOptim"
                "WrapperConstructor', student=dict(optimizer=...), "
                "discriminator=dict(optimizer=dict(type='SGD', lr=4e-4, "
                'momentum=0.9, weight_decay=5e-4))).')
        return optim_wrapper['student'], optim_wrapper['discriminator']


#: The earlier name, still registered (``type='mmkd.SegmentationDistiller'``).
SegmentationDistiller = CriticDistiller
