"""Multi-level taps: one feature map, or one per level, and the levels of
two taps paired by stride.

A tap is multi-level when its module returns a tuple (a neck's FPN outputs)
or runs once per level (a head shared by the FPN levels, see
:class:`~mmkd.taps.FeatureTaps`). Losses and connectors that accept either
take a :data:`MultiLevel` and read it with :func:`as_levels`; their extra
inputs follow the levels they keep through :func:`inputs_of_levels`.

Detector families tap different FPN level sets: a Faster R-CNN FPN gives
P2-P6 (strides 4 to 64), a RetinaNet FPN P3-P7 (8 to 128). Level ``i`` of
one is then not level ``i`` of the other; the levels that correspond are
those of the same stride (:func:`pair_levels`). The stride of a level is
measured from the batch: the input's side over the map's side, rounded to a
power of two per axis (FPN maps are ``ceil(side / stride)``, so the plain
ratio of a small map, e.g. 96 / 2 = 48 for stride 64, is off).
"""
import math
from typing import Any, Dict, List, Mapping, Sequence, Set, Tuple, Union

from mmengine.logging import print_log
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


#: A level's stride along (height, width).
Stride = Tuple[int, int]


def level_strides(levels: Sequence[Tensor],
                  input_size: Sequence[int]) -> List[Stride]:
    """The stride of each level of a tap.

    Args:
        levels (Sequence[Tensor]): ``(N, C, H_l, W_l)`` per level.
        input_size (Sequence[int]): ``(H, W)`` of the batch the model saw.

    Returns:
        list[tuple[int, int]]: ``(s_h, s_w)`` per level, powers of two.
    """
    strides = []
    for level in levels:
        stride = []
        for side, size in zip(input_size, level.shape[-2:]):
            ratio = max(float(side) / max(int(size), 1), 1.0)
            stride.append(2**int(round(math.log2(ratio))))
        strides.append(tuple(stride))
    return strides


def match_levels(student: Sequence[Stride], teacher: Sequence[Stride],
                 what: str) -> Tuple[List[int], List[int]]:
    """The levels of the same stride on both sides.

    Args:
        student (Sequence[tuple]): The student tap's strides, per level.
        teacher (Sequence[tuple]): The teacher tap's strides, per level.
        what (str): The taps, for the messages.

    Returns:
        tuple[list[int], list[int]]: The student's and the teacher's level
        indices, pair by pair, in the student's order; empty when no stride
        is common.
    """
    for side, strides in (('student', student), ('teacher', teacher)):
        repeated = sorted({s for s in strides if list(strides).count(s) > 1})
        if repeated:
            raise ValueError(
                f'{what}: the {side} tap has several levels of stride '
                f'{repeated[0]} (strides {list(strides)}), so its levels '
                "cannot be paired with the other tap's by stride; tap maps "
                'of distinct strides, or the same level set in both models.')
    pairs = [(i, list(teacher).index(s)) for i, s in enumerate(student)
             if s in teacher]
    return [i for i, _ in pairs], [j for _, j in pairs]


def describe_strides(strides: Sequence[Stride]) -> str:
    """Strides for a message: ``4, 8, 16`` (``4x8`` where the axes
    differ)."""
    return ', '.join(str(h) if h == w else f'{h}x{w}' for h, w in strides)


def unpaired(strides: Sequence[Stride],
             kept: Sequence[int]) -> Tuple[List[int], str]:
    """The levels of one side left out of the pairing, and their strides
    (for the log)."""
    levels = [i for i in range(len(strides)) if i not in kept]
    return levels, describe_strides([strides[i] for i in levels])


def pair_levels(what: str, route: Mapping[str, Any], raw_student: Any,
                student: Any, teacher: Any, inputs: Dict[str, Any],
                input_size: Sequence[int], reported: Set[str]
                ) -> Tuple[Any, Any, Dict[str, Any]]:
    """Pair the levels of a multi-level student tap and teacher tap by
    their strides, measured on this batch: taps of the same strides are
    left as they are; otherwise the levels of a stride found on both sides
    are kept, in the student's order, the others are named in the log (once
    per loss), and no common stride is an error. An extra input with one
    tensor per student level (e.g. the imitation masks of a student tap)
    keeps the student's levels.

    Args:
        what (str): The loss's config key (``model.distill_losses.<name>``).
        route (Mapping): Its route (``student`` and ``teacher`` tap names).
        raw_student: The student tap before its connector (its maps give the
            strides).
        student: The student tap after its connector.
        teacher: The teacher tap.
        inputs (dict): The loss's extra inputs.
        input_size (Sequence[int]): ``(H, W)`` of the batch.
        reported (set): The losses whose pairing was logged (updated).

    Returns:
        tuple: ``student``, ``teacher`` and ``inputs`` of the paired levels.
    """
    if isinstance(raw_student, Tensor) or isinstance(teacher, Tensor) \
            or isinstance(student, Tensor):
        return student, teacher, inputs
    taps = (f"{what}: student tap '{route['student']}' and teacher tap "
            f"'{route['teacher']}'")
    s_strides = level_strides(raw_student, input_size)
    t_strides = level_strides(teacher, input_size)
    if s_strides == t_strides:
        return student, teacher, inputs
    s_idx, t_idx = match_levels(s_strides, t_strides, taps)
    if not s_idx:
        raise ValueError(
            f'{taps} have no level of the same stride (student strides '
            f'{describe_strides(s_strides)}, teacher strides '
            f'{describe_strides(t_strides)}, measured on a '
            f'{tuple(input_size)} batch): tap feature maps of the same '
            'strides in both models (e.g. the FPN levels both have).')
    if what not in reported:
        reported.add(what)
        left = [f'{side} levels {levels} (strides {strides})'
                for side, levels, strides in (
                    ('student', ) + unpaired(s_strides, s_idx),
                    ('teacher', ) + unpaired(t_strides, t_idx))
                if levels]
        print_log(
            f'{taps}: levels paired by stride '
            f'({describe_strides([s_strides[i] for i in s_idx])}); '
            f"not distilled: {'; '.join(left)}.", logger='current')
    inputs = inputs_of_levels(inputs, len(raw_student), s_idx)
    return (type(student)(student[i] for i in s_idx),
            type(teacher)(teacher[j] for j in t_idx), inputs)
