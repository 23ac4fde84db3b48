"""Feature taps: record the outputs of named submodules with forward hooks.

Taps leave the mmseg/mmdet model classes untouched. They record only inside
:meth:`FeatureTaps.recording`, so validation forwards keep nothing alive.
"""
import difflib
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Mapping

import torch.nn as nn


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
    raise KeyError(
        f"{where}: '{path}' is not a module of {type(model).__name__}. "
        f'Closest module names: {hint}. Tap paths are names from '
        'model.named_modules().')


class FeatureTaps:
    """Record outputs of submodules of one model, by name.

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
        self.paths = dict(taps)
        self._records: Dict[str, List[Any]] = {name: [] for name in taps}
        self._recording = False
        self._handles = []
        for name, path in self.paths.items():
            module = find_module(model, path, f'{where}.{name}')
            self._handles.append(
                module.register_forward_hook(self._make_hook(name)))

    def _make_hook(self, name: str):

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self._recording:
                self._records[name].append(output)

        return hook

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
            for records in self._records.values():
                records.clear()

    def __contains__(self, name: str) -> bool:
        return name in self.paths

    def __getitem__(self, name: str) -> Any:
        """The recorded output of tap ``name`` (a tuple if the module ran
        several times)."""
        if name not in self._records:
            raise KeyError(f"{self.where}: no tap named '{name}'; taps: "
                           f'{sorted(self.paths)}')
        records = self._records[name]
        if not records:
            raise RuntimeError(
                f"{self.where}.{name}: module '{self.paths[name]}' did not "
                'run during the forward pass, so nothing was recorded. Tap a '
                'module that the forward used (e.g. with teacher_forward='
                "'tensor' rather than 'extract_feat' for head modules).")
        return records[0] if len(records) == 1 else tuple(records)

    def remove(self) -> None:
        """Remove the forward hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
