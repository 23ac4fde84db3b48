"""Distillation losses and their routes: which student tap, connector and
teacher tap (and which extra inputs) each loss compares, built from the
config and checked before any step.

The loss protocol: a loss is called ``loss(student_tap, teacher_tap,
**extra_inputs)``, the student tap (after its connector, if any) and the
teacher tap positionally, in this order, each ``extra_inputs`` entry as a
keyword argument. :class:`LossRouteBuilder` checks a loss's ``forward``
against it when the distiller is built. A loss that needs the distiller's
help says so in its class attribute ``distiller_needs`` (e.g.
``mmkd.HolisticLoss`` needs ``'critic'``); only a distiller whose
``provides`` has it runs such a loss, and routes it itself.
"""
import inspect
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch.nn as nn

from mmkd.registry import MODELS
from mmkd.taps import FeatureTaps
from mmkd.utils.config_checks import (ConfigKeyError, ConfigValueError,
                                      check_number, config_errors_under,
                                      describe)

ROUTING_KEYS = ('student', 'teacher', 'connector', 'extra_inputs')
#: A loss's route: ``ROUTING_KEYS`` -> tap name, connector name (or None)
#: and ``extra_inputs`` (loss keyword -> source).
Route = Dict[str, Any]


def build_part(cfg: Mapping, key: str) -> nn.Module:
    """Build an mmkd loss or connector; its argument errors name ``key``."""
    with config_errors_under(key):
        return MODELS.build(cfg)


def registered_losses() -> List[str]:
    """The names of the losses in mmkd's registry."""
    return sorted(n for n in MODELS.module_dict if n.endswith('Loss'))


def is_distill_loss(loss: nn.Module) -> bool:
    """Whether ``loss`` is one of mmkd's distillation losses: its class is
    registered in mmkd's registry (a user's own distillation loss too) or
    derives from a registered mmkd loss."""
    own = MODELS.module_dict
    return type(loss) in own.values() or isinstance(
        loss, tuple(c for n, c in own.items() if n.endswith('Loss')))


def distillers_providing(needs: Sequence[str]) -> List[str]:
    """The registered distillers (``mmkd.<Name>``) whose ``provides`` holds
    every entry of ``needs``."""
    return sorted(
        f'mmkd.{name}' for name, cls in MODELS.module_dict.items()
        if isinstance(cls, type) and name == cls.__name__
        and set(needs) <= set(getattr(cls, 'provides', ()) or ()))


class LossRouteBuilder:
    """Build the distillation losses of one distiller and their routes.

    Args:
        student_taps (FeatureTaps): The student's taps.
        teacher_taps (FeatureTaps): The teacher's taps.
        connectors (Mapping): Connector name -> module.
        extra_sources (Sequence[str]): The non-tap inputs a loss may ask for
            in ``extra_inputs`` (e.g. ``'inputs'``, ``'imitation_masks'``).
        distiller (str): The distiller's class name, for messages.
        provides (Sequence[str]): What the distiller provides to losses that
            need it (``distiller_needs``).
    """

    def __init__(self, student_taps: FeatureTaps, teacher_taps: FeatureTaps,
                 connectors: Mapping[str, nn.Module],
                 extra_sources: Sequence[str], distiller: str,
                 provides: Sequence[str]) -> None:
        self.student_taps, self.teacher_taps = student_taps, teacher_taps
        self.connectors = connectors
        self.extra_sources = tuple(extra_sources)
        self.distiller, self.provides = distiller, tuple(provides)

    def build(self, name: str, cfg: Mapping) -> Tuple[nn.Module, Route]:
        """Build distillation loss ``name`` and check, before any step, its
        routing, its class, its ``loss_weight`` and that its ``forward``
        takes the inputs routed to it.

        Returns:
            tuple: The loss module and its route.
        """
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
            loss = build_part(cfg, key)
        except KeyError:
            if isinstance(loss_type, str) and MODELS.get(loss_type) is None:
                raise ConfigKeyError(
                    f'{key}.type', f'a registered loss, e.g. one of mmkd\'s '
                    f'{registered_losses()}', repr(loss_type),
                    'A loss of your own needs @MODELS.register_module() '
                    '(mmkd.registry) and custom_imports.') from None
            raise
        if not foreign and not is_distill_loss(loss):
            cls = type(loss)
            raise ConfigValueError(
                f'{key}.type',
                f"one of mmkd's distillation losses {registered_losses()}",
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
                hint='It multiplies the term, e.g. loss_weight=1.0 (0 '
                'switches it off).')
        needs = tuple(getattr(loss, 'distiller_needs', ()) or ())
        missing = [need for need in needs if need not in self.provides]
        if missing:
            others = ' or '.join(repr(d) for d in distillers_providing(needs))
            raise ConfigValueError(
                f'{key}.type', f'a loss that {self.distiller} can run',
                f"{type(loss).__name__}, which needs the distiller's "
                f"{' and '.join(missing)}",
                f'Use type={others} for the model: it provides that.')
        if not needs:  # a loss with needs is routed by the distiller itself
            self._check_loss_inputs(key, loss, route)
        return loss, route

    def _check_route(self, key: str, route: Route) -> None:
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
                raise ConfigKeyError(
                    f'{key}.{field}', f'one of {names} ({where})',
                    repr(value), f'There is no {what} named {value!r}.')
        extra = route['extra_inputs']
        if extra is not None and not isinstance(extra, Mapping):
            raise ConfigValueError(
                f'{key}.extra_inputs',
                'a dict: loss argument -> source, or None', describe(extra))
        route['extra_inputs'] = dict(extra or {})
        for kwarg, source in route['extra_inputs'].items():
            self._check_source(source, f'{key}.extra_inputs.{kwarg}')

    def _check_source(self, source: Any, key: str) -> None:
        side, _, tap = str(source).partition('.')
        ok = isinstance(source, str) and (
            source in self.extra_sources or
            (side == 'student' and tap in self.student_taps) or
            (side == 'teacher' and tap in self.teacher_taps))
        if not ok:
            raise ConfigKeyError(
                key, f'one of {sorted(self.extra_sources)}, student.<tap> or '
                'teacher.<tap> with a tap of model.student_taps/teacher_taps',
                f'unknown source {source!r}')

    def _check_loss_inputs(self, key: str, loss: nn.Module,
                           route: Route) -> None:
        """Check that ``loss.forward`` takes the student tap and the teacher
        tap (positionally, in this order), and ``extra_inputs`` as keyword
        arguments."""
        # a loss may state the inputs it is routed in routed_signature()
        # (e.g. a loss computed per level: those of one level); else its
        # forward's
        signature = (loss.routed_signature() if hasattr(
            loss, 'routed_signature') else inspect.signature(loss.forward))
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
        described = f'{type(loss).__name__}{plain}'  # how it is called
        if len(positional) < 2 and kind.VAR_POSITIONAL not in takes_any:
            raise ConfigValueError(
                f'{key}.type',
                'a loss whose forward takes the student tap and the teacher '
                'tap', f'{described}, which takes {len(positional)} '
                'positional inputs',
                f"Use one of mmkd's distillation losses "
                f'{registered_losses()}.')
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
                f'being one of {sorted(self.extra_sources)}, '
                "'student.<tap>' or 'teacher.<tap>'.")
