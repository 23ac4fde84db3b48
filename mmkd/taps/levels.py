"""Multi-level taps: one feature map, or one per level.

A tap is multi-level when its module returns a tuple (a neck's FPN outputs)
or runs once per level (a head shared by the FPN levels, see
:class:`~mmkd.taps.FeatureTaps`). Losses and connectors that accept either
take a :data:`MultiLevel` and read it with :func:`as_levels`.
"""
from typing import Any, List, Sequence, Union

from torch import Tensor

#: One ``(N, C, H, W)`` map, or one per level.
MultiLevel = Union[Tensor, Sequence[Tensor]]


def as_levels(x: Any, what: str) -> List[Tensor]:
    """The levels of a tap, as a list (one entry for a single tensor).

    Args:
        x (Tensor | Sequence[Tensor]): The tap.
        what (str): The input, for the message (e.g. ``'KDLoss
            student_logits'``).

    Returns:
        list[Tensor]: One tensor per level.
    """
    if isinstance(x, Tensor):
        return [x]
    if isinstance(x, (list, tuple)) and all(
            isinstance(level, Tensor) for level in x):
        return list(x)
    raise TypeError(
        f'{what}: expected a Tensor or a list/tuple of Tensors (one per '
        f'level), found {type(x)}.')
