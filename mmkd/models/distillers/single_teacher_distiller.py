"""The single-teacher distiller: a student, a frozen teacher, taps, connectors
and distillation losses, as one mmengine model."""
import contextlib
import inspect
import types
from typing import (Any, ContextManager, Dict, List, Mapping, Optional,
                    Sequence, Union)

import torch
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from mmengine.model import BaseModel
from torch import Tensor

from mmkd.models.connectors.connector_dict import ConnectorDict
from mmkd.models.losses.holistic import HolisticLoss
from mmkd.registry import MODELS
from mmkd.utils.config_checks import ConfigValueError, check_number, describe
from mmkd.utils.feature_taps import FeatureTaps
from mmkd.utils.model_loading import load_model_config, load_weights
from .weight_schedule import LossWeightSchedule

ROUTING_KEYS = ('student', 'teacher', 'connector', 'extra_inputs')
#: ``teacher_precision`` -> autocast dtype (None: the step's own context)
TEACHER_PRECISIONS = {'auto': None, 'fp32': torch.float32,
                      'bf16': torch.bfloat16, 'fp16': torch.float16}


def _freeze(model: nn.Module) -> None:
    """Put every module of ``model`` in eval mode for good (dropout and
    drop-path too) and stop its gradients."""
    model.eval()
    model.requires_grad_(False)
    for module in model.modules():
        # model.train() on the teacher, or any of its parts, is a no-op.
        module.train = types.MethodType(lambda self, mode=True: self, module)


def _channels(x: Any) -> Any:
    """Channel count(s) of a tap: ``x.shape[1]`` per map."""
    if isinstance(x, Tensor):
        return x.shape[1] if x.dim() > 1 else None
    return tuple(_channels(level) for level in x)


def _shapes(x: Any) -> Any:
    if isinstance(x, Tensor):
        return tuple(x.shape)
    return [_shapes(level) for level in x]


