"""ImitationRegion: the three FGFI regions checked by hand on one level of
stride 8 (a 4x6 feature map of a 32x48 batch input), for a batch of a full
32x48 image and a 20x30 image padded into it (its valid locations: rows
< ceil(20/8) = 3, columns < ceil(30/8) = 4).

The anchors: one 16x16 square per location, centred on ``(8x, 8y)``
(mmdet's ``AnchorGenerator``, stride 8, scale 2, ratio 1, centre offset 0),
so location ``(y, x)`` has the anchor ``[8x - 8, 8y - 8, 8x + 8, 8y + 8]``.
A box equal to one anchor has IoU 1 with it and 1/3 with each of the four
anchors one stride away (overlap 16x8 = 128, union 256 + 256 - 128), less
with every other.
"""
import pytest
import torch

pytest.importorskip('mmcv.ops', reason='needs mmcv with compiled ops')

from mmkd.registry import TASK_UTILS  # noqa: E402
from mmkd.task_modules import ImitationRegion  # noqa: E402
from mmkd.utils.config_checks import (  # noqa: E402
    ConfigKeyError, ConfigValueError)

ANCHORS = dict(type='AnchorGenerator', strides=[8], ratios=[1.0],
               scales=[2])
SIZES = [(4, 6)]
INPUT = (32, 48)
IMG_SHAPES = [(32, 48), (20, 30)]
# image 0: the anchor of (y=1, x=2); image 1: the anchor of (y=2, x=3)
BOXES = [torch.tensor([[8., 0., 24., 16.]]), torch.tensor([[16., 8., 32.,
                                                            24.]])]


def cells(*locations):
    """A ``(4, 6)`` mask with the given ``(y, x)`` locations set."""
    mask = torch.zeros(SIZES[0], dtype=torch.bool)
    for y, x in locations:
        mask[y, x] = True
    return mask


def region(name, psi=0.5, **kwargs):
    return ImitationRegion(
        name, dict(type='mmkd.ImitationMaskGenerator', psi=psi), **kwargs)


def test_imitation_region_keeps_the_anchors_near_each_box():
    (masks, ) = region('imitation', anchor_generator=ANCHORS)(
        BOXES, SIZES, IMG_SHAPES, INPUT)
    assert masks.shape == (2, 4, 6) and masks.dtype == torch.bool
    # psi 0.5: only the anchor equal to the box (the neighbours' 1/3 < 0.5)
    assert torch.equal(masks[0], cells((1, 2)))
    assert torch.equal(masks[1], cells((2, 3)))


def test_imitation_region_leaves_the_padding_out():
    (masks, ) = region('imitation', psi=0.3, anchor_generator=ANCHORS)(
        BOXES, SIZES, IMG_SHAPES, INPUT)
    # psi 0.3: the four neighbours too (1/3 > 0.3)
    assert torch.equal(masks[0],
                       cells((1, 2), (0, 2), (2, 2), (1, 1), (1, 3)))
    # image 1: (3, 3) and (2, 4) are padding (row 3, column 4)
    assert torch.equal(masks[1], cells((2, 3), (1, 3), (2, 2)))


def test_gt_region_is_the_cells_of_the_boxes_inside_each_image():
    boxes = [torch.tensor([[10., 6., 30., 20.]]),
             torch.tensor([[20., 12., 48., 32.]])]
    (masks, ) = region('gt', anchor_generator=ANCHORS)(boxes, SIZES,
                                                        IMG_SHAPES, INPUT)
    # columns floor(10/8) = 1 .. ceil(30/8) - 1 = 3, rows 0 .. ceil(20/8) - 1
    expected0 = torch.zeros(4, 6, dtype=torch.bool)
    expected0[0:3, 1:4] = True
    # columns 2..5 and rows 1..3, cut to the 3x4 image: rows 1..2, cols 2..3
    expected1 = torch.zeros(4, 6, dtype=torch.bool)
    expected1[1:3, 2:4] = True
    assert torch.equal(masks[0], expected0)
    assert torch.equal(masks[1], expected1)


