"""The shapes a connector receives and gives, checked at a loss's first
step (shapes exist only once a batch has run): a clear error naming the
config keys instead of torch's from inside a layer."""
from typing import Any

import torch.nn as nn
from torch import Tensor

from mmkd.utils.config_checks import ConfigValueError, describe

#: A loss's route (:mod:`~mmkd.models.distillers.loss_routes`).
Route = dict

def channels(x: Any) -> Any:
    """Channel count(s) of a tap: ``x.shape[1]`` per map."""
    if isinstance(x, Tensor):
        return x.shape[1] if x.dim() > 1 else None
    return tuple(channels(level) for level in x)


def shapes(x: Any) -> Any:
    """The shape(s) of a tap, for messages."""
    if isinstance(x, Tensor):
        return tuple(x.shape)
    return [shapes(level) for level in x]


def check_connector_input(name: str, route: Route, tap: Any,
                          connector: nn.Module, tap_path: str) -> None:
    """Refuse a student tap whose channels are not the connector's
    ``in_channels`` (instead of torch's error from inside the layer)."""
    expected = getattr(connector, 'in_channels', None)
    found = channels(tap)
    levels = set(found) if isinstance(found, tuple) else {found}
    if not isinstance(expected, int) or levels == {expected}:
        return
    raise ConfigValueError(
        f"model.connectors.{route['connector']}.in_channels",
        f"{found}, the channels of student tap '{route['student']}' "
        f"(module '{tap_path}', shape {shapes(tap)}) that "
        f'model.distill_losses.{name} passes through this connector',
        describe(expected),
        f'Set in_channels={found}.' if len(levels) == 1 else
        'The levels of the tap differ in channels: tap maps of equal '
        'channels or use one connector per level.')


def check_connector_output(name: str, route: Route, adapted: Any,
                           teacher: Any) -> None:
    """Refuse a connector output that the teacher tap cannot be compared
    with: another number of levels, or other channels."""
    if not isinstance(adapted, Tensor) and not isinstance(
            teacher, Tensor) and len(adapted) != len(teacher):
        raise ValueError(
            f"model.distill_losses.{name}: student tap '{route['student']}'"
            f" has {len(adapted)} levels, teacher tap '{route['teacher']}' "
            f'{len(teacher)}: tap the same levels in both models.')
    if channels(adapted) != channels(teacher):
        raise ValueError(
            f"model.connectors.{route['connector']} (used by "
            f'model.distill_losses.{name}) outputs shape '
            f"{shapes(adapted)} from student tap '{route['student']}', "
            f"but teacher tap '{route['teacher']}' has shape "
            f'{shapes(teacher)}: the channels must match. Set the '
            "connector's out_channels to the teacher's channels.")

