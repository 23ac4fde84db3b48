import pytest
import torch

from mmkd.taps import as_levels, inputs_of_levels


def test_as_levels_reads_a_tensor_or_a_sequence_of_tensors():
    x = torch.zeros(1, 2, 3, 3)
    assert as_levels(x, 'loss x')[0] is x
    levels = as_levels((x, x[:, :, :2, :2]), 'loss x')
    assert isinstance(levels, list) and len(levels) == 2
    with pytest.raises(TypeError, match='loss x: expected a Tensor'):
        as_levels([x, 'not a map'], 'loss x')


def test_inputs_of_levels_splits_only_entries_with_one_tensor_per_level():
    masks = [torch.full((1, 1), float(i)) for i in range(3)]
    shared = torch.ones(2)
    two = [torch.zeros(1), torch.zeros(1)]  # two tensors: not per level
    inputs = dict(masks=masks, shared=shared, two=two, flag=True,
                  names=['a', 'b', 'c'])

    one = inputs_of_levels(inputs, 3, 1)
    assert one['masks'] is masks[1]
    assert one['shared'] is shared and one['two'] is two
    assert one['flag'] is True and one['names'] == ['a', 'b', 'c']

    kept = inputs_of_levels(dict(inputs, masks=tuple(masks)), 3, [2, 0])
    assert isinstance(kept['masks'], tuple)
    assert [m.item() for m in kept['masks']] == [2.0, 0.0]
    assert kept['two'] is two and kept['names'] == ['a', 'b', 'c']
