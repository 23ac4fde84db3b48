"""One optimizer per learnable part of a distiller (student, discriminator)."""
from typing import Mapping, Optional

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict

from mmkd.registry import OPTIM_WRAPPER_CONSTRUCTORS


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
            raise ValueError(
                'optim_wrapper.paramwise_cfg: give it inside '
                'optim_wrapper.student or optim_wrapper.discriminator.')
        unknown = set(optim_wrapper_cfg) - {'student', 'discriminator'}
        if unknown or 'student' not in optim_wrapper_cfg:
            raise ValueError(
                "optim_wrapper: expected the entries 'student' and "
                f"(optionally) 'discriminator', found {sorted(optim_wrapper_cfg)}.")
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
                    raise ValueError(
                        'optim_wrapper.discriminator: the model has no '
                        'discriminator (model.discriminator is not set).')
            else:
                part = _Parts(model, exclude='discriminator')
            wrappers[name] = DefaultOptimWrapperConstructor(cfg, paramwise)(
                part)
        return OptimWrapperDict(**wrappers)
