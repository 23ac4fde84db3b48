"""FocalRegion (FGD's masks): hand-computed foreground and background of
boxes on one level, the smaller box winning, an image without boxes, and
the boxes scaled by the padded input size."""
import torch

from mmkd.task_modules import FocalRegion


def test_one_box_and_its_background():
    # stride 4: box [4, 4, 8, 8] covers x' = y' = 1 .. 2, the cells 1 .. 2
    # (both ends), 4 cells of 1 / ((2 + 1 - 1) · (2 + 1 - 1)) = 1/4
    fg, bg = FocalRegion()([torch.tensor([[4., 4., 8., 8.]])], (4, 4),
                           (16, 16))
    expected = torch.zeros(1, 4, 4)
    expected[0, 1:3, 1:3] = 0.25
    assert torch.equal(fg, expected)
    assert torch.allclose(bg, (expected == 0).float() / 12)
    assert abs(bg.sum().item() - 1) < 1e-6


def test_the_smaller_box_wins_and_a_full_foreground_has_no_background():
    boxes = torch.tensor([[0., 0., 12., 12.], [4., 4., 8., 8.]])
    fg, bg = FocalRegion()([boxes], (4, 4), (16, 16))
    # the large box: cells 0 .. 3, 1/16 each; the small one keeps its 1/4
    expected = torch.full((1, 4, 4), 1 / 16)
    expected[0, 1:3, 1:3] = 0.25
    assert torch.equal(fg, expected)
    assert torch.equal(bg, torch.zeros(1, 4, 4))


def test_an_image_without_boxes_is_all_background():
    fg, bg = FocalRegion()([torch.zeros(0, 4)], (2, 3), (8, 12))
    assert torch.equal(fg, torch.zeros(1, 2, 3))
    assert torch.allclose(bg, torch.full((1, 2, 3), 1 / 6))


def test_fractional_boxes_round_outwards_and_stop_at_the_border():
    # stride 8 on a 3x3 map: x' = 2 / 8 .. 23 / 8 = 0.25 .. 2.875 -> cells
    # 0 .. 3 (3 cut at the border), area counted before the cut: 1 / 16;
    # y' = 9 / 8 .. 15 / 8 -> cells 1 .. 2: 1 / (2 · 4) = 1/8
    fg, _ = FocalRegion()([torch.tensor([[2., 9., 23., 15.]])], (3, 3),
                          (24, 24))
    expected = torch.zeros(1, 3, 3)
    expected[0, 1:3, :] = 1 / 8
    assert torch.equal(fg, expected)
