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
