"""The base of every distillation loss that is defined on one student map and
one teacher map: a multi-level tap (FPN outputs, a head shared by the
levels) is taken level by level and the levels are combined as the loss's
``level_reduction`` says.

How each mmkd loss combines levels, and why (the official code of each
method), is stated once in ``docs/multi_level_taps.md``.
"""
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
from torch import Tensor

from mmkd.taps import MultiLevel
from mmkd.utils.config_checks import check_choice
from .utils import level_pairs

#: How a loss combines its per-level values.
LEVEL_REDUCTIONS = ('sum', 'mean')


class LevelwiseLoss(nn.Module):
    """A loss computed per level and combined over the levels.

    A subclass implements :meth:`forward_level`, the loss of one student map
    and one teacher map (already multiplied by its ``loss_weight``), and
    sets :attr:`default_level_reduction` to what the official code of its
    method does when it distils several levels. :meth:`forward` takes either
    one tensor per side (the loss of that map pair, exactly) or one tensor
    per level on both sides (as many levels on both sides; a distiller pairs
    the levels of taps with other level sets by stride first), and returns

        ``'sum'``:  sum_l forward_level(s_l, t_l)
        ``'mean'``: 1/L · sum_l forward_level(s_l, t_l)

    An extra input (``extra_inputs`` of the loss's config) given as a list
    or tuple with one entry per level goes to its level; any other extra
    input goes to every level.

    Args:
        level_reduction (str, optional): ``'sum'`` or ``'mean'`` over the
            levels; None takes :attr:`default_level_reduction`.
    """

    #: What the official code does with several levels: one loss per level,
    #: each with the full weight, summed.
    default_level_reduction: str = 'sum'

    def __init__(self, level_reduction: Optional[str] = None) -> None:
        super().__init__()
        if level_reduction is None:
            level_reduction = self.default_level_reduction
        self.level_reduction = check_choice(
            level_reduction, 'level_reduction', LEVEL_REDUCTIONS,
            type(self).__name__,
            "'sum' adds the levels' losses (one loss per level, as the "
            "official codes distil several FPN levels); 'mean' divides the "
            'sum by the number of levels.')

    def forward(self, student: MultiLevel, teacher: MultiLevel,
                **inputs: Any) -> Tensor:
        """The loss over every level of the two taps.

        Args:
            student (Tensor | Sequence[Tensor]): The student map, or one per
                level.
            teacher (Tensor | Sequence[Tensor]): The teacher map(s), as many
                levels as ``student``.
            **inputs: Extra inputs of :meth:`forward_level`.

        Returns:
            Tensor: The scalar loss, already weighted.
        """
        owner = type(self).__name__
        students, teachers = level_pairs(student, teacher, owner)
        values = []
        for level, (s, t) in enumerate(zip(students, teachers)):
            level_inputs = self._level_inputs(inputs, level, len(students))
            try:
                values.append(self.forward_level(s, t, level=level,
                                                 **level_inputs))
            except ValueError as e:
                if len(students) == 1:
                    raise
                raise ValueError(f'level {level}: {e}') from None
        total = torch.stack([v.float() for v in values]).sum()
        if self.level_reduction == 'mean':
            total = total / len(values)
        return total

    @staticmethod
    def _level_inputs(inputs: Dict[str, Any], level: int,
                      num_levels: int) -> Dict[str, Any]:
        """The extra inputs of one level: an entry per level is split."""
        if num_levels == 1:
            return dict(inputs)
        return {
            key: (value[level] if isinstance(value, (list, tuple)) and
                  len(value) == num_levels and all(
                      isinstance(v, Tensor) for v in value) else value)
            for key, value in inputs.items()
        }

    def forward_level(self, student: Tensor, teacher: Tensor, level: int,
                      **inputs: Any) -> Tensor:
        """The weighted loss of one student map and one teacher map.

        Args:
            student (Tensor): The student map of this level.
            teacher (Tensor): The teacher map of this level.
            level (int): The level's index (0 for a single map).
            **inputs: This level's extra inputs.

        Returns:
            Tensor: A scalar.
        """
        raise NotImplementedError

