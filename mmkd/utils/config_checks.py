"""Checks of config values that fail with one clear message: the config key,
what was expected, what was found and what to do.

A class built from a config (a loss, a connector, a task module) does not
know the key it was built under, so its checks name the argument
(``ChannelWiseLoss tau: ...``); the distiller that built it re-raises the
error under the full key (``model.distill_losses.cwd.tau: ...``) with
:meth:`ConfigValueError.under`.
"""
import contextlib
import math
import numbers
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar

T = TypeVar('T')


def describe(value: Any) -> str:
    """``repr(value)``, with the type for anything but a plain number (so
    that ``'1.0'`` reads as a string and ``[1.0]`` as a list)."""
    if value is None or (isinstance(value, (int, float))
                         and not isinstance(value, bool)):
        return repr(value)
    return f'{value!r} ({type(value).__name__})'


class ConfigValueError(ValueError, TypeError):
    """A config value of the wrong type or out of range.

    Both a ``ValueError`` and a ``TypeError``: to the user a string where a
    number belongs and a negative number are the same mistake.

    Args:
        key (str): The argument (``'tau'``) or the full config key
            (``'model.distill_losses.cwd.tau'``).
        expected (str): What a valid value is.
        found (str): What was given, as :func:`describe` writes it.
        hint (str): What to do about it.
        owner (str, optional): The class whose argument ``key`` is; named in
            the message until :meth:`under` places the error under a key.
    """

    def __init__(self,
                 key: str,
                 expected: str,
                 found: str,
                 hint: str = '',
                 owner: Optional[str] = None) -> None:
        self.key, self.expected, self.found = key, expected, found
        self.hint, self.owner = hint, owner
        where = f'{owner} {key}' if owner else key
        message = f'{where}: expected {expected}, found {found}.'
        super().__init__(f'{message} {hint}' if hint else message)

    def under(self, prefix: str) -> 'ConfigValueError':
        """The same error, named by its full config key
        ``<prefix>.<key>``."""
        return type(self)(f'{prefix}.{self.key}', self.expected, self.found,
                          self.hint)

    def __reduce__(self):
        return (type(self), (self.key, self.expected, self.found, self.hint,
                             self.owner))


class ConfigKeyError(ConfigValueError, KeyError):
    """A config value that names something that does not exist: a tap, a
    loss, a module path, a registered type.

    A :class:`ConfigValueError` (so one ``except`` catches every config
    mistake) that is also a ``KeyError``, as a failed lookup by name is in
    Python; its message reads as a sentence, not as a quoted key.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


def check_number(value: Any,
                 key: str,
                 *,
                 low: Optional[float] = None,
                 high: Optional[float] = None,
                 low_open: bool = False,
                 owner: Optional[str] = None,
                 hint: str = '') -> float:
    """Check that ``value`` is a finite real number (not a bool) within
    ``[low, high]`` (``(low, high]`` with ``low_open``).

    Args:
        value: The config value.
        key (str): Its argument name or config key, for the message.
        low (float, optional): Lower bound. Defaults to None (none).
        high (float, optional): Upper bound (inclusive). Defaults to None.
        low_open (bool): Exclude ``low`` itself. Defaults to False.
        owner (str, optional): See :class:`ConfigValueError`.
        hint (str): What to do, for the message.

    Returns:
        float: ``value`` as a float.
    """
    if low is not None and high is not None:
        expected = (f'a number in {"(" if low_open else "["}{low:g}, '
                    f'{high:g}]')
    elif low is not None:
        expected = f'a finite number {">" if low_open else ">="} {low:g}'
    elif high is not None:
        expected = f'a finite number <= {high:g}'
    else:
        expected = 'a finite number'
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value)
          and (low is None or value > low or (value == low and not low_open))
          and (high is None or value <= high))
    if not ok:
        raise ConfigValueError(key, expected, describe(value),
                               hint, owner)
    return float(value)


def check_positive_int(value: Any,
                       key: str,
                       *,
                       owner: Optional[str] = None,
                       hint: str = '') -> int:
    """Check that ``value`` is an int >= 1 (not a bool, not a float).

    Args:
        value: The config value.
        key (str): Its argument name or config key, for the message.
        owner (str, optional): See :class:`ConfigValueError`.
        hint (str): What to do, for the message.

    Returns:
        int: ``value`` as an int.
    """
    if not (isinstance(value, numbers.Integral)
            and not isinstance(value, bool) and value >= 1):
        raise ConfigValueError(key, 'an int >= 1', describe(value),
                               hint, owner)
    return int(value)


def check_choice(value: Any,
                 key: str,
                 choices: Sequence[Any],
                 owner: Optional[str] = None,
                 hint: str = '') -> Any:
    """Check that ``value`` is one of ``choices`` (e.g. ``('mean',
    'official')``).

    Args:
        value: The config value.
        key (str): Its argument name or config key, for the message.
        choices (Sequence): The values allowed.
        owner (str, optional): See :class:`ConfigValueError`.
        hint (str): What to do, for the message.

    Returns:
        ``value``.
    """
    if value not in choices:
        names = [repr(c) for c in choices]
        expected = (f'{", ".join(names[:-1])} or {names[-1]}'
                    if len(names) > 1 else names[0])
        raise ConfigValueError(key, expected, describe(value),
                               hint, owner)
    return value


def check_optional(check: Callable[..., T], value: Any, *args: Any,
                   **kwargs: Any) -> Optional[T]:
    """``None`` for ``None``, else ``check(value, *args, **kwargs)``: an
    optional config value (e.g. ``check_optional(check_positive_int,
    num_levels, 'num_levels', owner='ConvConnector')``).

    Args:
        check (Callable): A check of :mod:`mmkd.utils.config_checks`.
        value: The config value, or None.
        *args: The check's other arguments (the key, ...).
        **kwargs: Its keyword arguments (``owner``, ``hint``, ...).

    Returns:
        What ``check`` returns, or None.
    """
    return None if value is None else check(value, *args, **kwargs)


@contextlib.contextmanager
def config_errors_under(key: str) -> Iterator[None]:
    """Name the config key of what is built inside: a
    :class:`ConfigValueError` of an argument (``tau``) is re-raised under
    ``<key>.tau`` (one that already names a key below ``key`` as it is); any
    other ``ValueError`` or ``TypeError`` of the build (an
    unknown or missing constructor argument, a class's own check) becomes a
    :class:`ConfigValueError` of ``key`` with the original message as what
    was found.

    Args:
        key (str): The config key of the part being built (e.g.
            ``'model.distill_losses.cwd'``).
    """
    try:
        yield
    except ConfigValueError as e:
        if e.key == key or e.key.startswith(f'{key}.'):
            raise
        raise e.under(key) from None
    except (ValueError, TypeError) as e:
        raise ConfigValueError(
            key, 'arguments its class accepts', str(e),
            "Check the argument names and values against the class's "
            'docstring.') from None
