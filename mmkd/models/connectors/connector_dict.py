"""The distiller's connectors as one module that can be called, so that a
DDP wrapper around them (mmengine's ``MMSeparateDistributedDataParallel``
wraps each learnable child of the model) still averages their gradients."""
from typing import Any

import torch.nn as nn


class ConnectorDict(nn.ModuleDict):
    """An ``nn.ModuleDict`` of connectors, called as ``connectors(name, x)``.

    A ``ModuleDict`` has no ``forward``, and a DDP-wrapped one cannot be
    indexed; DDP averages gradients only of parameters used after a call to
    its ``forward``. Calling the connector through this ``forward`` works
    the same wrapped or not. State-dict keys are those of a ``ModuleDict``
    (``connectors.<name>.<param>``).
    """

    def forward(self, name: str, x: Any) -> Any:
        """Apply connector ``name`` to ``x``.

        Args:
            name (str): A key of this dict.
            x (Tensor | tuple[Tensor]): The student tap.

        Returns:
            Tensor | tuple[Tensor]: What the connector returns.
        """
        return self[name](x)