def test_gt_and_full_regions_need_no_anchors():
    """Without anchors the stride of a level is the input size over its
    size: 32 / 4 = 48 / 6 = 8, the same cells as with the anchors."""
    boxes = [torch.tensor([[10., 6., 30., 20.]]), torch.zeros(0, 4)]
    with_anchors = region('gt', anchor_generator=ANCHORS)(
        boxes, SIZES, IMG_SHAPES, INPUT)
    without = region('gt')(boxes, SIZES, IMG_SHAPES, INPUT)
    assert torch.equal(with_anchors[0], without[0])
    assert not without[0][1].any()
    assert region('gt').strides(SIZES, INPUT) == [(8.0, 8.0)]

    (full, ) = region('full')(boxes, SIZES, IMG_SHAPES, INPUT)
    assert full[0].all()
    expected1 = torch.zeros(4, 6, dtype=torch.bool)
    expected1[:3, :4] = True
    assert torch.equal(full[1], expected1)


def test_boxes_of_mmdet_box_type_are_accepted():
    from mmdet.structures.bbox import HorizontalBoxes
    imitation = region('imitation', anchor_generator=ANCHORS)
    plain = imitation(BOXES, SIZES, IMG_SHAPES, INPUT)
    boxed = imitation([HorizontalBoxes(b) for b in BOXES], SIZES, IMG_SHAPES,
                      INPUT)
    assert torch.equal(plain[0], boxed[0])


def test_featmap_sizes_of_a_padded_input():
    anchors = dict(ANCHORS, strides=[4, 8, 16, 32, 64])
    built = region('imitation', anchor_generator=anchors)
    assert built.featmap_sizes((43, 64)) == [(11, 16), (6, 8), (3, 4),
                                             (2, 2), (1, 1)]
    with pytest.raises(ConfigValueError) as e:
        region('full').featmap_sizes((43, 64))
    assert (e.value.key, e.value.owner) == ('anchor_generator',
                                            'ImitationRegion')
    assert e.value.expected == ('an anchor generator (the strides of the '
                                'levels) to compute featmap_sizes')
    assert e.value.found == 'None'


def test_built_from_the_registry():
    built = TASK_UTILS.build(dict(type='mmkd.ImitationRegion', region='gt'))
    assert built.region == 'gt' and built.mask_generator is None


def test_bad_configs():
    with pytest.raises(ConfigValueError) as e:
        ImitationRegion('box')
    assert e.value.key == 'region'
    assert e.value.expected == "one of ('imitation', 'gt', 'full')"
    assert e.value.found == "'box' (str)"
    with pytest.raises(ConfigValueError) as e:
        ImitationRegion('imitation')
    assert e.value.key == 'anchor_generator'
    assert "the student's anchors" in e.value.expected
    assert e.value.found == 'nothing'
    with pytest.raises(ConfigValueError) as e:
        region('full', anchor_generator=ANCHORS)(
            BOXES, SIZES * 2, IMG_SHAPES, INPUT)
    assert e.value.key == 'anchor_generator'
    assert e.value.expected == '2 levels, one per feature level'
    assert e.value.found == '1 levels (strides [(8, 8)])'


def test_mask_generator_config():
    # type defaults to mmkd.ImitationMaskGenerator
    built = ImitationRegion('imitation', dict(psi=0.7), ANCHORS)
    assert built.mask_generator.psi == 0.7
    with pytest.raises(ConfigKeyError) as e:
        ImitationRegion('imitation', dict(type='NoSuchGenerator'), ANCHORS)
    assert e.value.key == 'mask_generator.type'
    assert ('a registered task module, e.g. '
            "'mmkd.ImitationMaskGenerator'") in e.value.expected
    assert e.value.found == "'NoSuchGenerator'"
    with pytest.raises(ConfigValueError) as e:
        ImitationRegion('imitation', dict(psi=2), ANCHORS)
    assert e.value.key == 'mask_generator.psi'
    assert e.value.expected == 'a number in [0, 1]'
    assert e.value.found == '2'
