"""ImitationMaskGenerator: FGFI's imitation region, checked against a
brute-force reference written with explicit Python loops over boxes, levels,
locations and anchors, with IoUs computed by hand (never through mmcv).

The reference runs in two arithmetics:

* float64: the method as specified. The generator computes IoUs in float32
  (mmcv's kernel), so where an anchor's float64 IoU lies within a relative
  ``TIE_BAND`` of its box's threshold ``psi * M`` (threshold > 0) the two may
  legitimately disagree; a location whose answer hangs on such an anchor is
  left out of this comparison. The tests count these locations and require
  them to be rare; most are exact ties (an IoU of exactly ``M / 2``).
* float32, mirroring mmcv's formula operation by operation (``w * h``,
  ``(x2 - x1) * (y2 - y1)``, ``inter / ((area1 + area2) - inter)``, threshold
  ``float32(psi) * M``): must equal the generator at every location, ties
  included.

Comparisons with 0 (``psi = 0``, ``M = 0``) are exact in both: an IoU is 0
exactly when the boxes do not intersect. The strictness of ``>`` on an exact
tie is also tested by hand (``test_strict_threshold_on_exact_tie``).
"""
import math
import random
from typing import List, Sequence, Tuple

import numpy as np
import pytest
import torch

pytest.importorskip('mmcv.ops', reason='needs mmcv with compiled ops')

from mmkd.registry import TASK_UTILS  # noqa: E402
from mmkd.task_modules.imitation_mask_generator import (  # noqa: E402
    ImitationMaskGenerator, valid_location_masks)
from mmkd.utils.config_checks import ConfigValueError, describe  # noqa: E402

TIE_BAND = 1e-6  # relative to the threshold
Box = Tuple[float, float, float, float]


# --------------------------------------------------------------------------
# Brute-force reference: Python loops, IoU by hand, no mmcv.
# --------------------------------------------------------------------------
def ref_iou(a: Box, b: Box) -> float:
    """IoU in float64, areas (x2 - x1) * (y2 - y1) (mmcv's offset=0)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) *
             (b[3] - b[1]) - inter)
    return inter / union if union > 0 else 0.0


def ref_iou_f32(a: Box, b: Box) -> np.float32:
    """The same IoU with every operation rounded to float32, in the order of
    mmcv's kernel (``a`` the gt box, ``b`` the anchor)."""
    f = np.float32
    zero = f(0.0)
    iw = max(zero, min(f(a[2]), f(b[2])) - max(f(a[0]), f(b[0])))
    ih = max(zero, min(f(a[3]), f(b[3])) - max(f(a[1]), f(b[1])))
    inter = iw * ih
    area1 = (f(a[2]) - f(a[0])) * (f(a[3]) - f(a[1]))
    area2 = (f(b[2]) - f(b[0])) * (f(b[3]) - f(b[1]))
    return inter / ((area1 + area2) - inter)


