"""Synthetic "shapes" scenes for the end-to-end demo, deterministic by seed.

Each scene has a textured background (oriented gratings plus noise in random
colours) and several shaded, speckled objects of four classes and several
scales, drawn in random order so that later ones occlude earlier ones:

- ``disc`` and ``square`` (filled; told apart by shape, not colour),
- ``triangle`` (filled),
- ``ring`` (a thin annulus, 1-2 px wide: a thin structure).

Object colours and shading are drawn independently of the class, so a model
must recognise shapes, and separate them from the striped clutter. Written
in the formats the stock datasets read:

- segmentation: ``seg/img_dir/<split>/*.png`` and
  ``seg/ann_dir/<split>/*.png`` (0 background, 1..4 the classes), for
  mmseg's ``BaseSegDataset``;
- detection: ``det/<split>/*.png`` and ``det/<split>.json`` (COCO), for
  mmdet's ``CocoDataset``; objects less than 40% visible after occlusion
  are not annotated.

Three splits: ``train``, ``val`` (for choosing settings) and ``test`` (for
reporting). Each split draws from its own random stream, so a split's scenes
do not change when another split's size does.
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

CLASSES = ('disc', 'square', 'triangle', 'ring')
SEG_CLASSES = ('background', ) + CLASSES
SEG_PALETTE = [[0, 0, 0], [220, 20, 60], [0, 130, 200], [255, 180, 0],
               [60, 180, 75]]


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An oriented grating in two random colours, with noise: (h, w, 3)."""
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(3, 12)
    wave = 0.5 + 0.5 * np.sin(
        (xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    tex = wave[..., None] * c1 + (1 - wave[..., None]) * c2
    tex += rng.normal(0, 12, (h, w, 3))
    return tex


def _fill(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An object's surface: a random colour with a soft gradient (shading)
    and speckle noise, (h, w, 3)."""
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    shade = (xx * np.cos(angle) + yy * np.sin(angle)) / max(h, w)
    color = rng.uniform(30, 225, 3)
    return (color + 40 * shade[..., None] +
            rng.normal(0, 10, (h, w, 3)))


def _shape_mask(rng: np.random.Generator, cls: str, h: int, w: int,
                radius: Tuple[float, float] = (0.06, 0.22)) -> np.ndarray:
    """A random object of class ``cls`` as an (h, w) bool mask; its radius
    is drawn from ``radius`` (fractions of the scene's shorter side)."""
    yy, xx = np.mgrid[:h, :w]
    r = rng.uniform(*radius) * min(h, w)  # several scales
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    if cls == 'disc':
        return (yy - cy)**2 + (xx - cx)**2 <= r * r
    if cls == 'square':
        a = rng.uniform(0, np.pi / 2)
        u = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
        v = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
        return (np.abs(u) <= r * 0.85) & (np.abs(v) <= r * 0.85)
    if cls == 'triangle':
        a = rng.uniform(0, 2 * np.pi)
        pts = [(cx + r * np.cos(a + k * 2 * np.pi / 3),
                cy + r * np.sin(a + k * 2 * np.pi / 3)) for k in range(3)]
        inside = np.ones((h, w), bool)
        for k in range(3):
            (x1, y1), (x2, y2) = pts[k], pts[(k + 1) % 3]
            (x3, y3) = pts[(k + 2) % 3]
            side = (x2 - x1) * (yy - y1) - (y2 - y1) * (xx - x1)
            ref = (x2 - x1) * (y3 - y1) - (y2 - y1) * (x3 - x1)
            inside &= side * ref >= 0
        return inside
    # ring: a thin structure
    d = np.sqrt((yy - cy)**2 + (xx - cx)**2)
    width = rng.uniform(1.0, 2.0)
    return np.abs(d - max(r, 4.0)) <= width / 2 + 0.25


def draw_scene(rng: np.random.Generator, size: Tuple[int, int],
               num_objects: Tuple[int, int] = (3, 7),
               radius: Tuple[float, float] = (0.06, 0.22)):
    """One scene.

    Args:
        rng: The scene's random stream.
        size: Height and width.
        num_objects: Fewest and most objects drawn (later ones may cover
            earlier ones).
        radius: Smallest and largest object radius, as fractions of the
            shorter side.

    Returns:
        tuple: ``image`` (H, W, 3) uint8, ``label`` (H, W) uint8 (0 background,
        1..4 = :data:`CLASSES`), ``boxes`` list of ``(x1, y1, x2, y2, cls)``
        for objects at least 40% visible (cls indexes :data:`CLASSES`).
    """
    h, w = size
    image = _texture(rng, h, w)
    label = np.zeros((h, w), np.uint8)
    instance = np.full((h, w), -1, np.int32)
    objects = []
    for i in range(int(rng.integers(num_objects[0], num_objects[1] + 1))):
        cls = int(rng.integers(len(CLASSES)))
        mask = _shape_mask(rng, CLASSES[cls], h, w, radius)
        if mask.sum() < 6:
            continue
        image[mask] = _fill(rng, h, w)[mask]
        label[mask] = cls + 1
        instance[mask] = len(objects)
        objects.append((cls, mask))
    boxes = []
    for idx, (cls, mask) in enumerate(objects):
        visible = instance == idx
        if visible.sum() < 0.4 * mask.sum():
            continue
        ys, xs = np.nonzero(mask)
        boxes.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1,
                      int(ys.max()) + 1, cls))
    return np.clip(image, 0, 255).astype(np.uint8), label, boxes


SPLITS = ('train', 'val', 'test')


def generate(root: str,
             num_train: int = 300,
             num_val: int = 200,
             num_test: int = 1000,
             size: Tuple[int, int] = (96, 96),
             seed: int = 0,
             num_objects: Tuple[int, int] = (3, 7),
             radius: Tuple[float, float] = (0.06, 0.22)) -> Dict[str, str]:
    """Write the segmentation and detection datasets under ``root``.

    The same scenes serve both tasks. Split ``k`` of :data:`SPLITS` is drawn
    from ``numpy.random.default_rng([seed, k])``: re-running with the same
    arguments rewrites identical files, and the val and test scenes stay the
    same whatever ``num_train`` is. A folder already generated with the
    same arguments (its ``generated.json``) is kept as it is.

    Args:
        root: Output folder.
        num_train: Training scenes.
        num_val: Validation scenes (choosing settings).
        num_test: Test scenes (the reported metrics).
        size: Scene height and width.
        seed: Generator seed.
        num_objects: Fewest and most objects per scene.
        radius: Object radius range, as fractions of the shorter side.

    Returns:
        dict: ``seg`` and ``det`` dataset roots.
    """
    seg_root, det_root = osp.join(root, 'seg'), osp.join(root, 'det')
    counts = dict(train=num_train, val=num_val, test=num_test)
    stamp = dict(counts, size=list(size), seed=seed,
                 num_objects=list(num_objects), radius=list(radius))
    stamp_file = osp.join(root, 'generated.json')
    if osp.exists(stamp_file):
        with open(stamp_file) as f:
            if json.load(f) == stamp:
                return dict(seg=seg_root, det=det_root)
        os.remove(stamp_file)
    for k, split in enumerate(SPLITS):
        count = counts[split]
        rng = np.random.default_rng([seed, k])
        # no scene left from an earlier, larger split
        for folder in (osp.join(seg_root, 'img_dir', split),
                       osp.join(seg_root, 'ann_dir', split),
                       osp.join(det_root, split)):
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
        images: List[dict] = []
        annotations: List[dict] = []
        for i in range(count):
            image, label, boxes = draw_scene(rng, size, num_objects, radius)
            name = f'{i:05d}.png'
            Image.fromarray(image).save(osp.join(seg_root, 'img_dir', split,
                                                 name))
            Image.fromarray(label).save(osp.join(seg_root, 'ann_dir', split,
                                                 name))
            Image.fromarray(image).save(osp.join(det_root, split, name))
            images.append(dict(id=i, file_name=name, height=size[0],
                               width=size[1]))
            for x1, y1, x2, y2, cls in boxes:
                annotations.append(dict(
                    id=len(annotations), image_id=i, category_id=cls,
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    area=(x2 - x1) * (y2 - y1), iscrowd=0))
        with open(osp.join(det_root, f'{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations,
                           categories=[dict(id=i, name=n)
                                       for i, n in enumerate(CLASSES)]), f)
    with open(stamp_file, 'w') as f:
        json.dump(stamp, f)
    return dict(seg=seg_root, det=det_root)
