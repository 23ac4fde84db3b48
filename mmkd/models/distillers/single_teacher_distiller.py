"""The single-teacher distiller: a student, a frozen teacher, taps, connectors
and distillation losses, as one mmengine model. One training step reads top
to bottom in :meth:`SingleTeacherDistiller.loss`."""
from typing import (Any, ContextManager, Dict, Mapping, Optional, Sequence,
                    Tuple)

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModel
from torch import Tensor

from mmkd.models.connectors.connector_dict import ConnectorDict
from mmkd.registry import MODELS
from mmkd.taps import FeatureTaps, inputs_of_levels
from mmkd.taps.level_matching import (describe_strides, level_strides,
                                      match_levels, unpaired)
from mmkd.utils.config_checks import (ConfigKeyError, check_number,
                                      config_errors_under)
from mmkd.utils.model_loading import load_model_config, load_weights
from .frozen_teacher import (build_frozen_teacher, build_model,
                             check_data_preprocessor, check_teacher_run,
                             renormalise_for_teacher, teacher_autocast)
from .loss_routes import (LossRouteBuilder, build_part,
                          check_connector_input, check_connector_output)
from .plain_student_state import prefix_plain_student_state
from .weight_schedule import LossWeightSchedule


@MODELS.register_module()
class SingleTeacherDistiller(BaseModel):
    """Distil a frozen teacher into a student.

    One training step (:meth:`loss`), top to bottom: the teacher runs under
    ``torch.no_grad()`` with its taps recording; the student computes its
    task losses with its taps recording; connectors adapt student taps; each
    distillation loss compares a student tap with a teacher tap
    (:mod:`~mmkd.models.distillers.loss_routes` states the loss protocol and
    checks it at build time). The result is the student's loss dict plus
    ``distill.loss_<name>`` (weighted; mmengine's ``parse_losses`` sums every
    key that contains ``loss``, as mmseg's ``decode.loss_ce``).

    Extension points a subclass overrides (as mmengine's ``BaseModel``
    lists its own), each called from :meth:`loss` or :meth:`train_step`:

    - :attr:`provides`: what the distiller gives losses that need its help
      (a loss's ``distiller_needs``; e.g. :class:`CriticDistiller` provides
      ``'critic'`` for ``mmkd.HolisticLoss``), which it routes itself;
    - :meth:`extra_sources`: the names of the non-tap inputs a loss may ask
      for in ``extra_inputs`` (checked at build time);
    - :meth:`collect_sources`: their values for one batch (e.g.
      :class:`DetectionDistiller` adds ``'imitation_masks'``);
    - :meth:`compute_loss`: how one loss is called with its routed inputs;
    - :meth:`run_teacher`: how far the teacher runs to fill its taps;
    - :meth:`train_step` (mmengine's): the optimizer step(s), e.g. a
      critic's steps with an ``OptimWrapperDict``.

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
        init_cfg (dict, optional): Unused by the student; kept for mmengine.
    """

    #: What this distiller gives losses that need its help (none here).
    provides: Sequence[str] = ()

    def __init__(self,
                 student: Mapping,
                 teacher: Any,
                 teacher_checkpoint: Optional[str] = None,
                 student_checkpoint: Optional[str] = None,
                 student_taps: Optional[Mapping[str, str]] = None,
                 teacher_taps: Optional[Mapping[str, str]] = None,
                 connectors: Optional[Mapping[str, Mapping]] = None,
                 distill_losses: Optional[Mapping[str, Mapping]] = None,
                 loss_schedules: Optional[Mapping[str, Mapping]] = None,
                 teacher_forward: str = 'tensor',
                 teacher_precision: str = 'auto',
                 min_key_match: float = 0.9,
                 data_preprocessor: Optional[Mapping] = None,
                 init_cfg: Optional[Mapping] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.min_key_match = check_number(
            min_key_match, 'model.min_key_match', low=0, high=1,
            todo="It is the fraction of the model's entries that a teacher "
            'or student checkpoint must provide, e.g. 0.9 for 90%.')
        check_teacher_run(teacher_forward, teacher_precision)
        self.teacher_forward = teacher_forward
        self.teacher_precision = teacher_precision
        student = load_model_config(student, 'model.student')
        check_data_preprocessor(data_preprocessor, student)
        self.student = build_model(student, 'model.student')
        self.data_preprocessor = self.student.data_preprocessor
        self.student_checkpoint = student_checkpoint
        # What is built from here on (teacher, connectors, losses) draws from
        # a fork of the global random generator, so the student's
        # init_weights and training see the stream a plain student model
        # would: a distilled student and the baseline trained with the same
        # seed start from the same weights.
        with torch.random.fork_rng(devices=[]):
            # kept out of nn.Module's registry on purpose (see the class doc)
            object.__setattr__(self, 'teacher', build_frozen_teacher(
                teacher, teacher_checkpoint, self.min_key_match))
            self.student_taps = FeatureTaps(
                self.student, student_taps or {}, 'model.student_taps')
            self.teacher_taps = FeatureTaps(
                self.teacher, teacher_taps or {}, 'model.teacher_taps')
            self.connectors = ConnectorDict({
                name: build_part(cfg, f'model.connectors.{name}')
                for name, cfg in (connectors or {}).items()})
            routes = LossRouteBuilder(
                self.student_taps, self.teacher_taps, self.connectors,
                self.extra_sources(), type(self).__name__, self.provides)
            self.distill_losses = nn.ModuleDict()
            self.loss_routes: Dict[str, Dict[str, Any]] = {}
            for name, cfg in (distill_losses or {}).items():
                self.distill_losses[name], self.loss_routes[name] = \
                    routes.build(name, cfg)
        # losses whose paired levels were logged (match_levels)
        self._reported_level_matches = set()
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

    def extra_sources(self) -> Sequence[str]:
        """Names of non-tap inputs a loss can ask for in ``extra_inputs``."""
        return ('inputs', 'data_samples')

    # ------------------------------------------------------ device & modes
    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self.teacher._apply(fn, *args, **kwargs)
        return self

    def init_weights(self) -> None:
        """Initialise the student (and connectors) only, then load the
        pretrained student if given. The teacher's weights come from
        ``teacher_checkpoint``, never from its ``init_cfg``."""
        if hasattr(self.student, 'init_weights'):
            self.student.init_weights()
        if self.student_checkpoint is not None:
            load_weights(self.student, self.student_checkpoint,
                         'model.student_checkpoint', self.min_key_match)

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
        """Teacher forward (no grad) -> student task losses -> connectors
        -> distillation losses."""
        with self.teacher_taps.recording(), self.student_taps.recording():
            with torch.no_grad(), self.teacher_autocast(inputs):
                self.run_teacher(inputs, data_samples)
            # through __call__, so that a DDP-wrapped student syncs gradients
            losses = self.student(inputs, data_samples, mode='loss')
            losses.update(self.distill_step(inputs, data_samples))
        return losses

    def teacher_autocast(self, inputs: Tensor) -> ContextManager:
        """The autocast context of the teacher's forward
        (``teacher_precision``) on the device of ``inputs``."""
        return teacher_autocast(self.teacher_precision, inputs.device.type)

    def run_teacher(self, inputs: Tensor, data_samples: list) -> Any:
        """Run the frozen teacher far enough to fill its taps."""
        inputs = self.teacher_inputs(inputs)
        if self.teacher_forward == 'extract_feat':
            return self.teacher.extract_feat(inputs)
        return self.teacher(inputs, data_samples, mode='tensor')

    def teacher_inputs(self, inputs: Tensor) -> Tensor:
        """The student's ``(N, 3, H, W)`` batch as the teacher's data
        preprocessor would have made it."""
        return renormalise_for_teacher(
            inputs, self.data_preprocessor,
            getattr(self.teacher, 'data_preprocessor', None))

    def distill_step(self, inputs: Tensor,
                     data_samples: list) -> Dict[str, Tensor]:
        """Compute every distillation loss from the recorded taps.

        Returns:
            dict: ``distill.loss_<name>`` -> weighted loss (and
            ``distill_factor.<name>`` for a scheduled one).
        """
        sources = self.collect_sources(inputs, data_samples)
        losses = {}
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

    def collect_sources(self, inputs: Tensor,
                        data_samples: list) -> Dict[str, Any]:
        """Non-tap inputs the losses may ask for (``extra_inputs``)."""
        return dict(inputs=inputs, data_samples=data_samples)

    def resolve(self, source: str, sources: Mapping[str, Any]) -> Any:
        """The tensor(s) a route names: a tap or an extra source."""
        if source in sources:
            return sources[source]
        side, _, tap = source.partition('.')
        return (self.student_taps if side == 'student' else
                self.teacher_taps)[tap]

    def compute_loss(self, name: str, loss: nn.Module,
                     sources: Mapping[str, Any]) -> Tensor:
        """Route the recorded tensors of loss ``name`` into it:
        ``loss(student, teacher, **extra_inputs)``, the levels of two
        multi-level taps paired by stride (:meth:`match_levels`)."""
        route = self.loss_routes[name]
        student = raw_student = self.student_taps[route['student']]
        teacher = self.teacher_taps[route['teacher']]
        if route['connector'] is not None:
            connectors = getattr(self.connectors, 'module', self.connectors)
            check_connector_input(
                name, route, student, connectors[route['connector']],
                self.student_taps.paths[route['student']])
            # through __call__ (DDP-wrapped connectors sync gradients)
            student = self.connectors(route['connector'], student)
        kwargs = {k: self.resolve(v, sources)
                  for k, v in route['extra_inputs'].items()}
        student, teacher, kwargs = self.match_levels(
            name, raw_student, student, teacher, kwargs,
            sources['inputs'].shape[-2:])
        if route['connector'] is not None:
            check_connector_output(name, route, student, teacher)
        try:
            return loss(student, teacher, **kwargs)
        except ValueError as e:
            raise ValueError(f'model.distill_losses.{name}: {e}') from None

    def match_levels(self, name: str, raw_student: Any, student: Any,
                     teacher: Any, kwargs: Dict[str, Any],
                     input_size: Sequence[int]) -> Tuple[Any, Any, dict]:
        """Pair the levels of a multi-level student tap and teacher tap by
        their strides, measured on this batch
        (:mod:`mmkd.taps.level_matching`): taps of the same strides are
        left as they are; otherwise the levels of a stride found on both
        sides are kept, in the student's order, the others are named in the
        log (once per loss), and no common stride is an error. An extra
        input with one tensor per student level (e.g. the imitation masks
        of ``mask_tap``) keeps the student's levels.

        Args:
            name (str): The loss.
            raw_student: The student tap before its connector (its maps
                give the strides).
            student: The student tap after its connector.
            teacher: The teacher tap.
            kwargs (dict): The loss's extra inputs.
            input_size (Sequence[int]): ``(H, W)`` of the batch.

        Returns:
            tuple: ``student``, ``teacher`` and ``kwargs`` of the paired
            levels.
        """
        if isinstance(raw_student, Tensor) or isinstance(teacher, Tensor) \
                or isinstance(student, Tensor):
            return student, teacher, kwargs
        route = self.loss_routes[name]
        what = (f"model.distill_losses.{name}: student tap "
                f"'{route['student']}' and teacher tap '{route['teacher']}'")
        s_strides = level_strides(raw_student, input_size)
        t_strides = level_strides(teacher, input_size)
        if s_strides == t_strides:
            return student, teacher, kwargs
        s_idx, t_idx = match_levels(s_strides, t_strides, what)
        if not s_idx:
            raise ValueError(
                f'{what} have no level of the same stride (student strides '
                f'{describe_strides(s_strides)}, teacher strides '
                f'{describe_strides(t_strides)}, measured on a '
                f'{tuple(input_size)} batch): tap feature maps of the same '
                'strides in both models (e.g. the FPN levels both have).')
        if name not in self._reported_level_matches:
            self._reported_level_matches.add(name)
            left = [f'{side} levels {levels} (strides {strides})'
                    for side, levels, strides in (
                        ('student', ) + unpaired(s_strides, s_idx),
                        ('teacher', ) + unpaired(t_strides, t_idx))
                    if levels]
            print_log(
                f'{what}: levels paired by stride '
                f'({describe_strides([s_strides[i] for i in s_idx])}); '
                f"not distilled: {'; '.join(left)}.", logger='current')
        kwargs = inputs_of_levels(kwargs, len(raw_student), s_idx)
        return (type(student)(student[i] for i in s_idx),
                type(teacher)(teacher[j] for j in t_idx), kwargs)
