"""The errors of the connectors on their inputs: a tap's tensors, which no
config value sets (a config value that does not fit them raises a
``ConfigValueError``, tested with each connector by its key). The message
is the point: it names the input and what was found."""
import pytest
import torch

from mmkd.models.connectors import ConvConnector, HintRegressor

CASES = {
    'conv_connector_levels_that_are_no_maps': (
        lambda: ConvConnector(2, 3)([torch.zeros(1, 2, 4, 4), None]),
        TypeError,
        r'^ConvConnector input: expected a Tensor or a list/tuple of '
        r'Tensors \(one per level\)'),
    'hint_regressor_3d_map': (
        lambda: HintRegressor(2, 2, student_size=(8, 8),
                              teacher_size=(4, 4))(torch.randn(2, 8, 8)),
        ValueError,
        r'^HintRegressor\(2 -> 2, kernel 5x5\) expects \(N, C, H, W\) maps, '
        r'found shape \(2, 8, 8\)'),
}


@pytest.mark.parametrize('call, error, message', CASES.values(),
                         ids=CASES.keys())
def test_input_errors_are_explained(call, error, message):
    with pytest.raises(error, match=message):
        call()
