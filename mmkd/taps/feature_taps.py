"""Feature taps: record the outputs of named submodules with forward hooks.

Taps leave the mmseg/mmdet model classes untouched. They record only inside
:meth:`FeatureTaps.recording`, so validation forwards keep nothing alive.
"""
import difflib
from contextlib import contextmanager
from typing import (Any, Callable, Dict, Iterator, List, Mapping, NamedTuple,
                    Tuple)

import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch import Tensor

from mmkd.utils.config_checks import ConfigKeyError, ConfigValueError

#: How a tap keeps its module's output (see :class:`FeatureTaps`).
PROBE, COPY, REFERENCE = 'probe', 'copy', 'reference'


def find_module(model: nn.Module, path: str, where: str) -> nn.Module:
    """Return the submodule at dotted ``path`` or raise a clear error that
    lists the closest real module names.

    Args:
        model (nn.Module): The model to search.
        path (str): Dotted module path, e.g. ``'decode_head.bottleneck'``.
        where (str): The config key that named it, for the message.
    """
    modules = dict(model.named_modules())
    if path in modules and path != '':
        return modules[path]
    names = [name for name in modules if name]
    close = difflib.get_close_matches(path, names, n=5, cutoff=0.5)
    prefix = path.rsplit('.', 1)[0] if '.' in path else ''
    children = [n for n in names if n.startswith(prefix + '.')
                and n.count('.') == prefix.count('.') + 1] if prefix else []
    hint = close or children[:8] or [n for n in names if '.' not in n]
    raise ConfigKeyError(
        where, f'a module path of {type(model).__name__} (a name from '
        f'model.named_modules()), e.g. one of {hint}', repr(path),
        'The names above are the closest real ones.')


def refuse_container(module: nn.Module, path: str, where: str) -> None:
    """Refuse a tap on a module that has no ``forward`` of its own, so it
    is never called in a forward: a container (``nn.ModuleList``,
    ``nn.ModuleDict``: the model calls their items; a subclass with its own
    ``forward``, as mmseg's PPM, runs and is accepted), naming the items to
    tap instead.

    Args:
        module (nn.Module): The module at ``path``.
        path (str): Its dotted path.
        where (str): The tap's config key (``model.student_taps.<name>``).
    """
    if type(module).forward is not nn.Module.forward:
        return
    items = [f'{path}.{key}' for key, _ in module.named_children()]
    tap = where.rsplit('.', 1)[-1]
    every = ', '.join(f"{tap}_{i}='{item}'" for i, item in enumerate(items))
    raise ConfigValueError(
        where, 'a module that runs in the forward (a container is never '
        'called: the model calls its items)',
        f"'{path}', a {type(module).__name__} of {len(items)} items",
        f'Tap its items, e.g. {tap}={items[0]!r}' + (
            f'; all of them: dict({every})' if len(items) > 1 else '')
        + '.' if items else 'It has no items.')


