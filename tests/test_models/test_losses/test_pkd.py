"""PKDLoss: hand-computed values, the official formula (MMRazor's PKDLoss,
re-implemented here from it), levels summed, resizing, clear errors."""
import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses import PKDLoss


def official_pkd(preds_s, preds_t, loss_weight=1.0):
    """The official formula: per level, standardise each channel over N·H·W
    (unbiased std + 1e-6), MSE / 2; summed over levels."""
    loss = 0.
    for s, t in zip(preds_s, preds_t):
        if s.shape[2] != t.shape[2]:
            s = F.interpolate(s, t.shape[2:], mode='bilinear')
        normed = []
        for x in (s, t):
            n, c, h, w = x.shape
            flat = x.permute(1, 0, 2, 3).reshape(c, -1)
            flat = (flat - flat.mean(-1, keepdim=True)) / (
                flat.std(-1, keepdim=True) + 1e-6)
            normed.append(flat.reshape(c, n, h, w).permute(1, 0, 2, 3))
        loss += F.mse_loss(*normed) / 2
    return loss * loss_weight


def test_hand_computed_values():
    s = torch.tensor([0., 1., 2., 3.]).reshape(1, 1, 2, 2)
    # a scaled, shifted copy correlates perfectly: 0
    assert PKDLoss()(s, 2 * s + 5).item() == pytest.approx(0, abs=1e-6)
    # reversed: r = -1, the standardised maps are opposite, so the loss is
    # 2 · mean(ŝ²) = 2 · (n − 1) / n = 1.5 for n = 4 (unbiased std)
    assert PKDLoss()(s, 3 - s).item() == pytest.approx(1.5, rel=1e-5)
    # the weight applies to each level, and the levels add up
    assert PKDLoss(loss_weight=6)([s, s], [3 - s, 2 * s]).item() == \
        pytest.approx(6 * 1.5, rel=1e-5)


def test_matches_the_official_formula():
    torch.manual_seed(0)
    s = [torch.randn(2, 8, 16, 24) * 3, torch.randn(2, 8, 8, 12) + 1]
    t = [torch.randn(2, 8, 8, 12) * 20 - 4, torch.randn(2, 8, 8, 12)]
    ours = PKDLoss(loss_weight=6)(s, t)
    assert ours.item() == pytest.approx(
        official_pkd(s, t, loss_weight=6).item(), rel=1e-5)
    # resize_student=False brings the teacher to the student's size
    t0 = F.interpolate(t[0], s[0].shape[2:], mode='bilinear')
    assert PKDLoss(resize_student=False)(s[0], t[0]).item() == \
        pytest.approx(official_pkd([s[0]], [t0]).item(), rel=1e-5)


def test_gradient_reaches_the_student_only():
    s = torch.randn(2, 4, 5, 5, requires_grad=True)
    t = torch.randn(2, 4, 5, 5, requires_grad=True)
    PKDLoss()(s, t).backward()
    assert s.grad.abs().sum() > 0
    assert t.grad is None