@MODELS.register_module()
class SingleTeacherDistiller(BaseModel):
    """Distil a frozen teacher into a student.

    One training step (:meth:`loss`), top to bottom: the teacher runs under
    ``torch.no_grad()`` with its taps recording; the student computes its
    task losses with its taps recording; connectors adapt student taps; each
    distillation loss compares a student tap with a teacher tap. The result
    is the student's loss dict plus ``distill.<name>`` (weighted) entries.

    The loss protocol: every distillation loss is called
    ``loss(student_tap, teacher_tap, **extra_inputs)``, the student tap
    (after its connector, if any) and the teacher tap positionally, in this
    order, and each ``extra_inputs`` entry as a keyword argument. This is
    checked against the loss's ``forward`` signature when the distiller is
    built (:meth:`_check_loss_inputs`), and a loss that does not follow it
    is refused there with the distiller to use instead (e.g.
    ``mmkd.HolisticLoss``, which trains a discriminator, needs
    :class:`SegmentationDistiller`).

    Extension points a subclass overrides (as mmengine's ``BaseModel``
    lists its own), each called from :meth:`loss` or :meth:`train_step`:

    - :meth:`extra_sources`: the names of the non-tap inputs a loss may ask
      for in ``extra_inputs`` (checked at build time);
    - :meth:`collect_sources`: their values for one batch (e.g.
      :class:`DetectionDistiller` adds ``'imitation_masks'``);
    - :meth:`compute_loss`: how one loss is called with its routed inputs
      (e.g. :class:`SegmentationDistiller` calls the holistic term with its
      discriminator);
    - :meth:`_check_loss_inputs`: the build-time check of a loss's inputs,
      for a subclass that routes some loss itself;
    - :meth:`run_teacher`: how far the teacher runs to fill its taps;
    - :meth:`train_step` and :meth:`parse_losses` (mmengine's): the
      optimizer step(s) and the logged values, e.g. the discriminator's
      steps with an ``OptimWrapperDict``.

    The teacher is not a registered submodule: it is not in ``parameters()``
    (so not in the optimizer or DDP), not in ``state_dict()`` (so not in any
    checkpoint), and ``train()`` never reaches it. It follows the distiller's
    device and dtype moves (``to``/``cuda``/``half``).

    Args:
        student (dict): The complete student model config (normally
            ``{{_base_.model}}``).
        teacher (str | dict): The teacher model: ``'mmseg::path.py'``, a
            local config file, or an inline model config.
        teacher_checkpoint (str, optional): Teacher weights (local path or
            URL). Only tests leave it out (a random teacher is then logged as
            a warning).
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
            The loss is called ``loss(student, teacher, **extra_inputs)``;
            all of this, and ``loss_weight`` (a finite number >= 0), is
            checked when the distiller is built. The loss must be one of
            mmkd's distillation losses (a class registered in
            ``mmkd.registry.MODELS``): a task loss such as
            ``mmseg.CrossEntropyLoss`` would take the teacher's tap as
            labels. ``foreign_loss=True`` admits a loss of another package
            that does compare a student and a teacher tensor (e.g.
            ``mmdet.KnowledgeDistillationKLDivLoss``).
        loss_schedules (dict, optional): Loss name -> schedule of its weight
            (see :class:`LossWeightSchedule`), e.g.
            ``dict(imitation=dict(warmup=400))``. The logged
            ``distill.<name>`` is the loss with the scheduled factor applied,
            and ``distill_factor.<name>`` the factor.
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
            is always used (the teacher sees the same batch). mmengine's
            Runner passes the config's top-level ``data_preprocessor`` here;
            if it differs from ``student.data_preprocessor`` that is an error
            (e.g. a crop size changed in one place only).
        init_cfg (dict, optional): Unused by the student; kept for mmengine.
    """

    def __init__(self,
                 student: Mapping,
                 teacher: Union[str, Mapping],
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
        min_key_match = check_number(
            min_key_match, 'model.min_key_match', low=0, high=1,
            todo="It is the fraction of the model's entries that a teacher "
            'or student checkpoint must provide, e.g. 0.9 for 90%.')
        student = load_model_config(student, 'model.student')
        self._check_data_preprocessor(data_preprocessor, student)
        self.student = self._build(student, 'model.student')
        self.data_preprocessor = self.student.data_preprocessor
        # What is built from here on (teacher, connectors, losses) draws from
        # the global random generator; its state is put back at the end, so
        # the student's init_weights and training see the stream a plain
        # student model would. A distilled student and the baseline trained
        # with the same seed then start from the same weights: their
        # difference is the distillation's, not the initialisation's.
        rng_after_student = torch.get_rng_state()
        teacher_model = self._build(
            load_model_config(teacher, 'model.teacher'), 'model.teacher')
        if teacher_checkpoint is not None:
            load_weights(teacher_model, teacher_checkpoint,
                         'model.teacher_checkpoint', min_key_match)
        else:
            print_log(
                'model.teacher_checkpoint is not set: distilling from a '
                'randomly initialised teacher (only meaningful in tests).',
                logger='current', level=30)
        _freeze(teacher_model)
        # Kept out of nn.Module's registry on purpose (see the class doc).
        object.__setattr__(self, 'teacher', teacher_model)
        self.student_checkpoint = student_checkpoint
        self.min_key_match = min_key_match

        if teacher_forward not in ('tensor', 'extract_feat'):
            raise ValueError(
                "model.teacher_forward: expected 'tensor' or 'extract_feat', "
                f'found {teacher_forward!r}.')
        self.teacher_forward = teacher_forward
        if teacher_precision not in TEACHER_PRECISIONS:
            raise ConfigValueError(
                'model.teacher_precision',
                f'one of {list(TEACHER_PRECISIONS)}',
                describe(teacher_precision),
                "'bf16' or 'fp16' run the teacher under autocast, 'fp32' "
                "without, 'auto' as the training step runs.")
        self.teacher_precision = teacher_precision
        self.student_taps = FeatureTaps(self.student, student_taps or {},
                                        'model.student_taps')
        self.teacher_taps = FeatureTaps(self.teacher, teacher_taps or {},
                                        'model.teacher_taps')
        self.connectors = ConnectorDict({
            name: self._build_part(cfg, f'model.connectors.{name}')
            for name, cfg in (connectors or {}).items()
        })
        self.distill_losses = nn.ModuleDict()
        self.loss_routes: Dict[str, Dict[str, Any]] = {}
        for name, cfg in (distill_losses or {}).items():
            self._add_loss(name, cfg)
        # load_from / load_state_dict also accept a plain student checkpoint
        self._register_load_state_dict_pre_hook(self._plain_student_state)
        self.loss_schedules: Dict[str, LossWeightSchedule] = {}
        for name, cfg in (loss_schedules or {}).items():
            key = f'model.loss_schedules.{name}'
            if name not in self.distill_losses:
                raise KeyError(
                    f"{key}: there is no distillation loss named '{name}'; "
                    f'model.distill_losses defines {sorted(self.distill_losses)}.')
            self.loss_schedules[name] = LossWeightSchedule(**cfg, key=key)
        torch.set_rng_state(rng_after_student)

    # ------------------------------------------------------------ building
    @staticmethod
    def _build(cfg: ConfigDict, key: str) -> nn.Module:
        from mmengine.registry import MODELS as ROOT_MODELS
        try:
            return ROOT_MODELS.build(cfg)
        except KeyError as e:
            raise KeyError(
                f"{key}: cannot build type '{cfg.get('type')}' ({e}). A model "
                "of another package builds in that package's scope: inherit "
                "it from a package config (_base_ = 'mmseg::...'), set "
                "default_scope, or give _scope_='mmseg' (or 'mmdet') in the "
                'model dict.') from None

    @staticmethod
    def _check_data_preprocessor(given: Optional[Mapping],
                                 student: Mapping) -> None:

        def plain(cfg):
            cfg = dict(cfg or {})
            cfg.pop('_scope_', None)
            return {k: (list(v) if isinstance(v, tuple) else v)
                    for k, v in cfg.items()}

        own = student.get('data_preprocessor')
        if given is None or own is None or plain(given) == plain(own):
            return
        diff = {k: (plain(given).get(k), plain(own).get(k))
                for k in set(plain(given)) | set(plain(own))
                if plain(given).get(k) != plain(own).get(k)}
        raise ValueError(
            'model.data_preprocessor differs from '
            f'model.student.data_preprocessor in {diff} (given, student). '
            "mmengine's Runner passes the config's top-level "
            'data_preprocessor to the model, and the distiller feeds teacher '
            'and student with the student\'s. Make them equal, e.g. '
            'data_preprocessor = dict(size=crop_size) at the top level and '
            'model.data_preprocessor = data_preprocessor in the student '
            'config.')

    @staticmethod
    def _build_part(cfg: Mapping, key: str) -> nn.Module:
        """Build a loss or connector; its argument errors name ``key``."""
        try:
            return MODELS.build(cfg)
        except ConfigValueError as e:
            raise e.under(key) from None
        except (ValueError, TypeError) as e:
            raise type(e)(f'{key}: {e}') from None

    def _add_loss(self, name: str, cfg: Mapping) -> None:
        """Build distillation loss ``name`` and check, before any step, its
        routing, its class, its ``loss_weight`` and that its ``forward``
        takes the inputs routed to it."""
        key = f'model.distill_losses.{name}'
        cfg = dict(cfg)
        route = {k: cfg.pop(k, None) for k in ROUTING_KEYS}
        foreign = cfg.pop('foreign_loss', False)
        if not isinstance(foreign, bool):
            raise ConfigValueError(f'{key}.foreign_loss', 'True or False',
                                   describe(foreign))
        self._check_route(key, route)
        loss_type = cfg.get('type')
        try:
            loss = self._build_part(cfg, key)
        except KeyError as e:
            if isinstance(loss_type, str) and MODELS.get(loss_type) is None:
                raise KeyError(
                    f"{key}.type: '{loss_type}' is not a registered loss. "
                    f'mmkd losses: {self._registered_losses()}. Custom losses '
                    'need @MODELS.register_module() and custom_imports.') \
                    from None
            raise
        if not foreign and not self._is_distill_loss(loss):
            cls = type(loss)
            raise ConfigValueError(
                f'{key}.type',
                f"one of mmkd's distillation losses "
                f'{self._registered_losses()}',
                f'{describe(loss_type)}, a {cls.__module__}.'
                f'{cls.__qualname__}',
                'A task loss (e.g. mmseg.CrossEntropyLoss, mmdet.L1Loss) '
                "takes (prediction, labels) and would use the teacher's tap "
                'as labels. Use an mmkd loss or register your own '
                'distillation loss with mmkd.registry.MODELS; only if this '
                'loss does compare a student tensor with a teacher tensor '
                '(e.g. mmdet.KnowledgeDistillationKLDivLoss), set '
                f'{key}.foreign_loss=True.')
        if hasattr(loss, 'loss_weight'):
            check_number(
                loss.loss_weight, f'{key}.loss_weight', low=0,
                todo='It multiplies the term, e.g. loss_weight=1.0 (0 '
                'switches it off).')
        self._check_loss_inputs(key, loss, route)
        self.distill_losses[name] = loss
        self.loss_routes[name] = route

    def _check_route(self, key: str, route: Dict[str, Any]) -> None:
        """Check the routing keys of one loss against the taps and
        connectors (``extra_inputs`` becomes a dict)."""
        for field, what, names, where in (
                ('student', 'student tap', self.student_taps.paths,
                 'model.student_taps'),
                ('teacher', 'teacher tap', self.teacher_taps.paths,
                 'model.teacher_taps'),
                ('connector', 'connector', self.connectors,
                 'model.connectors')):
            value, names = route[field], sorted(names)
            if field == 'connector' and value is None:
                continue  # the one optional route
            if not isinstance(value, str):
                raise ConfigValueError(
                    f'{key}.{field}',
                    f'the name of a {what}, one of {names} ({where})',
                    'nothing' if value is None else describe(value),
                    'Every distillation loss compares a student tap with a '
                    f'teacher tap: set {field}=<tap name>.'
                    if field != 'connector' else '')
            if value not in names:
                raise KeyError(f"{key}.{field}: no {what} named '{value}'; "
                               f'{where} defines {names}.')
        extra = route['extra_inputs']
        if extra is not None and not isinstance(extra, Mapping):
            raise ConfigValueError(
                f'{key}.extra_inputs',
                'a dict: loss argument -> source, or None', describe(extra))
        route['extra_inputs'] = dict(extra or {})
        for kwarg, source in route['extra_inputs'].items():
            self._check_source(source, f'{key}.extra_inputs.{kwarg}')

    def _check_loss_inputs(self, key: str, loss: nn.Module,
                           route: Mapping[str, Any]) -> None:
        """Check that ``loss.forward`` takes what :meth:`compute_loss` gives
        it: the student tap and the teacher tap (positionally, in this
        order), and ``extra_inputs`` as keyword arguments."""
        if isinstance(loss, HolisticLoss):
            raise ValueError(
                f"{key}.type: 'mmkd.HolisticLoss' trains a discriminator, "
                f'which {type(self).__name__} has not: use '
                "type='mmkd.SegmentationDistiller' with model.discriminator.")
        signature = inspect.signature(loss.forward)
        params = list(signature.parameters.values())
        kind = inspect.Parameter
        positional = [p for p in params
                      if p.kind in (kind.POSITIONAL_ONLY,
                                    kind.POSITIONAL_OR_KEYWORD)]
        takes_any = {p.kind for p in params} & {kind.VAR_POSITIONAL,
                                                kind.VAR_KEYWORD}
        plain = signature.replace(
            parameters=[p.replace(annotation=p.empty) for p in params],
            return_annotation=signature.empty)
        described = f'{type(loss).__name__}.forward{plain}'
        if len(positional) < 2 and kind.VAR_POSITIONAL not in takes_any:
            raise ConfigValueError(
                f'{key}.type',
                'a loss whose forward takes the student tap and the teacher '
                'tap', f'{described}, which takes {len(positional)} '
                'positional inputs',
                f"Use one of mmkd's distillation losses "
                f'{self._registered_losses()}.')
        taps = {p.name for p in positional[:2]}
        keywords = {p.name for p in params if p.name not in taps and p.kind in
                    (kind.POSITIONAL_OR_KEYWORD, kind.KEYWORD_ONLY)}
        extra = route['extra_inputs']
        for kwarg in extra:
            if kwarg not in keywords and kind.VAR_KEYWORD not in takes_any:
                raise ConfigValueError(
                    f'{key}.extra_inputs.{kwarg}',
                    f'an argument of {described} besides the student and '
                    f'teacher inputs {sorted(taps)}', repr(kwarg),
                    'The student and teacher inputs come from student= and '
                    'teacher=; remove or rename this entry.')
        missing = [p.name for p in params
                   if p.default is kind.empty and p.name not in taps and
                   p.name not in extra and
                   p.kind not in (kind.VAR_POSITIONAL, kind.VAR_KEYWORD)]
        if missing:
            raise ConfigValueError(
                f'{key}.extra_inputs',
                f'a source for every input of {described} besides the '
                'student and teacher taps', f'nothing for {missing}',
                f'Add extra_inputs=dict({missing[0]}=<source>), a source '
                f'being one of {sorted(self.extra_sources())}, '
                "'student.<tap>' or 'teacher.<tap>'.")

    @staticmethod
    def _registered_losses() -> List[str]:
        return sorted(n for n in MODELS.module_dict if n.endswith('Loss'))

    @staticmethod
    def _is_distill_loss(loss: nn.Module) -> bool:
        """Whether ``loss`` is one of mmkd's distillation losses: its class
        is registered in mmkd's registry (a user's own distillation loss
        too) or derives from an mmkd loss."""
        own = MODELS.module_dict
        return type(loss) in own.values() or isinstance(
            loss, tuple(c for n, c in own.items() if n.endswith('Loss')))

    def _check_source(self, source: str, key: str) -> None:
        side, _, tap = str(source).partition('.')
        ok = isinstance(source, str) and (
            source in self.extra_sources() or
            (side == 'student' and tap in self.student_taps) or
            (side == 'teacher' and tap in self.teacher_taps))
        if not ok:
            raise KeyError(
                f'{key}: unknown source {source!r}. Expected one of '
                f'{sorted(self.extra_sources())}, student.<tap> or '
                'teacher.<tap> with a tap of model.student_taps/teacher_taps.')

    def _plain_student_state(self, state_dict: dict, prefix: str,
                             *args) -> None:
        """Prefix a plain student state dict with ``student.`` (so
        mmengine's ``load_from`` can start from a pretrained student)."""
        own = tuple(f'{prefix}{name}.' for name, _ in self.named_children())
        if any(key.startswith(own) for key in state_dict):
            return
        student_keys = set(self.student.state_dict())
        plain = [k for k in state_dict if k[len(prefix):] in student_keys]
        for key in plain:
            state_dict[f'{prefix}student.{key[len(prefix):]}'] = \
                state_dict.pop(key)
        if plain:
            print_log(
                f'Loading a plain student checkpoint ({len(plain)} entries) '
                'into the distiller\'s student.', logger='current')

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

    def parse_losses(self, losses: Dict[str, Any]):
        """mmengine sums the entries whose key contains ``'loss'``; the
        ``distill.<name>`` entries are losses too."""
        renamed = {(f'loss:{k}' if k.startswith('distill.') else k): v
                   for k, v in losses.items()}
        total, log_vars = super().parse_losses(renamed)
        log_vars = type(log_vars)(
            (k[len('loss:'):] if k.startswith('loss:distill.') else k, v)
            for k, v in log_vars.items())
        return total, log_vars

    def teacher_autocast(self, inputs: Tensor) -> ContextManager:
        """The autocast context of the teacher's forward
        (``teacher_precision``) on the device of ``inputs``."""
        if self.teacher_precision == 'auto':
            return contextlib.nullcontext()
        dtype = TEACHER_PRECISIONS[self.teacher_precision]
        return torch.autocast(device_type=inputs.device.type, dtype=dtype,
                              enabled=dtype is not torch.float32)

    def run_teacher(self, inputs: Tensor, data_samples: list) -> Any:
        """Run the frozen teacher far enough to fill its taps."""
        inputs = self.teacher_inputs(inputs)
        if self.teacher_forward == 'extract_feat':
            return self.teacher.extract_feat(inputs)
        return self.teacher(inputs, data_samples, mode='tensor')

    def teacher_inputs(self, inputs: Tensor) -> Tensor:
        """The student's preprocessed batch, re-normalised for the teacher
        when the two data preprocessors differ in mean/std or channel order
        (e.g. a Caffe-style teacher for a PyTorch-style student).

        Args:
            inputs (Tensor): ``(N, 3, H, W)`` as the student's preprocessor
                made it.

        Returns:
            Tensor: ``(N, 3, H, W)`` as the teacher's preprocessor would
            have made it (padding aside).
        """
        student, teacher = self.data_preprocessor, getattr(
            self.teacher, 'data_preprocessor', None)
        if teacher is None or not hasattr(teacher, '_enable_normalize'):
            return inputs

        def convention(p):
            swap = bool(getattr(p, '_channel_conversion', False)
                        or getattr(p, 'channel_conversion', False))
            if not getattr(p, '_enable_normalize', False):
                return None, None, swap
            return p.mean, p.std, swap

        s_mean, s_std, s_swap = convention(student)
        t_mean, t_std, t_swap = convention(teacher)
        same = s_swap == t_swap and (s_mean is None) == (t_mean is None) \
            and (s_mean is None or (torch.equal(s_mean, t_mean)
                                    and torch.equal(s_std, t_std)))
        if same:
            return inputs
        pixels = inputs if s_mean is None else inputs * s_std + s_mean
        if s_swap != t_swap:
            pixels = pixels.flip(1)
        return pixels if t_mean is None else (pixels - t_mean) / t_std

    def distill_step(self, inputs: Tensor,
                     data_samples: list) -> Dict[str, Tensor]:
        """Compute every distillation loss from the recorded taps.

        Returns:
            dict: ``distill.<name>`` -> weighted loss.
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
            losses[f'distill.{name}'] = value
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
        ``loss(student, teacher, **extra_inputs)``."""
        route = self.loss_routes[name]
        key = f'model.distill_losses.{name}'
        student = self.student_taps[route['student']]
        teacher = self.teacher_taps[route['teacher']]
        if route['connector'] is not None:
            self._check_connector_input(name, route, student)
            # through __call__ (DDP-wrapped connectors sync gradients)
            student = self.connectors(route['connector'], student)
            self._check_connector_output(name, route, student, teacher)
        kwargs = {k: self.resolve(v, sources)
                  for k, v in route['extra_inputs'].items()}
        try:
            return loss(student, teacher, **kwargs)
        except ValueError as e:
            raise ValueError(f'{key}: {e}') from None

    def _check_connector_input(self, name: str, route: Mapping,
                               tap: Any) -> None:
        """Refuse a student tap whose channels are not the connector's
        ``in_channels`` (instead of torch's error from inside the layer)."""
        connector = route['connector']
        connectors = getattr(self.connectors, 'module', self.connectors)
        expected = getattr(connectors[connector], 'in_channels', None)
        found = _channels(tap)
        levels = set(found) if isinstance(found, tuple) else {found}
        if not isinstance(expected, int) or levels == {expected}:
            return
        raise ConfigValueError(
            f'model.connectors.{connector}.in_channels',
            f"{found}, the channels of student tap '{route['student']}' "
            f"(module '{self.student_taps.paths[route['student']]}', shape "
            f'{_shapes(tap)}) that model.distill_losses.{name} passes '
            'through this connector', describe(expected),
            f'Set in_channels={found}.' if len(levels) == 1 else
            'The levels of the tap differ in channels: tap maps of equal '
            'channels or use one connector per level.')

    def _check_connector_output(self, name: str, route: Mapping,
                                adapted: Any, teacher: Any) -> None:
        if not isinstance(adapted, Tensor) and not isinstance(
                teacher, Tensor) and len(adapted) != len(teacher):
            raise ValueError(
                f"model.distill_losses.{name}: student tap '{route['student']}'"
                f" has {len(adapted)} levels, teacher tap '{route['teacher']}' "
                f'{len(teacher)}: tap the same levels in both models.')
        if _channels(adapted) != _channels(teacher):
            raise ValueError(
                f"model.connectors.{route['connector']} (used by "
                f'model.distill_losses.{name}) outputs shape '
                f"{_shapes(adapted)} from student tap '{route['student']}', "
                f"but teacher tap '{route['teacher']}' has shape "
                f'{_shapes(teacher)}: the channels must match. Set the '
                "connector's out_channels to the teacher's channels.")
