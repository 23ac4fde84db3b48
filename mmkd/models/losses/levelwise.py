"""The base of every distillation loss that is defined on one student map and
one teacher map: a multi-level tap (FPN outputs, a head shared by the
levels) is taken level by level and the levels are combined as the loss's
``level_reduction`` says.

How each mmkd loss combines levels, and why (the official code of each
method), is stated once in ``docs/multi_level_taps.md``.
"""
import inspect
from typing import Any, Optional

import torch
import torch.nn as nn
from torch import Tensor

from mmkd.taps import MultiLevel, inputs_of_levels
from mmkd.utils.config_checks import (ConfigValueError, check_choice,
                                      check_positive_int)
from .utils import check_map_pair, level_pairs

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
            level_inputs = (dict(inputs) if len(students) == 1 else
                            inputs_of_levels(inputs, len(students), level))
            try:
                values.append(self.forward_level(s, t, level=level,
                                                 **level_inputs))
            except ConfigValueError as e:
                if len(students) == 1:
                    raise
                # the level is part of what was found
                raise type(e)(e.key, e.expected, f'{e.found} at level {level}',
                              e.hint, e.owner) from None
            except ValueError as e:
                if len(students) == 1:
                    raise
                raise ValueError(f'level {level}: {e}') from None
        total = torch.stack([v.float() for v in values]).sum()
        if self.level_reduction == 'mean':
            total = total / len(values)
        return total

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

    def routed_signature(self) -> inspect.Signature:
        """The inputs a distiller routes to this loss, as a signature: those
        of :meth:`forward_level` but ``level`` (its :meth:`forward` takes
        them as ``**inputs`` and splits them by level)."""
        signature = inspect.signature(self.forward_level)
        return signature.replace(parameters=[
            p for name, p in signature.parameters.items() if name != 'level'])


class AlignedLevelwiseLoss(LevelwiseLoss):
    """A :class:`LevelwiseLoss` with layers of its own per level, whose
    student map is first aligned to the teacher's channels by a 1×1
    convolution when the channel counts differ (FGD's and MGD's ``align``;
    the identity otherwise, as their official code).

    Args:
        student_channels (int): Channels of the student map.
        teacher_channels (int): Channels of the teacher map.
        num_levels (int): Levels of the tap (one set of layers each).
        level_reduction (str, optional): As :class:`LevelwiseLoss`.
    """

    def __init__(self, student_channels: int, teacher_channels: int,
                 num_levels: int = 1,
                 level_reduction: Optional[str] = None) -> None:
        super().__init__(level_reduction)
        owner = type(self).__name__
        self.student_channels = check_positive_int(
            student_channels, 'student_channels', owner=owner,
            hint="The student tap's channels.")
        self.teacher_channels = check_positive_int(
            teacher_channels, 'teacher_channels', owner=owner,
            hint="The teacher tap's channels.")
        self.num_levels = check_positive_int(
            num_levels, 'num_levels', owner=owner,
            hint='The levels of the tap, e.g. 5 for the FPN outputs.')
        self.align = nn.ModuleList(
            nn.Conv2d(student_channels, teacher_channels, kernel_size=1)
            if student_channels != teacher_channels else nn.Identity()
            for _ in range(self.num_levels))

    def forward(self, student: MultiLevel, teacher: MultiLevel,
                **inputs: Any) -> Tensor:
        levels = 1 if isinstance(student, Tensor) else len(student)
        if levels != self.num_levels:
            raise ConfigValueError(
                'num_levels', f'{levels}, the levels of the student tap',
                repr(self.num_levels), 'One set of layers per level.',
                owner=type(self).__name__)
        return super().forward(student, teacher, **inputs)

    def check_level_pair(self, student: Tensor, teacher: Tensor) -> None:
        """Refuse maps of other channels than the loss was built for, or of
        different sizes (the loss compares location with location)."""
        owner = type(self).__name__
        c_s, c_t = check_map_pair(student, teacher, owner)
        for key, built, found in (
                ('student_channels', self.student_channels, c_s),
                ('teacher_channels', self.teacher_channels, c_t)):
            side = key.split('_')[0]
            if found != built:
                raise ConfigValueError(
                    key, f'{found}, the channels of the {side} map',
                    repr(built), f"Set it to the {side} tap's channels.",
                    owner=owner)
        if student.shape[-2:] != teacher.shape[-2:]:
            raise ValueError(
                f'{owner}: student map {tuple(student.shape)} and teacher map '
                f'{tuple(teacher.shape)} differ in size: tap maps of the same '
                'stride.')