def map_tensors(fn: Callable[[Tensor], Any], obj: Any) -> Any:
    """Apply ``fn`` to every tensor of ``obj`` (a tensor, or tuples, lists
    and dicts of them); anything else is returned as it is."""
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, tuple) and hasattr(obj, '_fields'):  # namedtuple
        return type(obj)(*(map_tensors(fn, item) for item in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(map_tensors(fn, item) for item in obj)
    if isinstance(obj, dict):
        return type(obj)((k, map_tensors(fn, v)) for k, v in obj.items())
    return obj


def tensor_leaves(obj: Any) -> List[Tensor]:
    """The tensors of ``obj``, in the order :func:`map_tensors` visits."""
    leaves: List[Tensor] = []
    map_tensors(leaves.append, obj)
    return leaves


class TapRecord(NamedTuple):
    """One call of a tapped module.

    Attributes:
        value: What the tap returns: the module's output, or a copy of it.
        copied (bool): Whether ``value`` is a copy.
        watched (tuple[Tensor]): The module's own output tensors, whose
            version counters are compared at read time (inference tensors,
            which have no version counter, are always copied instead).
        versions (tuple[int]): Their ``_version`` when the hook ran.
        grad_enabled (bool): ``torch.is_grad_enabled()`` when the hook ran.
    """
    value: Any
    copied: bool
    watched: Tuple[Tensor, ...]
    versions: Tuple[int, ...]
    grad_enabled: bool

    def changes(self) -> List[Tuple[int, int]]:
        """``(version at hook time, version now)`` of each watched tensor
        that was modified in place since the hook ran."""
        return [(before, t._version)
                for t, before in zip(self.watched, self.versions)
                if t._version != before]


class FeatureTaps:
    """Record outputs of submodules of one model, by name.

    A tap returns exactly what its module output when it ran, or raises.

    In-place changes. A forward hook sees the module's output before the
    rest of the model runs, and a later in-place operation changes that
    very tensor: mmcv's ``ConvModule`` applies ``ReLU(inplace=True)`` to its
    norm's output, so a reference to ``...bottleneck.bn``'s output would
    hold post-ReLU values. Every tensor (``x._version``) carries a counter
    that each in-place operation on it (or on a view sharing its storage)
    moves. Each tap therefore goes through three modes:

    - ``'probe'`` (the first recorded forward): the tap records a copy
      (``clone()``, differentiable: gradients reach the module as through
      the output itself) and watches the output's version counter.
    - When the tap is first read (or the recording ends), it settles: if
      the counter moved, the output is changed in place later in the
      forward and the tap keeps recording a copy (``'copy'``, logged once);
      otherwise it records the output itself (``'reference'``), free of
      cost.
    - In ``'reference'`` mode every read still compares the counter with
      the one at hook time; if it moved (the forward took another path than
      in the first step) the tap raises a clear error rather than return
      changed values, and copies from then on.

    The model always continues with its own output: in-place operations act
    on it, never on the recorded copy. The cost of a copy, paid by taps
    whose output is changed in place and by every tap in its first step:
    one ``clone()`` per forward, and its memory until the step ends
    (measured: docs/benchmarks.md). Copying every tap in every step would
    have been correct too, but that cost is paid only where it buys
    something.

    Gradient checkpointing. Inside a block run by
    ``torch.utils.checkpoint(..., use_reentrant=True)`` (mmseg/mmdet/mmcv
    ``with_cp=True``) the first forward runs under ``torch.no_grad()``, so a
    tap there records a tensor without gradient, and the recomputation in
    the backward pass comes too late. Reading such a tap while gradients
    are enabled and the model is training with parameters that require
    grad raises an error (tap the module that runs the checkpoint, e.g. the
    residual block, or turn ``with_cp`` off).
    With ``use_reentrant=False`` the tap has its gradient and nothing is
    raised. The frozen teacher (eval mode, no parameter requiring grad,
    run under ``torch.no_grad()``) never raises.

    Only tensors, and tuples, lists and dicts of them, are copied and
    watched. Taps record only inside :meth:`recording`; run the backward
    pass after it, so that recomputations of checkpointed blocks record
    nothing.

    Args:
        model (nn.Module): The model to tap.
        taps (Mapping[str, str]): Tap name -> dotted module path.
        where (str): Config key of the taps (e.g. ``'model.student_taps'``),
            for error messages.

    A module called several times in one forward (a head shared by FPN
    levels) yields a tuple of its outputs, in call order.
    """

    def __init__(self, model: nn.Module, taps: Mapping[str, str],
                 where: str) -> None:
        self.where = where
        #: what the error of a tap that did not run adds (e.g. how far the
        #: teacher runs)
        self.not_run_hint = ''
        self.paths = dict(taps)
        self.model = model
        self.modes: Dict[str, str] = {name: PROBE for name in taps}
        self._records: Dict[str, List[TapRecord]] = {name: [] for name in taps}
        self._recording = False
        for name, path in self.paths.items():
            module = find_module(model, path, f'{where}.{name}')
            refuse_container(module, path, f'{where}.{name}')
            module.register_forward_hook(self._make_hook(name))

    def _make_hook(self, name: str):

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self._recording:
                self._records[name].append(self._record(name, output))

        return hook

    def _record(self, name: str, output: Any) -> TapRecord:
        tensors = tensor_leaves(output)
        # Inference tensors have no version counter: always copied.
        watched = tuple(t for t in tensors if not t.is_inference())
        mode = self.modes[name]
        copy = mode != REFERENCE or len(watched) < len(tensors)
        value = map_tensors(torch.Tensor.clone, output) if copy else output
        if mode == COPY:
            watched = ()
        return TapRecord(value, copy, watched,
                         tuple(t._version for t in watched),
                         torch.is_grad_enabled())

    @contextmanager
    def recording(self) -> Iterator['FeatureTaps']:
        """Record the taps while the block runs; drop them on exit."""
        for records in self._records.values():
            records.clear()
        self._recording = True
        try:
            yield self
        finally:
            self._recording = False
            for name, records in self._records.items():
                if self.modes[name] == PROBE and records:
                    self._settle(name)
                records.clear()

    def __contains__(self, name: str) -> bool:
        return name in self.paths

    def __getitem__(self, name: str) -> Any:
        """The recorded output of tap ``name`` (a tuple if the module ran
        several times)."""
        self._check_name(name)
        records = self._records[name]
        if not records:
            raise RuntimeError(
                f"{self.where}.{name}: module '{self.paths[name]}' of "
                f'{type(self.model).__name__} did not run in this step\'s '
                'forward, so nothing was recorded. Tap a module that the '
                f'forward runs{self.not_run_hint}.')
        self._settle(name)
        self._check_gradient(name)
        values = [record.value for record in records]
        return values[0] if len(values) == 1 else tuple(values)

    def _check_name(self, name: str) -> None:
        if name not in self._records:
            raise KeyError(f"{self.where}: no tap named '{name}'; taps: "
                           f'{sorted(self.paths)}')

    def outputs(self, name: str) -> List[Any]:
        """What tap ``name`` recorded in this step, one output per call of
        its module in call order (read as :meth:`__getitem__` reads it:
        settled, checked for in-place changes)."""
        self[name]
        return [record.value for record in self._records[name]]

    def replace(self, name: str, outputs: List[Any]) -> None:
        """Hold ``outputs`` (one per call of the module, in call order) as
        tap ``name``'s record of this step, in place of what its module
        recorded: outputs the module gave for the same inputs in an earlier
        step (:class:`~mmkd.models.distillers.teacher_output_cache.
        CachedTeacherRun`). Recorded as copies, without gradient.

        Raises:
            RuntimeError: Outside :meth:`recording`, or for a model that
                trains (kept outputs carry no gradient).
        """
        self._check_name(name)
        if not self._recording:
            raise RuntimeError(
                f'{self.where}.{name}: outputs can only replace a record '
                'while the taps record (inside FeatureTaps.recording()).')
        if self.model.training and any(
                p.requires_grad for p in self.model.parameters()):
            raise RuntimeError(
                f'{self.where}.{name}: only the taps of a frozen model (a '
                "distiller's teacher) can hold kept outputs: they carry no "
                'gradient, and this model trains.')
        self._records[name] = [TapRecord(value, True, (), (), False)
                               for value in outputs]

    def _settle(self, name: str) -> None:
        """Decide a probing tap's mode; raise if a referenced output was
        changed in place."""
        changed = [(record, record.changes())
                   for record in self._records[name]]
        moved = [(record, change) for record, changes in changed
                 for change in changes]
        if self.modes[name] == PROBE:
            self.modes[name] = COPY if moved else REFERENCE
            if moved:
                before, after = moved[0][1]
                print_log(
                    f"{self.where}.{name}: the output of module "
                    f"'{self.paths[name]}' is changed in place later in the "
                    f'forward (its version counter moved from {before} to '
                    f'{after}, e.g. by a following ReLU(inplace=True)), so '
                    'the tap records a copy of it in every step; it holds '
                    'what the module output.',
                    logger='current')
        lost = [change for record, change in moved if not record.copied]
        if lost:
            self.modes[name] = COPY
            before, after = lost[0]
            raise RuntimeError(
                f"{self.where}.{name}: the output of module "
                f"'{self.paths[name]}' was changed in place after the module "
                f'ran (its version counter moved from {before} to {after}), '
                'e.g. by a following ReLU(inplace=True) or a residual '
                "'out += identity'. In the first recorded step it was not, "
                "so the tap kept a reference, and this step's values of the "
                'module are lost. The tap copies the output from now on '
                '(rerun the step); or tap the module that makes the change, '
                'or give it inplace=False.')

    def _check_gradient(self, name: str) -> None:
        """Raise if the tap was recorded without gradient where one is
        needed (a block under reentrant gradient checkpointing)."""
        if not torch.is_grad_enabled() or all(
                record.grad_enabled for record in self._records[name]):
            return
        if not self.model.training or not any(
                p.requires_grad for p in self.model.parameters()):
            return
        raise RuntimeError(
            f"{self.where}.{name}: module '{self.paths[name]}' ran with "
            'gradients disabled while the model is training, so its '
            'recorded output has no gradient and a loss on it would train '
            'only its connector. This happens inside a gradient-'
            'checkpointed block (with_cp=True, or torch.utils.checkpoint '
            'with use_reentrant=True), whose first forward runs under '
            'torch.no_grad(). Tap the module that runs the checkpoint (for '
            "with_cp=True, the residual block: 'backbone.layer4.1' rather "
            "than 'backbone.layer4.1.bn2'), or set with_cp=False in the "
            'model config.')
