"""The single-teacher distiller: a student, a frozen teacher, taps, connectors
and distillation losses, as one mmengine model. One training step reads top
to bottom in :meth:`SingleTeacherDistiller.loss`."""
import difflib
import inspect
from typing import (Any, Callable, Dict, List, Mapping, Optional, Sequence,
                    Set)

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from torch import Tensor

from mmkd.registry import MODELS
from mmkd.taps import FeatureTaps
from mmkd.taps.levels import pair_levels
from mmkd.utils.config_checks import (ConfigKeyError, ConfigValueError,
                                      check_number, check_positive_int,
                                      config_errors_under, describe)
from mmkd.utils.model_loading import load_model_config, load_weights
from .connector_checks import check_connector_input, check_connector_output
from .critic import Critic, refuse_sync_bn
from .frozen_teacher import (TeacherRun, build_frozen_teacher, build_model,
                             check_data_preprocessor)
from .loss_routes import LossRouteBuilder, build_part
from .plain_student_state import prefix_plain_student_state
from .student_from_teacher import copy_from_teacher, teacher_entries
from .weight_schedule import LossWeightSchedule


def unknown_key_error(cls: type, unknown: Mapping[str, Any]
                      ) -> ConfigKeyError:
    """The error for keys of ``model`` that the distiller ``cls`` does not
    take (e.g. ``teacher_ckpt`` for ``teacher_checkpoint``), naming the
    closest keys it does take."""
    known = sorted({name for klass in cls.__mro__
                    if '__init__' in vars(klass)
                    for name, p in inspect.signature(
                        klass.__init__).parameters.items()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                    and name != 'self'})
    key = sorted(unknown)[0]
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
    return ConfigKeyError(
        f'model.{key}', f'a key of mmkd.{cls.__name__}' + (
            f', e.g. {" or ".join(close)}' if close else ''),
        repr(key), f'{cls.__name__} takes {known}.' + (
            f' Did you mean {close[0]}?' if close else ''))


class ConnectorDict(nn.ModuleDict):
    """The distiller's connectors, called as ``connectors(name, x)``.

    A ``ModuleDict`` has no ``forward``, and a DDP-wrapped one cannot be
    indexed (mmengine's ``MMSeparateDistributedDataParallel`` wraps each
    learnable child of the model); DDP averages gradients only of
    parameters used after a call to its ``forward``. Calling a connector
    through this ``forward`` works the same wrapped or not. State-dict keys
    are those of a ``ModuleDict`` (``connectors.<name>.<param>``).
    """

    def forward(self, name: str, x: Any) -> Any:
        """Connector ``name`` applied to the student tap ``x`` (a tensor or
        one per level)."""
        return self[name](x)


