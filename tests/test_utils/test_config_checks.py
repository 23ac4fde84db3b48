"""config_checks: one error format for bad config values (key, expected,
found, what to do), re-raised under the full config key by whoever built
the object."""
import math
import pickle

import numpy as np
import pytest

from mmkd.utils.config_checks import (ConfigValueError, check_choice,
                                      check_number, check_positive_int,
                                      describe)


def test_message_names_owner_then_full_key():
    error = ConfigValueError('tau', 'a finite number > 0', describe(math.inf),
                             'Use 1.', owner='KDLoss')
    assert str(error) == \
        'KDLoss tau: expected a finite number > 0, found inf. Use 1.'
    placed = error.under('model.distill_losses.kd')
    assert str(placed) == ('model.distill_losses.kd.tau: expected a finite '
                           'number > 0, found inf. Use 1.')
    # a wrong type and a wrong value are the same mistake to the user
    assert isinstance(placed, ValueError) and isinstance(placed, TypeError)
    assert str(pickle.loads(pickle.dumps(placed))) == str(placed)


@pytest.mark.parametrize('value, found', [
    (None, 'None'), ('1', "'1' (str)"), ([1.0], '[1.0] (list)'),
    (True, 'True (bool)'), (math.nan, 'nan'), (-math.inf, '-inf'),
    (-0.5, '-0.5')])
def test_check_number_refuses(value, found):
    with pytest.raises(ConfigValueError) as error:
        check_number(value, 'w', low=0, hint='Give a weight.')
    assert str(error.value) == \
        f'w: expected a finite number >= 0, found {found}. Give a weight.'


def test_check_number_bounds():
    assert check_number(np.float32(0.25), 'x', low=0, high=1) == 0.25
    assert check_number(0, 'x', low=0) == 0.0  # closed bound
    with pytest.raises(ConfigValueError) as error:
        check_number(0, 'x', low=0, high=1, low_open=True)
    assert (error.value.key, error.value.expected, error.value.found) == \
        ('x', 'a number in (0, 1]', '0')
    with pytest.raises(ConfigValueError) as error:
        check_number(1.5, 'x', low=0, high=1)
    assert (error.value.expected, error.value.found) == \
        ('a number in [0, 1]', '1.5')


def test_check_positive_int():
    assert check_positive_int(np.int64(3), 'n') == 3
    for value in (0, -1, 2.0, '2', True, None):
        with pytest.raises(ConfigValueError) as error:
            check_positive_int(value, 'n')
        assert (error.value.key, error.value.expected, error.value.found) \
            == ('n', 'an int >= 1', describe(value))


def test_hint_is_kept_through_under_and_pickling():
    error = ConfigValueError('tau', 'a number > 0', '0', hint='Use 1.')
    assert error.hint == 'Use 1.' and str(error).endswith(' Use 1.')
    assert error.under('model.kd').hint == 'Use 1.'
    assert pickle.loads(pickle.dumps(error)).hint == 'Use 1.'
    for check in (lambda **k: check_number(-1, 'w', low=0, **k),
                  lambda **k: check_positive_int(0, 'n', **k),
                  lambda **k: check_choice('x', 'm', ('a', 'b'), **k)):
        with pytest.raises(ConfigValueError) as raised:
            check(hint='Do this.')
        assert raised.value.hint == 'Do this.'


def test_config_errors_under_names_the_key_of_each_kind_of_error():
    from mmkd.utils.config_checks import config_errors_under

    def build(error):
        with config_errors_under('model.distill_losses.kd'):
            raise error

    with pytest.raises(ConfigValueError) as error:
        build(ConfigValueError('tau', 'a number > 0', '0', owner='KDLoss'))
    assert str(error.value) == \
        'model.distill_losses.kd.tau: expected a number > 0, found 0.'
    # an error that already names a key below it keeps its key
    with pytest.raises(ConfigValueError) as error:
        build(ConfigValueError('model.distill_losses.kd.tau', 'x', 'y'))
    assert error.value.key == 'model.distill_losses.kd.tau'
    for plain in (TypeError("__init__() got an unexpected keyword argument "
                            "'t'"), ValueError('shapes differ')):
        with pytest.raises(ConfigValueError) as error:
            build(plain)
        assert error.value.key == 'model.distill_losses.kd'
        assert str(error.value).startswith(
            'model.distill_losses.kd: expected arguments its class accepts, '
            f'found {plain}.')
