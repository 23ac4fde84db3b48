"""Where a region loss looks, as DistillDiagnosticsHook measures it: the
shares of hand-built regions, and the regions ImitationLoss and FGDLoss
name."""
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmkd.engine.diagnostics import region_stats
from mmkd.engine.diagnostics.regions import mask_shares
from mmkd.models.losses import FGDLoss, ImitationLoss


def test_mask_shares_by_hand():
    # one 2x2 map, one channel: s − t is 1 at one location, 3 at another
    student = torch.zeros(1, 1, 2, 2)
    student[0, 0, 0, 0], student[0, 0, 1, 1] = 1.0, 3.0
    teacher = torch.zeros(1, 1, 2, 2)
    mask = torch.tensor([[[True, False], [False, False]]])
    shares = mask_shares(student, teacher, mask)
    # one location of 4; 1 of the 1 + 9 squared difference
    assert shares['cover'] == [0.25, 0.25]
    assert shares['diff'] == pytest.approx([0.1, 0.1])
    # two levels: the last entry is over both
    shares = mask_shares([student, student], [teacher, teacher],
                         [mask, torch.ones_like(mask)])
    assert shares['cover'] == pytest.approx([0.25, 1.0, 5 / 8])
    assert shares['diff'] == pytest.approx([0.1, 1.0, 11 / 20])
    # maps the loss aligns itself: no difference measured
    assert mask_shares(student, torch.zeros(1, 2, 2, 2), mask)['diff'] == []


def test_imitation_loss_region_is_its_mask():
    loss = ImitationLoss()
    feats = [torch.ones(1, 2, 2, 2), torch.ones(1, 2, 1, 1)]
    masks = [torch.ones(1, 2, 2), torch.zeros(1, 1, 1)]
    stats = region_stats(loss, (feats, [f * 0 for f in feats]),
                         dict(masks=masks))
    assert stats['mask']['cover'] == [1.0, 0.0, 0.8]
    assert stats['mask']['diff'] == [1.0, 0.0, 0.8]


def test_fgd_foreground_of_a_box_over_the_whole_image_is_everything():
    loss = FGDLoss(student_channels=2, teacher_channels=2)
    sample = DetDataSample(metainfo=dict(batch_input_shape=(32, 32)))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[0.0, 0.0, 32.0, 32.0]]))
    feat = torch.randn(1, 2, 4, 4)
    stats = region_stats(loss, (feat, feat + 1), dict(data_samples=[sample]))
    assert stats['foreground']['cover'] == [1.0, 1.0]
    assert stats['foreground']['diff'] == [1.0, 1.0]
    # an 8x8 box at the corner: 8 / 32 · 4 = 1 cell, and FGD includes the
    # box's end cell: cells 0 and 1 on each side, 4 of the 16
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[0.0, 0.0, 8.0, 8.0]]))
    stats = region_stats(loss, (feat, feat + 1), dict(data_samples=[sample]))
    assert stats['foreground']['cover'][0] == 4 / 16