def reference_masks(boxes: Sequence[Box], anchors: Sequence[Sequence[Box]],
                    sizes: Sequence[Tuple[int, int]], psi: float,
                    scope: str, float32: bool = False):
    """Return per level ``(mask, unsure)`` as nested lists ``[y][x]``.

    ``unsure[y][x]`` (float64 only) marks a location whose value hangs on an
    anchor within ``TIE_BAND`` of its box's threshold.
    """
    iou = ref_iou_f32 if float32 else ref_iou
    levels = []
    for (h, w), level in zip(sizes, anchors):
        k = len(level) // (h * w)
        levels.append((h, w, k, level))
    # ious[g][l][y][x][j]
    ious = []
    for box in boxes:
        if float32 and (box[2] - box[0]) * (box[3] - box[1]) == 0:
            # Zero-area box: IoU 0 everywhere (avoids float32 0/0 warnings).
            ious.append([[[[0.0] * k for _ in range(w)] for _ in range(h)]
                         for h, w, k, _ in levels])
            continue
        per_level = []
        for h, w, k, level in levels:
            grid = [[[iou(box, level[(y * w + x) * k + j])
                      for j in range(k)] for x in range(w)] for y in range(h)]
            per_level.append(grid)
        ious.append(per_level)
    result = []
    for lvl, (h, w, k, _) in enumerate(levels):
        mask = [[False] * w for _ in range(h)]
        unsure = [[False] * w for _ in range(h)]
        for g in range(len(boxes)):
            if scope == 'all':
                best = max(v for grid in ious[g] for row in grid
                           for cell in row for v in cell)
            else:
                best = max(v for row in ious[g][lvl] for cell in row
                           for v in cell)
            thr = np.float32(psi) * best if float32 else psi * best
            for y in range(h):
                for x in range(w):
                    for j in range(k):
                        v = ious[g][lvl][y][x][j]
                        if (not float32 and thr > 0
                                and abs(v - thr) <= TIE_BAND * thr):
                            unsure[y][x] = True
                        elif v > thr:
                            mask[y][x] = True
        # A sure "kept" decides the location whatever the unsure anchors do.
        for y in range(h):
            for x in range(w):
                if mask[y][x]:
                    unsure[y][x] = False
        result.append((mask, unsure))
    return result


def make_anchors(rng: random.Random, sizes, strides, num_base):
    """Location-major anchors: row (y * W + x) * K + k, centres at
    (x * stride, y * stride), as mmdet's grid_priors."""
    anchors = []
    for (h, w), stride, k in zip(sizes, strides, num_base):
        base = []
        for _ in range(k):
            if base and rng.random() < 0.3:
                base.append(base[-1])  # duplicate anchor: IoU ties
                continue
            bw = rng.choice([0.5, 1, 2, 3]) * stride * rng.choice([1, 1.5])
            bh = rng.choice([0.5, 1, 2, 3]) * stride * rng.choice([1, 1.5])
            base.append((-bw / 2, -bh / 2, bw / 2, bh / 2))
        level = []
        for y in range(h):
            for x in range(w):
                for b in base:
                    level.append((b[0] + x * stride, b[1] + y * stride,
                                  b[2] + x * stride, b[3] + y * stride))
        anchors.append(level)
    return anchors


def make_boxes(rng: random.Random, img_w: float, img_h: float,
               anchors) -> List[Box]:
    boxes = []
    for _ in range(rng.randint(0, 6)):
        kind = rng.random()
        if kind < 0.45:  # ordinary box, quarter-pixel coordinates
            x1 = rng.randint(-8, int(img_w * 4)) / 4
            y1 = rng.randint(-8, int(img_h * 4)) / 4
            boxes.append((x1, y1, x1 + rng.randint(1, int(img_w * 2)) / 4,
                          y1 + rng.randint(1, int(img_h * 2)) / 4))
        elif kind < 0.55:  # larger than every anchor
            boxes.append((-500.0, -400.0, img_w + 600, img_h + 500))
        elif kind < 0.65:  # smaller than every anchor
            x1 = rng.uniform(0, img_w)
            y1 = rng.uniform(0, img_h)
            boxes.append((x1, y1, x1 + 0.25, y1 + 0.5))
        elif kind < 0.75:  # outside the image and every anchor: M = 0
            boxes.append((img_w + 1000, img_h + 1000, img_w + 1040,
                          img_h + 1030))
        elif kind < 0.85:  # exactly an anchor: IoU 1 (with its duplicates)
            level = rng.choice(anchors)
            boxes.append(rng.choice(level))
        elif kind < 0.92:  # zero width
            x1 = rng.randint(0, int(img_w))
            boxes.append((x1, 0.0, x1, img_h / 2))
        else:  # random float32 coordinates
            x1, y1 = rng.uniform(-10, img_w), rng.uniform(-10, img_h)
            boxes.append((x1, y1, x1 + rng.uniform(0.01, img_w),
                          y1 + rng.uniform(0.01, img_h)))
    # The reference sees exactly the float32 values the generator sees.
    return [tuple(float(v) for v in torch.tensor(b, dtype=torch.float32))
            for b in boxes]


