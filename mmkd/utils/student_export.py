"""Student-only checkpoints and configs that plain mmseg/mmdet load.

A student checkpoint holds ``state_dict`` with exactly the keys of the plain
student model and a ``meta`` of plain Python types only, so stock test
scripts (and ``torch.load(weights_only=True)``) load it as it is.
"""
import os
import os.path as osp
from collections import OrderedDict
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch
from mmengine.config import Config

from mmkd.version import __version__
from .config_checks import ConfigKeyError
from .model_loading import load_model_config, strip_wrapper_prefix

STUDENT_PREFIX = 'student.'


def student_state_dict(state_dict: Mapping[str, Any]) -> 'OrderedDict':
    """The student's entries of a distiller state dict, prefix removed.

    Args:
        state_dict (Mapping): A ``SingleTeacherDistiller`` state dict (keys
            ``student.*``, ``connectors.*``, ...), possibly ``module.``-
            prefixed by a DDP wrapper.

    Returns:
        OrderedDict: Keys as in the plain student model.
    """
    out = OrderedDict()
    for key, value in state_dict.items():
        key = strip_wrapper_prefix(key)
        if key.startswith(STUDENT_PREFIX):
            out[key[len(STUDENT_PREFIX):]] = value
    if not out:
        raise KeyError(
            "The state dict has no 'student.*' entries: it is not a "
            'distillation checkpoint of mmkd.')
    return out


def to_plain(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays turned into Python types, so that it
    loads under ``weights_only=True`` without an allow-list."""
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v) for v in obj)
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    return str(obj)


def atomic_write(path: str, write: Callable[[str], Any]) -> str:
    """Write ``path`` all at once: ``write`` fills a temporary file in the
    same folder, which then replaces ``path`` (``os.replace``), so a reader
    or a killed process never sees a partial file.

    Args:
        path (str): The file to write.
        write (callable): Called with the temporary path.

    Returns:
        str: ``path``.
    """
    stem, ext = osp.splitext(osp.basename(path))
    # the extension stays last: Config.dump picks the format from it
    tmp = osp.join(osp.dirname(path) or '.', f'.{stem}.{os.getpid()}.tmp{ext}')
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return path


def save_student_checkpoint(state_dict: Mapping[str, Any],
                            filename: str,
                            meta: Optional[Mapping[str, Any]] = None) -> str:
    """Write the student part of a distiller state dict to ``filename``
    (atomically: see :func:`atomic_write`).

    Args:
        state_dict (Mapping): The distiller's state dict.
        filename (str): Output path.
        meta (Mapping, optional): Plain metadata (``dataset_meta``, ``iter``,
            ...); non-plain values are converted.

    Returns:
        str: ``filename``.
    """
    weights = OrderedDict(
        (k, v.detach().cpu() if isinstance(v, torch.Tensor) else v)
        for k, v in student_state_dict(state_dict).items())
    checkpoint = dict(
        meta=to_plain(dict(meta or {}, mmkd_version=__version__)),
        state_dict=weights)
    return atomic_write(filename, lambda tmp: torch.save(checkpoint, tmp))


def dump_student_config(cfg: Config, filename: str) -> str:
    """Write :func:`student_config` of ``cfg`` to ``filename``, atomically.
    """
    plain = student_config(cfg)
    return atomic_write(filename, lambda tmp: plain.dump(tmp))


def student_checkpoint_path(checkpoint_path: str) -> str:
    """``work_dir/iter_100.pth`` -> ``work_dir/iter_100_student.pth``."""
    stem, ext = osp.splitext(checkpoint_path)
    return f'{stem}_student{ext or ".pth"}'


def student_config(cfg: Config) -> Config:
    """A plain mmseg/mmdet config for the student of distillation config
    ``cfg``: ``model`` is the student, the scope is the student's package,
    and mmkd's hooks and imports are gone.

    Args:
        cfg (Config): A distillation config (``model.type`` a distiller).

    Returns:
        Config: A config the stock test scripts accept.
    """
    if 'student' not in (cfg.get('model') or {}):
        raise ConfigKeyError(
            'model.student', 'the student of an mmkd distillation config',
            'nothing', 'Give the distillation config the student was '
            'trained with.')
    plain = Config(cfg.to_dict(), filename=cfg.filename)
    model = load_model_config(cfg.model.student, 'model.student').to_dict()
    scope = model.pop('_scope_', None) or cfg.get('default_scope')
    plain.model = model
    if scope:
        plain.default_scope = scope
    # the distiller's wrapper (a critic's separate DDP) is not the student's
    if str(plain.get('model_wrapper_cfg', {}).get('type', '')).endswith(
            'MMSeparateDistributedDataParallel'):
        plain.pop('model_wrapper_cfg')
    hooks = [h for h in plain.get('custom_hooks', [])
             if not str(h.get('type', '')).startswith('mmkd.')]
    plain.custom_hooks = hooks
    imports = plain.get('custom_imports')
    if imports:
        kept = [m for m in imports.get('imports', [])
                if not m.split('.')[0] == 'mmkd']
        if kept:
            plain.custom_imports = dict(imports, imports=kept)
        else:
            plain.pop('custom_imports')
    if isinstance(plain.get('optim_wrapper'), Mapping) and \
            'student' in plain.optim_wrapper and \
            plain.optim_wrapper.get('constructor'):
        plain.optim_wrapper = plain.optim_wrapper.student
    # helper values of the distillation configs (e.g. ``skd_losses`` of
    # configs/skd/_base_/skd_terms.py, the critic's optimizer) are not the
    # student's: a plain config names no mmkd type
    for key in [k for k, v in plain.items() if _names_mmkd_type(v)]:
        plain.pop(key)
    return plain


def _names_mmkd_type(value: Any) -> bool:
    """Whether a config value holds a string naming an mmkd type
    (``'mmkd.<Name>'``) anywhere inside it."""
    if isinstance(value, str):
        return value.startswith('mmkd.')
    if isinstance(value, Mapping):
        return any(_names_mmkd_type(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_names_mmkd_type(v) for v in value)
    return False
