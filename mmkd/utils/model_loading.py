"""Resolve model configs (package path, local file, inline dict) and load
weights into them with a report of what matched."""
import os.path as osp
from typing import Dict, Mapping, Union

import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from mmkd.checkpoint import (checkpoint_purpose,
                             register_safe_checkpoint_loaders)
from .config_checks import ConfigKeyError, ConfigValueError, describe


def strip_wrapper_prefix(key: str) -> str:
    """A state-dict key without the ``module.`` prefix a DDP wrapper adds."""
    return key[len('module.'):] if key.startswith('module.') else key


def load_model_config(spec: Union[str, Mapping], key: str) -> ConfigDict:
    """The ``model`` config named by ``spec``, with its registry scope.

    Args:
        spec (str | dict): ``'mmseg::pspnet/xxx.py'`` (a config shipped with
            an installed package), a local ``.py`` config file, or an inline
            model config dict.
        key (str): Config key that gave it, for error messages.

    Returns:
        ConfigDict: The model config; ``_scope_`` is set from the config's
        ``default_scope`` when the model dict has none, so that it builds in
        its own package's registry.
    """
    if isinstance(spec, Mapping):
        return ConfigDict(spec)
    if not isinstance(spec, str):
        raise ConfigValueError(
            key, "a config path ('<package>::<path>' or a local .py file) "
            'or a model dict', describe(spec))
    if '::' in spec:
        from mmengine.hub import get_config
        try:
            cfg = get_config(spec)
        except Exception as e:  # mmengine raises several types here
            raise FileNotFoundError(
                f"{key}: cannot load package config '{spec}' ({e}). Give "
                "'<package>::<path inside its configs/>', e.g. "
                "'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024"
                ".py', a local .py file, or an inline model dict.") from None
    else:
        path = osp.expanduser(spec)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f"{key}: config file '{spec}' does not exist. Give a local "
                "config file, a package config as '<package>::<path>' (e.g. "
                "'mmseg::pspnet/pspnet_r101-d8_4xb2-40k_cityscapes-"
                "512x1024.py'), or an inline model dict.")
        cfg = Config.fromfile(path)
    if 'model' not in cfg:
        raise ConfigKeyError(
            key, "a config with a 'model'", repr(spec),
            'Give the config file of the model itself.')
    model = cfg.model
    if '_scope_' not in model and cfg.get('default_scope'):
        model['_scope_'] = cfg.default_scope
    return model


def load_weights(model: nn.Module,
                 filename: str,
                 key: str,
                 min_key_match: float = 0.9) -> Dict[str, list]:
    """Load a checkpoint into ``model`` safely, reporting what matched.

    The checkpoint is loaded with ``weights_only=True`` (see
    :mod:`mmkd.checkpoint`); a ``'module.'`` prefix is stripped.
    Tensors whose shape differs from the model's are not loaded.

    Args:
        model (nn.Module): Model to load into.
        filename (str): Local path or URL.
        key (str): Config key that named the file, for messages.
        min_key_match (float): Refuse the checkpoint when fewer than this
            fraction of the model's state-dict entries are found in it with
            the right shape. Defaults to 0.9.

    Returns:
        dict: ``missing``, ``unexpected`` and ``mismatched`` key lists.
    """
    register_safe_checkpoint_loaders()
    with checkpoint_purpose(f'{key}'):
        checkpoint = CheckpointLoader.load_checkpoint(filename, 'cpu')
    state = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise TypeError(f"{key}: '{filename}' holds no state dict.")
    state = {strip_wrapper_prefix(k): v for k, v in state.items()}
    own = model.state_dict()
    mismatched = [k for k, v in state.items()
                  if k in own and hasattr(v, 'shape')
                  and tuple(v.shape) != tuple(own[k].shape)]
    loadable = {k: v for k, v in state.items()
                if k in own and k not in mismatched}
    missing = [k for k in own if k not in loadable]
    unexpected = [k for k in state if k not in own]
    match = len(loadable) / max(len(own), 1)
    report = dict(missing=missing, unexpected=unexpected,
                  mismatched=mismatched)
    if match < min_key_match:
        raise ValueError(
            f"{key}: '{filename}' matches the model poorly: "
            f'{len(loadable)} of {len(own)} entries ({match:.0%}) found with '
            f'the right shape, need {min_key_match:.0%}. '
            f'Missing e.g. {missing[:5]}, unexpected e.g. {unexpected[:5]}, '
            f'wrong shape e.g. {mismatched[:5]}. Is this the checkpoint of '
            'this config?')
    model.load_state_dict(loadable, strict=False)
    print_log(
        f"{key}: loaded '{filename}' ({len(loadable)}/{len(own)} entries)" +
        (f'; missing {missing}' if missing else '') +
        (f'; unexpected {unexpected}' if unexpected else '') +
        (f'; wrong shape {mismatched}' if mismatched else ''),
        logger='current',
        level=30 if (missing or unexpected or mismatched) else 20)
    return report
