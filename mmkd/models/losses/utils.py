"""Small helpers shared by the distillation losses."""
from contextlib import contextmanager
from typing import Iterator, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd.taps import MultiLevel, as_levels
from mmkd.utils.config_checks import ConfigValueError, check_number


@contextmanager
def fp32_math(*tensors: Tensor) -> Iterator[Tuple[Tensor, ...]]:
    """Run the enclosed loss math in fp32 with autocast off.

    Distillation losses (softmax/KL, cosine affinities, gradient penalties)
    overflow or lose precision in fp16; under AMP they are computed in fp32.

    Args:
        *tensors: Inputs to cast to ``float32``.

    Yields:
        tuple[Tensor]: The inputs as fp32 tensors.
    """
    device_type = tensors[0].device.type if tensors else 'cpu'
    with torch.autocast(device_type=device_type, enabled=False):
        yield tuple(t.float() for t in tensors)


def check_tau(tau: float, owner: str, usual: str) -> float:
    """Check a softmax temperature: a finite number > 0.

    ``tau = inf`` makes every distribution uniform (the loss is 0, or NaN
    once multiplied by ``tau²``), ``tau <= 0`` is no temperature.

    Args:
        tau (float): The temperature.
        owner (str): The loss, for the message (e.g. ``'KDLoss'``).
        usual (str): The usual value, for the message (e.g. ``'1 is the
            published value on the logits'``).

    Returns:
        float: ``tau`` as a float.
    """
    return check_number(
        tau, 'tau', low=0, low_open=True, owner=owner,
        hint=f'tau is a softmax temperature ({usual}).')


def check_dims(tensor: Tensor, ndim: int, what: str) -> None:
    """Raise a clear error unless ``tensor`` has ``ndim`` dimensions.

    Args:
        tensor (Tensor): The input to check.
        ndim (int): The expected number of dimensions.
        what (str): What the input is, for the message (e.g.
            ``'PairWiseLoss student feature'``).
    """
    if not isinstance(tensor, Tensor):
        # a multi-level tap (a tuple) given to a single-map loss: the tap
        # named in the config is the mistake (both a ValueError and a
        # TypeError)
        raise ConfigValueError(what, f'a Tensor ({ndim}-D)', str(type(tensor)),
                               'Check which tap the loss is given.')
    if tensor.dim() != ndim:
        raise ValueError(
            f'{what}: expected a {ndim}-D tensor, found shape '
            f'{tuple(tensor.shape)}. Check which tap the loss is given.')


def level_pairs(student: MultiLevel,
                teacher: MultiLevel,
                owner: str,
                names: Tuple[str, str] = ('student', 'teacher')
                ) -> Tuple[List[Tensor], List[Tensor]]:
    """The levels of a student and a teacher tap, as many on both sides
    (see :func:`mmkd.taps.as_levels`).

    Args:
        student (Tensor | Sequence[Tensor]): The student tap.
        teacher (Tensor | Sequence[Tensor]): The teacher tap.
        owner (str): The loss, for the messages (e.g. ``'KDLoss'``).
        names (tuple[str, str]): The inputs' names, for the messages.

    Returns:
        tuple[list[Tensor], list[Tensor]]: The student's and the teacher's
        levels, at least one each.
    """
    students = as_levels(student, f'{owner} {names[0]}')
    teachers = as_levels(teacher, f'{owner} {names[1]}')
    if len(students) != len(teachers):
        raise ValueError(
            f'{owner}: the student tap has {len(students)} levels but the '
            f'teacher tap has {len(teachers)}; compare the same levels (e.g. '
            'the same FPN outputs) on both sides.')
    if not students:
        raise ValueError(f'{owner}: got no levels.')
    return students, teachers


def check_map_pair(student: Tensor,
                   teacher: Tensor,
                   owner: str,
                   names: Tuple[str, str] = ('student', 'teacher'),
                   same_classes: str = '',
                   same_channels: str = '') -> Tuple[int, int]:
    """Check a student and a teacher map: both ``(N, C, H, W)``, of the same
    batch (the sizes may differ; the channels too, unless ``same_classes``
    or ``same_channels``).

    Args:
        student (Tensor): The student map.
        teacher (Tensor): The teacher map.
        owner (str): The loss, for the messages (e.g. ``'PixelWiseLoss'``).
        names (tuple[str, str]): The inputs' names, for the messages.
        same_classes (str): For class scores: what the loss compares (e.g.
            ``'pixel-wise distillation compares class probabilities'``),
            given to require ``C_s = C_t``. Defaults to '' (any channels).
        same_channels (str): For features compared channel by channel: how
            (e.g. ``'channel c of the student imitates channel c of the
            teacher'``), given to require ``C_s = C_t`` and ask for a
            connector otherwise. The distiller checks a connector's output
            channels against the teacher tap, but a loss given no connector
            is checked only here. Defaults to '' (any channels).

    Returns:
        tuple[int, int]: The channels ``(C_s, C_t)``.
    """
    check_dims(student, 4, f'{owner} {names[0]}')
    check_dims(teacher, 4, f'{owner} {names[1]}')
    n_s, n_t = student.shape[0], teacher.shape[0]
    if n_s != n_t:
        raise ValueError(
            f'{owner}: student batch has {n_s} samples, teacher batch {n_t}: '
            'both must see the same images.')
    c_s, c_t = student.shape[1], teacher.shape[1]
    if same_classes and c_s != c_t:
        raise ValueError(
            f'{owner}: student has {c_s} classes, teacher {c_t}: '
            f'{same_classes}, so both models must predict the same classes.')
    if same_channels and c_s != c_t:
        raise ValueError(
            f'{owner}: the student map has {c_s} channels, the teacher map '
            f'{c_t}: {same_channels}, so a connector must map the '
            f"student's C_s={c_s} channels to the teacher's C_t={c_t} first "
            "(e.g. connectors=dict(adapt=dict(type='mmkd.ConvConnector', "
            f'in_channels={c_s}, out_channels={c_t}, kernel_size=1, '
            "act=False)) and connector='adapt' in the loss).")
    return c_s, c_t


def resize_to(tensor: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinearly resize an ``(N, C, H, W)`` map to ``size`` (no-op if equal).

    Args:
        tensor (Tensor): ``(N, C, H, W)``.
        size (Sequence[int]): ``(H', W')``.

    Returns:
        Tensor: ``(N, C, H', W')``.
    """
    if tuple(tensor.shape[-2:]) == tuple(size):
        return tensor
    return F.interpolate(
        tensor, size=tuple(size), mode='bilinear', align_corners=False)
