"""Small helpers shared by the distillation losses."""
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd.utils.config_checks import check_number

T = TypeVar('T')


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
        todo=f'tau is a softmax temperature ({usual}).')


def check_optional(check: Callable[..., T], value: Any, *args: Any,
                   **kwargs: Any) -> Optional[T]:
    """``None`` for ``None``, else ``check(value, *args, **kwargs)``: an
    optional config value (e.g. ``check_optional(check_positive_int,
    num_levels, 'num_levels', owner='ConvConnector')``).

    Args:
        check (Callable): A check of :mod:`mmkd.utils.config_checks`.
        value: The config value, or None.
        *args: The check's other arguments (the key, ...).
        **kwargs: Its keyword arguments (``owner``, ``todo``, ...).

    Returns:
        What ``check`` returns, or None.
    """
    return None if value is None else check(value, *args, **kwargs)


def check_dims(tensor: Tensor, ndim: int, what: str) -> None:
    """Raise a clear error unless ``tensor`` has ``ndim`` dimensions.

    Args:
        tensor (Tensor): The input to check.
        ndim (int): The expected number of dimensions.
        what (str): What the input is, for the message (e.g.
            ``'PairWiseLoss student feature'``).
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f'{what}: expected a Tensor, found {type(tensor)}.')
    if tensor.dim() != ndim:
        raise ValueError(
            f'{what}: expected a {ndim}-D tensor, found shape '
            f'{tuple(tensor.shape)}. Check which tap the loss is given.')


def check_map_pair(student: Tensor,
                   teacher: Tensor,
                   owner: str,
                   names: Tuple[str, str] = ('student', 'teacher')
                   ) -> Tuple[int, int]:
    """Check a student and a teacher map: both ``(N, C, H, W)``, of the same
    batch (the sizes and channels may differ).

    Args:
        student (Tensor): The student map.
        teacher (Tensor): The teacher map.
        owner (str): The loss, for the messages (e.g. ``'PixelWiseLoss'``).
        names (tuple[str, str]): The inputs' names, for the messages.

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
    return student.shape[1], teacher.shape[1]


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