def to_tensors(boxes, anchors):
    gt = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return gt, [torch.tensor(a, dtype=torch.float32) for a in anchors]


def compare(masks, reference):
    """Assert equality on the sure locations; return (#unsure, #total)."""
    unsure_count = total = 0
    for lvl, (mask, (ref, unsure)) in enumerate(zip(masks, reference)):
        assert mask.dtype == torch.bool
        assert tuple(mask.shape) == (len(ref), len(ref[0]))
        ref_t = torch.tensor(ref)
        unsure_t = torch.tensor(unsure)
        sure = ~unsure_t
        assert torch.equal(mask[sure], ref_t[sure]), f'level {lvl}'
        unsure_count += int(unsure_t.sum())
        total += unsure_t.numel()
    return unsure_count, total


# --------------------------------------------------------------------------
# Equality with the reference.
# --------------------------------------------------------------------------
def test_matches_brute_force_on_random_cases():
    rng = random.Random(0)
    unsure = total = cases = 0
    for case in range(400):
        num_levels = rng.randint(1, 3)
        sizes = [(rng.randint(1, 6), rng.randint(1, 6))
                 for _ in range(num_levels)]
        strides = [4 * 2**i for i in range(num_levels)]
        num_base = [rng.randint(1, 3) for _ in range(num_levels)]
        anchors = make_anchors(rng, sizes, strides, num_base)
        img_h, img_w = sizes[0][0] * strides[0], sizes[0][1] * strides[0]
        boxes = make_boxes(rng, img_w, img_h, anchors)
        psi = rng.choice([0.0, 0.25, 0.5, 0.5, 0.7, rng.random()])
        scope = rng.choice(['all', 'level'])
        generator = ImitationMaskGenerator(
            psi=psi, max_iou_scope=scope, box_chunk_size=rng.randint(1, 4))
        gt, anchor_tensors = to_tensors(boxes, anchors)
        masks = generator(gt, anchor_tensors, sizes)
        u, t = compare(masks,
                       reference_masks(boxes, anchors, sizes, psi, scope))
        unsure += u
        total += t
        exact, _ = compare(
            masks,
            reference_masks(boxes, anchors, sizes, psi, scope, float32=True))
        assert exact == 0
        cases += 1
    assert cases == 400
    # Locations left out of the float64 comparison (near-ties) are rare;
    # the float32 comparison above covers them.
    assert unsure <= 0.01 * total, (unsure, total)


def test_psi_one_keeps_nothing():
    rng = random.Random(1)
    for _ in range(50):
        sizes = [(4, 5), (2, 3)]
        anchors = make_anchors(rng, sizes, [4, 8], [3, 2])
        boxes = make_boxes(rng, 20, 16, anchors)
        gt, anchor_tensors = to_tensors(boxes, anchors)
        for scope in ('all', 'level'):
            masks = ImitationMaskGenerator(1.0, scope)(gt, anchor_tensors,
                                                       sizes)
            assert not any(m.any() for m in masks)


def test_strict_threshold_on_exact_tie():
    # Anchor 0 is the box (IoU 1 = M); anchor 1 is its top half (IoU 0.5
    # = psi * M exactly): strict ">" drops it; anchor 2 overlaps nothing.
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    anchors = [torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0],
                             [50.0, 50.0, 60.0, 60.0]])]
    masks = ImitationMaskGenerator(psi=0.5)(gt, anchors, [(1, 3)])
    assert masks[0].tolist() == [[True, False, False]]
    masks = ImitationMaskGenerator(psi=0.49)(gt, anchors, [(1, 3)])
    assert masks[0].tolist() == [[True, True, False]]
    masks = ImitationMaskGenerator(psi=0.0)(gt, anchors, [(1, 3)])
    assert masks[0].tolist() == [[True, True, False]]


