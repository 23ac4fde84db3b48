"""The weight norms of a distiller's connectors (the adaptation layers)."""
from typing import Dict

import torch
import torch.nn as nn


@torch.no_grad()
def connector_norms(connectors: nn.Module) -> Dict[str, float]:
    """The L2 norm of each connector's weights (its parameters of two or
    more dimensions: convolution and linear weights, not biases or norm
    scales), and of each of its per-level layers when it has several
    (``ConvConnector(num_levels=...)``'s ``layers``).

    Args:
        connectors (nn.Module): The distiller's ``connectors`` (a
            ``ConnectorDict`` of the distiller, possibly wrapped in DDP).

    Returns:
        dict: ``'<name>'`` and ``'<name>/layer<i>'`` -> norm.
    """
    connectors = getattr(connectors, 'module', connectors)
    norms = {}
    for name, connector in connectors.items():
        norms[name] = _weight_norm(connector)
        layers = getattr(connector, 'layers', None)
        if isinstance(layers, nn.ModuleList) and len(layers) > 1:
            for i, layer in enumerate(layers):
                norms[f'{name}/layer{i}'] = _weight_norm(layer)
    return norms


def _weight_norm(module: nn.Module) -> float:
    squares = [p.detach().float().pow(2).sum() for p in module.parameters()
               if p.dim() >= 2]
    return torch.stack(squares).sum().sqrt().item() if squares else 0.0
