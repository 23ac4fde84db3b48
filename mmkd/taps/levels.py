"""Multi-level taps: one feature map, or one per level.

A tap is multi-level when its module returns a tuple (a neck's FPN outputs)
or runs once per level (a head shared by the FPN levels, see
:class:`~mmkd.taps.FeatureTaps`). Losses and connectors that accept either
take a :data:`MultiLevel` and read it with :func:`as_levels`; their extra
inputs follow the levels they keep through :func:`inputs_of_levels`.
"""
from typing import Any, Dict, List, Mapping, Sequence, Union

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


def inputs_of_levels(inputs: Mapping[str, Any], num_levels: int,
                     levels: Union[int, Sequence[int]]) -> Dict[str, Any]:
    """A loss's extra inputs for some levels of a ``num_levels``-level tap.

    An entry with one tensor per level (a list or tuple of ``num_levels``
    tensors, e.g. one imitation mask per FPN level) keeps the tensors of
    ``levels``; any other entry applies to every level and is passed whole.

    Args:
        inputs (Mapping[str, Any]): The extra inputs, by keyword.
        num_levels (int): The tap's levels.
        levels (int | Sequence[int]): One level (its tensor replaces the
            entry) or several (a list or tuple, of the entry's type, of
            theirs, in this order).

    Returns:
        dict: The inputs of those levels.
    """
    def per_level(value: Any) -> bool:
        return isinstance(value, (list, tuple)) and \
            len(value) == num_levels and \
            all(isinstance(v, Tensor) for v in value)

    def pick(value: Any) -> Any:
        if isinstance(levels, int):
            return value[levels]
        return type(value)(value[i] for i in levels)

    return {key: pick(value) if per_level(value) else value
            for key, value in inputs.items()}