def test_box_with_zero_max_iou_contributes_nothing():
    anchors = [torch.tensor([[0.0, 0.0, 8.0, 8.0], [8.0, 0.0, 16.0, 8.0]])]
    outside = torch.tensor([[100.0, 100.0, 120.0, 130.0]])
    for psi in (0.0, 0.5):
        masks = ImitationMaskGenerator(psi)(outside, anchors, [(1, 2)])
        assert not masks[0].any()


def test_scope_all_versus_level():
    # A 4x4 box fits the fine level's 4x4 anchors; the coarse level's 32x32
    # anchors overlap it at IoU 1/64 only.
    gt = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    fine = torch.tensor([[0.0, 0.0, 4.0, 4.0], [4.0, 0.0, 8.0, 4.0]])
    coarse = torch.tensor([[0.0, 0.0, 32.0, 32.0], [32.0, 0.0, 64.0, 32.0]])
    sizes = [(1, 2), (1, 2)]
    all_masks = ImitationMaskGenerator(0.5, 'all')(gt, [fine, coarse], sizes)
    level_masks = ImitationMaskGenerator(0.5, 'level')(gt, [fine, coarse],
                                                       sizes)
    assert [m.tolist() for m in all_masks] == [[[True, False]],
                                               [[False, False]]]
    assert [m.tolist() for m in level_masks] == [[[True, False]],
                                                 [[True, False]]]


def test_no_boxes_gives_all_false_masks():
    anchors = [torch.rand(4 * 5 * 3, 4), torch.rand(2 * 3 * 3, 4)]
    for gt in (torch.zeros(0, 4), torch.zeros(0)):
        masks = ImitationMaskGenerator()(gt, anchors, [(4, 5), (2, 3)])
        assert [tuple(m.shape) for m in masks] == [(4, 5), (2, 3)]
        assert all(m.dtype == torch.bool and not m.any() for m in masks)


def test_chunking_does_not_change_the_mask():
    torch.manual_seed(0)
    sizes = [(20, 30), (10, 15), (5, 8)]
    rng = random.Random(3)
    anchors = make_anchors(rng, sizes, [4, 8, 16], [3, 3, 3])
    anchor_tensors = [torch.tensor(a, dtype=torch.float32) for a in anchors]
    xy = torch.rand(300, 2) * torch.tensor([120.0, 80.0])
    wh = torch.rand(300, 2) * 40 + 1
    gt = torch.cat([xy, xy + wh], dim=1)
    for scope in ('all', 'level'):
        whole = ImitationMaskGenerator(0.5, scope, box_chunk_size=1000)(
            gt, anchor_tensors, sizes)
        chunked = ImitationMaskGenerator(0.5, scope, box_chunk_size=7)(
            gt, anchor_tensors, sizes)
        assert all(torch.equal(a, b) for a, b in zip(whole, chunked))


# --------------------------------------------------------------------------
# mmdet's anchors and valid flags.
# --------------------------------------------------------------------------
def _mmdet_rpn_anchor_generator():
    pytest.importorskip('mmdet')
    from mmdet.models.task_modules.prior_generators import AnchorGenerator
    return AnchorGenerator(
        strides=[4, 8, 16, 32, 64], ratios=[0.5, 1.0, 2.0], scales=[8])


def test_mmdet_grid_priors_are_location_major():
    generator = _mmdet_rpn_anchor_generator()
    sizes = [(6, 9), (3, 5), (2, 3), (1, 2), (1, 1)]
    anchors = generator.grid_priors(sizes, device='cpu')
    for level, (h, w), stride in zip(anchors, sizes, [4, 8, 16, 32, 64]):
        assert level.shape == (h * w * 3, 4)
        centres = (level[:, :2] + level[:, 2:]) / 2
        grid = centres.view(h, w, 3, 2)
        ys, xs = torch.meshgrid(
            torch.arange(h), torch.arange(w), indexing='ij')
        expected = torch.stack([xs, ys], dim=-1).float() * stride
        torch.testing.assert_close(grid, expected[:, :, None].expand_as(grid))


