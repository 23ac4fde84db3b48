"""One optimizer per learnable part of a distiller (student, discriminator)."""
from typing import Mapping, Optional

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict

from mmkd.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmkd.utils.config_checks import (ConfigKeyError, ConfigValueError,
                                      describe)

#: The learnable parts that get an optimizer each.
PARTS = ('student', 'discriminator')


class _Parts(nn.Module):
    """The distiller's parameters minus the discriminator, under the same
    names (so ``paramwise_cfg`` keys such as ``'student.backbone'`` work)."""

    def __init__(self, model: nn.Module, exclude: str) -> None:
        super().__init__()
        for name, child in model.named_children():
            if name != exclude:
                self.add_module(name, child)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DistillerOptimWrapperConstructor:
    """Build an ``OptimWrapperDict`` with a ``student`` optimizer (student,
    connectors and every other learnable part) and a ``discriminator``
    optimizer (``model.discriminator``).

    Each entry is an ordinary optim-wrapper config (``type``, ``optimizer``,
    ``paramwise_cfg``, ``clip_grad``...), built by mmengine's
    ``DefaultOptimWrapperConstructor``.

    Args:
        optim_wrapper_cfg (dict): ``dict(student=dict(...),
            discriminator=dict(...))``.
        paramwise_cfg (dict, optional): Must be None: give it per entry.
    """

    def __init__(self, optim_wrapper_cfg: Mapping,
                 paramwise_cfg: Optional[Mapping] = None) -> None:
        if paramwise_cfg is not None:
            raise ConfigValueError(
                'optim_wrapper.paramwise_cfg', 'None',
                describe(paramwise_cfg), 'Give it inside '
                'optim_wrapper.student or optim_wrapper.discriminator.')
        if not isinstance(optim_wrapper_cfg, Mapping):
            raise ConfigValueError(
                'optim_wrapper', "a dict of the entries 'student' and "
                "(optionally) 'discriminator'", describe(optim_wrapper_cfg))
        for name, cfg in optim_wrapper_cfg.items():
            if name not in PARTS:
                raise ConfigKeyError(
                    f'optim_wrapper.{name}', f'one of {PARTS}', repr(name),
                    'The constructor builds one optimizer for each part.')
            if not isinstance(cfg, Mapping):
                raise ConfigValueError(
                    f'optim_wrapper.{name}', 'an optim wrapper config (a '
                    'dict with optimizer=...)', describe(cfg))
        if 'student' not in optim_wrapper_cfg:
            raise ConfigValueError(
                'optim_wrapper.student', 'the optim wrapper config of the '
                'student', 'nothing', "Add optim_wrapper.student=dict("
                "optimizer=...).")
        self.optim_wrapper_cfg = optim_wrapper_cfg

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        model = getattr(model, 'module', model)  # DDP wrappers
        wrappers = {}
        for name, cfg in self.optim_wrapper_cfg.items():
            cfg = dict(cfg)
            paramwise = cfg.pop('paramwise_cfg', None)
            if name == 'discriminator':
                part = getattr(model, 'discriminator', None)
                if part is None:
                    raise ConfigValueError(
                        'optim_wrapper.discriminator', 'nothing, as '
                        'model.discriminator is not set', 'an optim wrapper '
                        'config', 'Remove it, or set model.discriminator.')
            else:
                part = _Parts(model, exclude='discriminator')
            wrappers[name] = DefaultOptimWrapperConstructor(cfg, paramwise)(
                part)
        return OptimWrapperDict(**wrappers)
