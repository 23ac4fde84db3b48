"""A schedule for the weight of one distillation loss: warm-up, stop, decay.

FGFI trains without imitation for its first 400 iterations; MMRazor users stop
distillation late in training; both are a factor in [0, 1] that multiplies a
loss, as a function of the iteration (or epoch).
"""
import math
from numbers import Integral
from typing import Any, Optional

from mmengine.logging import MessageHub

from mmkd.utils.config_checks import ConfigValueError, check_number, describe


def _check_step(value: Any, key: str, hint: str,
                optional: bool = False) -> Optional[int]:
    """An iteration (or epoch) count: an int >= 0, or None if
    ``optional``."""
    if value is None and optional:
        return None
    if not (isinstance(value, Integral) and not isinstance(value, bool)
            and value >= 0):
        raise ConfigValueError(key, ('None or ' if optional else '') +
                               'an int >= 0', describe(value), hint)
    return int(value)


class LossWeightSchedule:
    """Factor applied to a distillation loss at the current step.

    With ``t`` the iteration (or epoch, ``by_epoch=True``), counted from 0:

    - ``t < warmup``: 0 (no distillation yet);
    - ``t >= stop``: 0 (distillation stopped);
    - with ``decay`` (``'linear'`` or ``'cosine'``): from ``decay_begin``
      (default: ``warmup``) to ``decay_end`` the factor falls from 1 to
      ``min_factor``, and stays there after ``decay_end``;
    - otherwise 1.

    Args:
        warmup (int): Steps without distillation. Defaults to 0.
        stop (int, optional): First step without distillation again.
        decay (str, optional): ``'linear'`` or ``'cosine'``.
        decay_begin (int, optional): Start of the decay; defaults to warmup.
        decay_end (int, optional): End of the decay (needed with decay).
        min_factor (float): Factor at the end of the decay. Defaults to 0.
        by_epoch (bool): Count epochs instead of iterations.
        key (str): Config key, for error messages.
    """

    def __init__(self,
                 warmup: int = 0,
                 stop: Optional[int] = None,
                 decay: Optional[str] = None,
                 decay_begin: Optional[int] = None,
                 decay_end: Optional[int] = None,
                 min_factor: float = 0.0,
                 by_epoch: bool = False,
                 key: str = 'schedule') -> None:
        warmup = _check_step(warmup, f'{key}.warmup',
                             'It is the steps without distillation.')
        stop = _check_step(stop, f'{key}.stop',
                           'It is the first step without distillation again.',
                           optional=True)
        if stop is not None and stop <= warmup:
            raise ConfigValueError(
                f'{key}.stop', f'None or a step > warmup ({warmup})',
                describe(stop), 'Distillation would never run: set stop > '
                'warmup.')
        if decay not in (None, 'linear', 'cosine'):
            raise ConfigValueError(
                f'{key}.decay', "None, 'linear' or 'cosine'", describe(decay),
                'A decay lowers the factor from 1 to min_factor.')
        decay_begin = _check_step(
            decay_begin, f'{key}.decay_begin',
            'It is the start of the decay (None: warmup).', optional=True)
        decay_begin = warmup if decay_begin is None else decay_begin
        decay_end = _check_step(decay_end, f'{key}.decay_end',
                                'It is the end of the decay.', optional=True)
        if decay is not None and (decay_end is None
                                  or decay_end <= decay_begin):
            raise ConfigValueError(
                f'{key}.decay_end',
                f'a step > decay_begin ({decay_begin}) with decay={decay!r}',
                describe(decay_end), 'Give the step at which the decay ends.')
        min_factor = check_number(
            min_factor, f'{key}.min_factor', low=0, high=1,
            hint='It is the factor at the end of the decay.')
        self.warmup, self.stop, self.decay = warmup, stop, decay
        self.decay_begin, self.decay_end = decay_begin, decay_end
        self.min_factor, self.by_epoch = min_factor, by_epoch

    def factor(self, step: int) -> float:
        """The factor at ``step`` (iteration or epoch, from 0)."""
        if step < self.warmup or (self.stop is not None
                                  and step >= self.stop):
            return 0.0
        if self.decay is None or step <= self.decay_begin:
            return 1.0
        progress = min(1.0, (step - self.decay_begin) /
                       (self.decay_end - self.decay_begin))
        if self.decay == 'linear':
            shape = 1.0 - progress
        else:
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_factor + (1.0 - self.min_factor) * shape

    def current_factor(self) -> float:
        """The factor at the runner's current iteration/epoch (read from
        mmengine's message hub; 1 outside a training loop that sets it)."""
        hub = MessageHub.get_current_instance()
        step = hub.get_info('epoch' if self.by_epoch else 'iter')
        return 1.0 if step is None else self.factor(int(step))