def test_matches_brute_force_with_mmdet_anchors():
    generator = _mmdet_rpn_anchor_generator()
    sizes = [(10, 14), (5, 7), (3, 4), (2, 2), (1, 1)]
    anchors = [a for a in generator.grid_priors(sizes, device='cpu')]
    anchor_lists = [[tuple(r) for r in a.tolist()] for a in anchors]
    rng = random.Random(5)
    unsure = total = 0
    for case in range(4):
        boxes = make_boxes(rng, 56, 40, anchor_lists)
        boxes += [(5.0, 6.0, 30.0, 28.0), (1.0, 1.0, 3.0, 2.5)]
        for scope in ('all', 'level'):
            masks = ImitationMaskGenerator(0.5, scope)(
                torch.tensor(boxes).reshape(-1, 4), anchors, sizes)
            u, t = compare(
                masks,
                reference_masks(boxes, anchor_lists, sizes, 0.5, scope))
            unsure += u
            total += t
            exact, _ = compare(
                masks,
                reference_masks(
                    boxes, anchor_lists, sizes, 0.5, scope, float32=True))
            assert exact == 0
    assert unsure <= 0.01 * total, (unsure, total)


def test_valid_location_masks_follow_mmdet_valid_flags():
    generator = _mmdet_rpn_anchor_generator()
    sizes = [(13, 20), (7, 10), (4, 5), (2, 3), (1, 2)]
    img_shapes = [(50, 77), (52, 80), (17, 3)]
    masks = valid_location_masks(img_shapes, sizes, generator.strides)
    for n, shape in enumerate(img_shapes):
        flags = generator.valid_flags(sizes, shape, device='cpu')
        for lvl, ((h, w), level_flags) in enumerate(zip(sizes, flags)):
            expected = level_flags.view(h, w, 3).all(dim=2)
            assert torch.equal(masks[lvl][n], expected), (n, lvl)


def test_generate_batch_applies_valid_masks():
    sizes = [(2, 4)]
    anchors = [
        torch.tensor([[x * 8.0, y * 8.0, x * 8.0 + 8, y * 8.0 + 8]
                      for y in range(2) for x in range(4)])
    ]
    big = torch.tensor([[0.0, 0.0, 32.0, 16.0]])  # every anchor: IoU 1/8
    gts = [big, big, torch.zeros(0, 4)]
    valid = valid_location_masks([(16, 32), (16, 15), (16, 32)], sizes, [8])
    masks = ImitationMaskGenerator(0.5).generate_batch(gts, anchors, sizes,
                                                       valid)
    assert masks[0].shape == (3, 2, 4)
    assert masks[0][0].all()
    assert masks[0][1].tolist() == [[True, True, False, False]] * 2
    assert not masks[0][2].any()
    unmasked = ImitationMaskGenerator(0.5).generate_batch(
        gts, anchors, sizes)
    assert unmasked[0][1].all()