@MODELS.register_module()
class SingleTeacherDistiller(BaseModel):
    """Distil a frozen teacher into a student.

    One training step (:meth:`loss`), top to bottom: the teacher runs
    (:class:`~mmkd.models.distillers.frozen_teacher.TeacherRun`: no grad,
    its precision, the batch renormalised for it) with its taps recording;
    the student computes its task losses with its taps recording; the
    loss inputs that are neither taps nor the batch are computed (e.g.
    :class:`DetectionDistiller`'s imitation masks); each distillation loss
    compares a student tap (through its connector, if any) with a teacher
    tap (:mod:`~mmkd.models.distillers.loss_routes` states the loss protocol
    and checks it at build time). The result is the student's loss dict
    plus ``distill.loss_<name>`` (weighted; mmengine's ``parse_losses`` sums
    every key that contains ``loss``, as mmseg's ``decode.loss_ce``).

    With a critic (SKD's holistic term, ``mmkd.HolisticLoss`` with
    ``discriminator``), :meth:`train_step` then takes the discriminator's
    steps (:class:`~mmkd.models.distillers.critic.Critic`).

    The teacher (:mod:`~mmkd.models.distillers.frozen_teacher`) is not a
    registered submodule: it is not in ``parameters()`` (so not in the
    optimizer or DDP), not in ``state_dict()`` (so not in any checkpoint),
    and ``train()`` never reaches it. It follows the distiller's device and
    dtype moves (``to``/``cuda``/``half``).

    Args:
        student (dict): The complete student model config (normally
            ``{{_base_.model}}``).
        teacher (str | dict): The teacher model: ``'mmseg::path.py'``, a
            local config file, or an inline model config.
        teacher_checkpoint (str, optional): Teacher weights (local path or
            URL). Only tests leave it out.
        student_checkpoint (str, optional): Pretrained student weights,
            loaded in :meth:`init_weights` after the student's own init.
        student_from_teacher (list[str], optional): Module paths of the
            student (e.g. ``['neck', 'bbox_head']``) whose weights start
            from the teacher's (FGD's and MGD's ``init_student``): copied
            in :meth:`init_weights`, after the student's own init and
            ``student_checkpoint``. Every entry under them must have the
            teacher's name and shape (checked when the distiller is built;
            :mod:`~mmkd.models.distillers.student_from_teacher`).
        student_taps (dict): Tap name -> module path in the student, e.g.
            ``dict(logits='decode_head.conv_seg')``.
        teacher_taps (dict): Tap name -> module path in the teacher.
        connectors (dict): Name -> learnable adaptation module config.
        distill_losses (dict): Name -> loss config. Besides the loss's own
            arguments: ``student`` (a student tap name), ``teacher`` (a
            teacher tap name), ``connector`` (optional, applied to the
            student tap first) and ``extra_inputs`` (optional dict: loss
            keyword -> source, a source being ``'inputs'``,
            ``'data_samples'``, ``'student.<tap>'`` or ``'teacher.<tap>'``).
            The loss must be one of mmkd's distillation losses (registered
            in ``mmkd.registry.MODELS``): a task loss such as
            ``mmseg.CrossEntropyLoss`` would take the teacher's tap as
            labels. ``foreign_loss=True`` admits a loss of another package
            that does compare a student and a teacher tensor (e.g.
            ``mmdet.KnowledgeDistillationKLDivLoss``).
        loss_schedules (dict, optional): Loss name -> schedule of its weight
            (see :class:`LossWeightSchedule`), e.g.
            ``dict(imitation=dict(warmup=400))``. The logged
            ``distill.loss_<name>`` has the scheduled factor applied, and
            ``distill_factor.<name>`` is the factor.
        teacher_forward (str): How the teacher runs: ``'tensor'`` (its
            ``_forward``: backbone to head outputs) or ``'extract_feat'``
            (backbone and neck only, cheaper when only those are tapped).
        teacher_precision (str): The teacher's forward precision: ``'auto'``
            (as the step runs: in the autocast of ``--amp``, fp32 without),
            ``'fp32'`` (autocast off, also under ``--amp``), ``'bf16'`` or
            ``'fp16'`` (autocast of that dtype, also without ``--amp``; the
            teacher needs no gradients, so no loss scaler is involved). Its
            taps are then bf16/fp16; the distillation losses compute in fp32.
        min_key_match (float): Refuse a teacher/student checkpoint in which
            fewer than this fraction (in [0, 1]) of the model's entries are
            found.
        data_preprocessor (dict, optional): The student's data preprocessor
            is always used (the teacher sees the same batch, renormalised
            for it where its mean/std or channel order differ). mmengine's
            Runner passes the config's top-level ``data_preprocessor`` here;
            if it differs from ``student.data_preprocessor`` that is an error.
        discriminator (dict, optional): The critic of a loss that needs
            one (``distiller_needs = ('critic', )``: ``mmkd.HolisticLoss``),
            e.g. ``mmkd.SegDiscriminator``; required with such a loss. A
            registered submodule: in the training checkpoint (resumed with
            its optimizer state), not in the student-only checkpoint.
        n_critic (int): Discriminator steps per student step (official: 1).
        init_cfg (dict, optional): Unused by the student; kept for mmengine.

    The optimizer config with a critic::

        optim_wrapper = dict(
            constructor='mmkd.DistillerOptimWrapperConstructor',
            student=dict(optimizer=dict(type='SGD', lr=0.01, ...)),
            discriminator=dict(optimizer=dict(type='SGD', lr=4e-4, ...)))

    Distributed training with a critic (``--launcher pytorch``): its step is
    the model's own :meth:`train_step`, which mmengine's default DDP
    wrapper bypasses, so it runs under ``model_wrapper_cfg=dict(type=
    'MMSeparateDistributedDataParallel')`` (one DDP each for the student,
    the connectors and the critic);
    :func:`mmkd.engine.runner_config.prepare_config` (``tools/train.py``)
    sets it for every config with a discriminator, and a step through the
    default wrapper raises a clear error. The gradient penalty's
    interpolation weights are drawn for the global batch and each rank
    takes its own (:func:`~mmkd.models.distillers.critic.penalty_alpha`),
    so ``r`` ranks with batch ``b`` draw what one process with batch
    ``r·b`` draws. The critic must not contain ``SyncBatchNorm`` (torch has
    no double backward for it). Under ``--amp`` each optimizer has its own
    loss scaler; the holistic losses compute in fp32, and the gradient
    penalty differentiates the critic's unscaled score.
    """

    #: What this distiller gives losses that need its help.
    provides: Sequence[str] = ('critic', )
    #: The non-tap inputs a loss may ask for in ``extra_inputs``.
    extra_sources: Sequence[str] = ('inputs', 'data_samples')

    def __init__(self,
                 student: Mapping,
                 teacher: Any,
                 teacher_checkpoint: Optional[str] = None,
                 student_checkpoint: Optional[str] = None,
                 student_from_teacher: Optional[Sequence[str]] = None,
                 student_taps: Optional[Mapping[str, str]] = None,
                 teacher_taps: Optional[Mapping[str, str]] = None,
                 connectors: Optional[Mapping[str, Mapping]] = None,
                 distill_losses: Optional[Mapping[str, Mapping]] = None,
                 loss_schedules: Optional[Mapping[str, Mapping]] = None,
                 teacher_forward: str = 'tensor',
                 teacher_precision: str = 'auto',
                 min_key_match: float = 0.9,
                 discriminator: Optional[Mapping] = None,
                 n_critic: int = 1,
                 data_preprocessor: Optional[Mapping] = None,
                 init_cfg: Optional[Mapping] = None,
                 **unknown: Any) -> None:
        if unknown:
            raise unknown_key_error(type(self), unknown)
        super().__init__(init_cfg=init_cfg)
        self.min_key_match = check_number(
            min_key_match, 'model.min_key_match', low=0, high=1,
            hint="It is the fraction of the model's entries that a teacher "
            'or student checkpoint must provide, e.g. 0.9 for 90%.')
        student = load_model_config(student, 'model.student')
        check_data_preprocessor(data_preprocessor, student)
        self.student = build_model(student, 'model.student')
        self.data_preprocessor = self.student.data_preprocessor
        self.student_checkpoint = student_checkpoint
        # What is built from here on (teacher, connectors, losses, critic)
        # draws from a fork of the global random generator, so the student's
        # init_weights and training see the stream a plain student model
        # would: a distilled student and the baseline trained with the same
        # seed start from the same weights.
        with torch.random.fork_rng(devices=[]):
            # kept out of nn.Module's registry on purpose (see the class doc)
            object.__setattr__(self, 'teacher', build_frozen_teacher(
                teacher, teacher_checkpoint, self.min_key_match))
            #: the student's entries that start from the teacher's
            self.from_teacher: List[str] = [] if student_from_teacher is \
                None else teacher_entries(self.student, self.teacher,
                                          student_from_teacher)
            self.student_taps = FeatureTaps(
                self.student, student_taps or {}, 'model.student_taps')
            self.teacher_taps = FeatureTaps(
                self.teacher, teacher_taps or {}, 'model.teacher_taps')
            self.teacher_run = TeacherRun(
                self.teacher, teacher_forward, teacher_precision,
                self.teacher_taps.paths.values())
            if teacher_forward == 'extract_feat':
                self.teacher_taps.not_run_hint = (
                    " (teacher_forward='extract_feat' runs the teacher's "
                    "backbone and neck only: a head module needs "
                    "teacher_forward='tensor')")
            self.connectors = ConnectorDict({
                name: build_part(cfg, f'model.connectors.{name}')
                for name, cfg in (connectors or {}).items()})
            routes = LossRouteBuilder(
                self.student_taps, self.teacher_taps, self.connectors,
                self.extra_sources, type(self).__name__, self.provides)
            self.distill_losses = nn.ModuleDict()
            self.loss_routes: Dict[str, Dict[str, Any]] = {}
            for name, cfg in (distill_losses or {}).items():
                self.distill_losses[name], self.loss_routes[name] = \
                    routes.build(name, cfg)
        self.critic = self._build_critic(discriminator, n_critic)
        #: the extra sources some loss asks for
        self.used_sources: Set[str] = {
            source for route in self.loss_routes.values()
            for source in route['extra_inputs'].values()}
        #: extra source -> its value for a batch ``(inputs, data_samples)``
        self.loss_inputs: Dict[str, Callable[[Tensor, list], Any]] = {}
        # losses whose paired levels were logged, whose shapes were checked
        self._reported_level_matches: Set[str] = set()
        self._checked_routes: Set[str] = set()
        self._register_load_state_dict_pre_hook(
            prefix_plain_student_state, with_module=True)
        self.loss_schedules: Dict[str, LossWeightSchedule] = {}
        for name, cfg in (loss_schedules or {}).items():
            key = f'model.loss_schedules.{name}'
            if name not in self.distill_losses:
                raise ConfigKeyError(
                    key, 'the name of a distillation loss, one of '
                    f'{sorted(self.distill_losses)} (model.distill_losses)',
                    repr(name), 'A schedule sets the weight of one loss.')
            with config_errors_under(key):
                self.loss_schedules[name] = LossWeightSchedule(
                    **cfg, key=key)

    def _build_critic(self, discriminator: Optional[Mapping],
                      n_critic: int) -> Optional[Critic]:
        """The critic of the loss that needs one (None without such a
        loss), and ``self.discriminator`` (None without a config)."""
        needing = [name for name, loss in self.distill_losses.items()
                   if 'critic' in getattr(loss, 'distiller_needs', ())]
        if len(needing) > 1:
            raise ConfigValueError(
                'model.distill_losses', 'one term with a critic at most',
                f'{needing}', 'Keep one holistic term.')
        for name in needing:
            route = self.loss_routes[name]
            for unused in ('connector', 'extra_inputs'):
                if route[unused]:
                    raise ConfigValueError(
                        f'model.distill_losses.{name}.{unused}',
                        'nothing: the holistic term compares the student '
                        "and teacher logit taps as they are, conditioned on "
                        "the batch's inputs", describe(route[unused]),
                        f'Remove {unused} from the holistic term.')
            if discriminator is None:
                raise ConfigValueError(
                    'model.discriminator', 'the config of the critic of '
                    f'model.distill_losses.{name}', 'nothing',
                    "Give e.g. dict(type='mmkd.SegDiscriminator', "
                    'in_channels=num_classes + 3).')
        n_critic = check_positive_int(
            n_critic, 'model.n_critic',
            hint='Give the discriminator steps per student step (official: '
            '1).')
        self.discriminator = None
        if discriminator is not None:
            # from its own fork of the global generator, as the teacher's
            with torch.random.fork_rng(devices=[]), \
                    config_errors_under('model.discriminator'):
                self.discriminator = MODELS.build(discriminator)
            refuse_sync_bn(self.discriminator)
        return Critic(needing[0], n_critic) if needing else None

    # ------------------------------------------------------ device & modes
    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self.teacher._apply(fn, *args, **kwargs)
        return self

    def init_weights(self) -> None:
        """Initialise the student (and connectors) only, then load the
        pretrained student if given, then copy the teacher's entries of
        ``student_from_teacher``. The teacher's weights come from
        ``teacher_checkpoint``, never from its ``init_cfg``."""
        if hasattr(self.student, 'init_weights'):
            self.student.init_weights()
        if self.student_checkpoint is not None:
            load_weights(self.student, self.student_checkpoint,
                         'model.student_checkpoint', self.min_key_match)
        if self.from_teacher:
            copy_from_teacher(self.student, self.teacher, self.from_teacher)

    def forward(self,
                inputs: Tensor,
                data_samples: Optional[list] = None,
                mode: str = 'tensor') -> Any:
        """``'loss'``: distillation training step losses; ``'predict'`` and
        ``'tensor'``: the student alone (evaluation sees the student)."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        return self.student(inputs, data_samples, mode=mode)

    # --------------------------------------------------------- the step
    def loss(self, inputs: Tensor, data_samples: list) -> Dict[str, Tensor]:
        """One step's losses: the teacher's forward (no grad, taps
        recording) -> the student's task losses (taps recording) -> each
        distillation loss on its routed inputs.

        Returns:
            dict: The student's losses, ``distill.loss_<name>`` (weighted)
            and ``distill_factor.<name>`` for a scheduled term.
        """
        with self.teacher_taps.recording(), self.student_taps.recording():
            self.teacher_run(inputs, data_samples, self.data_preprocessor)
            # through __call__, so that a DDP-wrapped student syncs gradients
            losses = self.student(inputs, data_samples, mode='loss')
            sources = dict(inputs=inputs, data_samples=data_samples)
            for name, provide in self.loss_inputs.items():
                if name in self.used_sources:
                    sources[name] = provide(inputs, data_samples)
            for name, loss in self.distill_losses.items():
                value = self.compute_loss(name, loss, sources)
                if name in self.loss_schedules:
                    # computed even at factor 0, so that every learnable part
                    # stays in the graph (DDP without find_unused_parameters)
                    factor = self.loss_schedules[name].current_factor()
                    value = value * factor
                    losses[f'distill_factor.{name}'] = value.new_tensor(factor)
                losses[f'distill.loss_{name}'] = value
        return losses

    def compute_loss(self, name: str, loss: nn.Module,
                     sources: Mapping[str, Any]) -> Tensor:
        """Loss ``name`` on its route: ``loss(student, teacher,
        **extra_inputs)``, the student tap through its connector, the levels
        of two multi-level taps paired by stride
        (:func:`~mmkd.taps.levels.pair_levels`); the critic's term
        through the critic."""
        route = self.loss_routes[name]
        student = raw_student = self.student_taps[route['student']]
        teacher = self.teacher_taps[route['teacher']]
        if self.critic is not None and name == self.critic.loss_name:
            return self.critic.generator_loss(loss, self.discriminator,
                                              student, teacher,
                                              sources['inputs'])
        first = name not in self._checked_routes  # shapes: at the first step
        if route['connector'] is not None:
            if first:
                check_connector_input(
                    name, route, student, getattr(
                        self.connectors, 'module',
                        self.connectors)[route['connector']],
                    self.student_taps.paths[route['student']])
            # through __call__ (DDP-wrapped connectors sync gradients)
            student = self.connectors(route['connector'], student)
        kwargs = {k: sources[v] if v in sources else self.tap(v)
                  for k, v in route['extra_inputs'].items()}
        student, teacher, kwargs = pair_levels(
            f'model.distill_losses.{name}', route, raw_student, student,
            teacher, kwargs, sources['inputs'].shape[-2:],
            self._reported_level_matches)
        if first and route['connector'] is not None:
            check_connector_output(name, route, student, teacher)
            self._checked_routes.add(name)
        try:
            return loss(student, teacher, **kwargs)
        except ConfigValueError as e:  # an argument of the loss: its key
            raise e.under(f'model.distill_losses.{name}') from None
        except ValueError as e:
            raise ValueError(f'model.distill_losses.{name}: {e}') from None

    def tap(self, source: str) -> Any:
        """The recorded tensor(s) of ``'student.<tap>'`` or
        ``'teacher.<tap>'``."""
        side, _, tap = source.partition('.')
        return (self.student_taps if side == 'student' else
                self.teacher_taps)[tap]

    @property
    def detector(self) -> nn.Module:
        """The student: what mmdet's hooks that reach into a wrapped
        detector change (``YOLOXModeSwitchHook`` sets
        ``model.detector.bbox_head.use_l1``)."""
        return self.student

    @property
    def teacher_forward(self) -> str:
        """``model.teacher_forward`` (read-only: :attr:`teacher_run`
        runs it)."""
        return self.teacher_run.forward

    @property
    def teacher_precision(self) -> str:
        """``model.teacher_precision`` (read-only: :attr:`teacher_run`
        runs it)."""
        return self.teacher_run.precision

    def run_teacher(self, inputs: Tensor, data_samples: list) -> Any:
        """The teacher's forward of a step, alone (tools and tests)."""
        return self.teacher_run(inputs, data_samples, self.data_preprocessor)

    def train_step(self, data: Any, optim_wrapper: Any) -> Dict[str, Tensor]:
        """mmengine's step; with a critic, the student's step and then the
        discriminator's (:class:`~mmkd.models.distillers.critic.Critic`)."""
        if self.critic is None:
            return super().train_step(data, optim_wrapper)
        student_wrapper, critic_wrapper = self.critic.split_wrappers(
            optim_wrapper)
        self.critic.in_train_step = True
        try:
            with student_wrapper.optim_context(self):
                data = self.data_preprocessor(data, True)
                losses = self._run_forward(data, mode='loss')
        finally:
            self.critic.in_train_step = False
        parsed, log_vars = self.parse_losses(losses)
        student_wrapper.update_params(parsed)
        log_vars.update(self.critic.discriminator_steps(
            self.distill_losses[self.critic.loss_name], self.discriminator,
            critic_wrapper))
        return log_vars
