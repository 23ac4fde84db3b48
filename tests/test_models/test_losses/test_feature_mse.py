"""FeatureMSELoss: loss_weight · mean((s − t)²), averaged over levels."""
import pytest
import torch

from mmkd.models.losses.feature_mse import FeatureMSELoss


def test_mean_over_elements_then_levels():
    s = torch.zeros(1, 1, 2, 2)
    t = torch.full((1, 1, 2, 2), 2.0)
    assert FeatureMSELoss()(s, t).item() == pytest.approx(4.0)
    # levels of 4 and 0 average to 2, times the weight
    assert FeatureMSELoss(loss_weight=0.5)([s, s], [t, s]).item() == \
        pytest.approx(1.0)


def test_errors_are_explained():
    s = torch.zeros(1, 1, 2, 2)
    with pytest.raises(TypeError, match=(
            r'^FeatureMSELoss teacher: expected a Tensor or a list/tuple of '
            r'Tensors \(one per level\)')):
        FeatureMSELoss()(s, None)
    with pytest.raises(ValueError, match='^FeatureMSELoss: the student tap '
                       'has 2 levels but the teacher tap has 1'):
        FeatureMSELoss()([s, s], [s])
    with pytest.raises(ValueError, match='^FeatureMSELoss: got no levels'):
        FeatureMSELoss()([], [])
    with pytest.raises(ValueError, match=r'^FeatureMSELoss: student shape '
                       r'\(1, 1, 2, 2\) differs from teacher shape'):
        FeatureMSELoss()(s, torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError, match=r'^level 1: FeatureMSELoss: student '
                       r'shape \(1, 1, 2, 2\) differs from teacher shape'):
        FeatureMSELoss()([s, s], [s, torch.zeros(1, 2, 2, 2)])