def test_built_from_task_utils_registries():
    from mmengine.registry import TASK_UTILS as ROOT_TASK_UTILS
    generator = TASK_UTILS.build(
        dict(type='ImitationMaskGenerator', psi=0.4, max_iou_scope='level'))
    assert isinstance(generator, ImitationMaskGenerator)
    assert generator.psi == 0.4 and generator.max_iou_scope == 'level'
    assert isinstance(
        ROOT_TASK_UTILS.build(dict(type='mmkd.ImitationMaskGenerator')),
        ImitationMaskGenerator)
    pytest.importorskip('mmdet')
    from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
    assert isinstance(
        MMDET_TASK_UTILS.build(dict(type='mmkd.ImitationMaskGenerator')),
        ImitationMaskGenerator)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu():
    rng = random.Random(7)
    sizes = [(8, 10), (4, 5)]
    anchors = make_anchors(rng, sizes, [4, 8], [3, 3])
    gt, anchor_tensors = to_tensors(
        [(2.0, 3.0, 20.0, 17.5), (10.0, 1.0, 13.0, 30.0)], anchors)
    cpu = ImitationMaskGenerator()(gt, anchor_tensors, sizes)
    cuda = ImitationMaskGenerator()(gt.cuda(),
                                    [a.cuda() for a in anchor_tensors], sizes)
    assert all(c.is_cuda and torch.equal(c.cpu(), m)
               for c, m in zip(cuda, cpu))


# --------------------------------------------------------------------------
# Errors.
# --------------------------------------------------------------------------
@pytest.mark.parametrize('psi', [-0.1, 1.5, math.nan, None, '0.5', True])
def test_error_psi_not_a_number_in_0_1(psi):
    with pytest.raises(ConfigValueError) as e:
        ImitationMaskGenerator(psi=psi)
    assert (e.value.key, e.value.expected) == ('psi', 'a number in [0, 1]')
    assert e.value.found == describe(psi)


@pytest.mark.parametrize('size', [0, 2.5, '16'])
def test_error_box_chunk_size_not_a_positive_int(size):
    with pytest.raises(ConfigValueError) as e:
        ImitationMaskGenerator(box_chunk_size=size)
    assert e.value.key == 'box_chunk_size'
    assert e.value.expected == 'an int >= 1'
    assert e.value.found == describe(size)


def test_error_unknown_scope():
    with pytest.raises(ConfigValueError) as e:
        ImitationMaskGenerator(max_iou_scope='image')
    assert e.value.key == 'max_iou_scope'
    assert e.value.expected == "'all' or 'level'"
    assert e.value.found == "'image' (str)"


def generate(gt: torch.Tensor, anchors: list, sizes: list):
    """A call of the generator on one image, for the parametrized tests."""
    return lambda: ImitationMaskGenerator()(gt, anchors, sizes)


@pytest.mark.parametrize('call, message', [
    (generate(torch.tensor([[0.0, 0.0, 1.0, 1.0], [5.0, 0.0, 4.0, 3.0]]),
              [torch.rand(6, 4)], [(2, 3)]),
     r'x2 >= x1 and y2 >= y1, found box 1 = \[5.0, 0.0, 4.0, 3.0\]'),
    (generate(torch.zeros(2, 5), [torch.rand(6, 4)], [(2, 3)]),
     r'expected shape \(G, 4\)'),
    (generate(torch.zeros(0, 4), [torch.rand(12, 4), torch.rand(7, 4)],
              [(2, 3), (2, 3)]),
     r'level 1 has 7 anchors, not a positive multiple of H\*W = 2\*3 = 6'),
    (generate(torch.zeros(0, 4), [torch.rand(6, 4), torch.rand(6, 4)],
              [(2, 3)]),
     '2 anchor levels but 1'),
    (lambda: ImitationMaskGenerator().generate_batch(
        [torch.zeros(0, 4)] * 3, [torch.rand(8, 4)], [(2, 4)],
        [torch.ones(2, 2, 4, dtype=torch.bool)]),
     r'valid_masks\[0\] has shape \(2, 2, 4\), expected \(3, 2, 4\)'),
], ids=['box_x2_below_x1', 'box_not_4_coords',
        'anchors_not_a_multiple_of_locations', 'level_counts_differ',
        'valid_mask_of_another_shape'])
def test_error_inputs_are_explained(call, message):
    """Boxes, anchors, sizes and masks of a batch (no config sets them): the
    message names what does not fit."""
    with pytest.raises(ValueError, match=message):
        call()
