"""ConvConnector: the FGFI adaptation layer (conv + ReLU), one layer shared
by the levels of a tap or one per level; its arguments checked."""
import pytest
import torch

from mmkd.models.connectors.conv_connector import ConvConnector
from mmkd.utils.config_checks import ConfigValueError


def test_shapes_one_map_and_levels():
    one = ConvConnector(2, 3)
    assert one(torch.zeros(1, 2, 5, 4)).shape == (1, 3, 5, 4)
    levels = one((torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 2)))
    assert [tuple(f.shape) for f in levels] == [(1, 3, 4, 4), (1, 3, 2, 2)]
    per_level = ConvConnector(2, 3, kernel_size=1, num_levels=2)
    assert len(per_level.layers) == 2
    assert len(per_level([torch.zeros(1, 2, 4, 4)] * 2)) == 2


def test_tap_errors_are_explained():
    per_level = ConvConnector(2, 3, num_levels=2)
    with pytest.raises(ConfigValueError) as e:
        per_level(torch.zeros(1, 2, 4, 4))
    assert (e.value.key, e.value.owner) == ('num_levels', 'ConvConnector')
    assert e.value.expected == ('None: the tap is one map, not a multi-level '
                                'tap (tuple of maps)')
    assert e.value.found == '2'
    with pytest.raises(ConfigValueError) as e:
        per_level([torch.zeros(1, 2, 4, 4)] * 3)
    assert e.value.key == 'num_levels'
    assert e.value.expected == ('3, the levels of the tap (or None for one '
                                'layer shared by all levels)')
    assert e.value.found == '2'


@pytest.mark.parametrize('kwargs, key, expected, found', [
    (dict(in_channels=0), 'in_channels', 'an int >= 1', '0'),
    (dict(out_channels=2.0), 'out_channels', 'an int >= 1', '2.0'),
    (dict(kernel_size=2), 'kernel_size',
     'an odd int (the spatial size is kept)', '2'),
    (dict(init_std=0), 'init_std', 'a finite number > 0', '0'),
    (dict(num_levels=0), 'num_levels', 'an int >= 1', '0'),
])
def test_bad_arguments_are_explained(kwargs, key, expected, found):
    args = dict(in_channels=2, out_channels=3)
    args.update(kwargs)
    with pytest.raises(ConfigValueError) as e:
        ConvConnector(**args)
    assert (e.value.owner, e.value.key) == ('ConvConnector', key)
    assert e.value.expected == expected
    assert e.value.found == found


def test_optional_arguments_may_be_none():
    connector = ConvConnector(2, 3, init_std=None, num_levels=None)
    assert connector.num_levels is None and len(connector.layers) == 1
