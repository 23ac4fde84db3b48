"""Imitation-mask pictures: the drawing function and the tool (one image, a
dataset split)."""
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmkd.testing import REPO_ROOT as REPO
from mmkd.testing import TINY_CONFIGS as TINY
from mmkd.testing import load_tool_module
from mmkd.utils.config_checks import ConfigValueError

FGFI = osp.join(TINY, 'fgfi_faster_rcnn_r50_r18_tiny_shapes.py')
TOOL = osp.join(REPO, 'tools', 'visualize_imitation_mask.py')
GRAY = 128


def load_tool():
    return load_tool_module('tools/visualize_imitation_mask.py')


def blend(value):
    from mmkd.visualization.imitation_mask import MASK_COLOR
    return np.round(0.5 * value + 0.5 * np.array(MASK_COLOR,
                                                 np.float32)).astype(np.uint8)


def painted(mask, stride, image_hw, scale):
    """Panel pixels the mask covers: cell (y, x) -> stride x stride pixels,
    cropped to the image, upscaled."""
    mask = np.asarray(mask, bool)
    pixels = np.repeat(np.repeat(mask, stride, 0), stride, 1)
    pixels = pixels[:image_hw[0], :image_hw[1]]
    return np.repeat(np.repeat(pixels, scale, 0), scale, 1)


# ------------------------------------------------------- drawing function
def test_draw_imitation_masks_layout_and_pixels():
    from mmkd.visualization import draw_imitation_masks
    from mmkd.visualization.imitation_mask import BOX_COLOR
    image = np.full((16, 24, 3), GRAY, np.uint8)
    level0 = torch.zeros(4, 6, dtype=torch.bool)
    level0[1, 2] = level0[3, 5] = True
    level1 = torch.ones(3, 4, dtype=torch.bool)  # wider than the image
    out = draw_imitation_masks(image, [level0, level1], strides=[4, (8, 8)],
                               boxes=np.array([[0, 0, 8, 6]]), scale=2,
                               ncols=1, title_height=10, gap=3)
    # two rows of (title 10 + 16*2) pixels, 3 between; one column of 48
    assert out.shape == (2 * (10 + 32) + 3, 48, 3) and out.dtype == np.uint8
    panel0 = out[10:42]
    expected = painted(level0, 4, (16, 24), 2)
    box = (panel0 == BOX_COLOR).all(-1)
    assert box[0, :16].all() and box[:12, 0].all()  # the outline
    assert box.sum() == 2 * (16 + 12) - 4
    assert ((panel0 == blend(GRAY)).all(-1) == (expected & ~box)).all()
    assert ((panel0 == GRAY).all(-1) == (~expected & ~box)).all()
    # level 1 covers the whole image (its cells beyond it are not drawn)
    panel1 = out[10 + 32 + 3 + 10:]
    assert ((panel1 == blend(GRAY)).all(-1) |
            (panel1 == BOX_COLOR).all(-1)).all()
    # the gap stays white
    assert (out[42:45] == 255).all()


def test_draw_imitation_masks_rejects_bad_inputs():
    from mmkd.visualization import draw_imitation_masks
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match='uint8 RGB image'):
        draw_imitation_masks(image.astype(np.float32), [np.ones((2, 2))])
    with pytest.raises(ConfigValueError) as e:
        draw_imitation_masks(image, [np.ones((2, 2))], strides=[4, 8])
    assert (e.value.key, e.value.owner) == ('strides', 'draw_imitation_masks')
    assert e.value.expected == '1 strides, one per mask level'
    assert e.value.found == '2 strides [4, 8]'


# ------------------------------------------------------------------ tool
def test_tool_on_an_image(tiny_data, tmp_path):
    image_path = str(tmp_path / 'gray.png')
    Image.fromarray(np.full((60, 90, 3), GRAY, np.uint8)).save(image_path)
    out = tmp_path / 'mask.png'
    proc = subprocess.run(
        [sys.executable, TOOL, FGFI, image_path, '--gt', '10,6,40,30',
         '50,30,88,58', '--out', str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'kept per level' in proc.stdout + proc.stderr

    picture = np.array(Image.open(out).convert('RGB'))
    # the tiny test pipeline resizes 60x90 to 43x64 (keep ratio, 64x64);
    # panels are upscaled 6x (short side >= 256): 258x384, 5 levels in two
    # rows of 3 with a 16-pixel title above each and 4-pixel gaps
    assert picture.shape == (2 * (16 + 258 + 4) - 4, 3 * (384 + 4) - 4, 3)

    # the blue pixels of the first panel are exactly the level-0 mask (box
    # outlines aside), recomputed from the config with the tool's pieces
    tool = load_tool()
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(FGFI)
    init_default_scope('mmdet')
    item = tool.load_image(cfg, image_path, tool.parse_boxes(
        ['10,6,40,30', '50,30,88,58']), keep_size=False)
    result = tool.MaskFromConfig(cfg)(item['inputs'], item['data_samples'])
    assert result['image'].shape[:2] == (43, 64)
    mask0 = result['masks'][0].numpy()
    assert mask0.any() and not mask0.all()
    from mmkd.visualization.imitation_mask import BOX_COLOR
    panel0 = picture[16:16 + 258, :384]
    box = (panel0 == BOX_COLOR).all(-1)
    expected = painted(mask0, 4, (43, 64), 6)
    assert box.any()
    assert ((panel0 == blend(GRAY)).all(-1) == (expected & ~box)).all()


def test_tool_on_a_dataset_split(tiny_data, tmp_path):
    tool = load_tool()
    written = tool.main([FGFI, '--dataset-split', 'val', '--num', '2',
                         '--out', str(tmp_path / 'masks' / 'val.png'),
                         '--scale', '2'])
    assert written == [str(tmp_path / 'masks' / 'val_0.png'),
                       str(tmp_path / 'masks' / 'val_1.png')]
    for path in written:
        picture = Image.open(path)
        # 64x64 tiny images, 2x: 128x128 panels, 2 rows of 3
        assert picture.size == (3 * (128 + 4) - 4, 2 * (16 + 128 + 4) - 4)


def test_tool_needs_an_image_or_a_split():
    tool = load_tool()
    with pytest.raises(SystemExit):
        tool.parse_args([FGFI])
    with pytest.raises(SystemExit, match='expected x1,y1,x2,y2'):
        tool.parse_boxes(['1,2,3'])
