"""Synthetic "shapes" scenes, deterministic by seed: the data of the shapes
demo (``projects/shapes_demo``) and of the tiny test datasets
(:mod:`mmkd.testing.tiny_datasets`).

Each scene has a textured background (oriented gratings plus noise in random
colours) and several shaded, speckled objects at several scales, drawn in
random order so that later ones occlude earlier ones. The object classes
(:data:`CLASSES`):

- ``disc`` and ``square`` (filled; told apart by shape, not colour),
- ``triangle`` (filled),
- ``ring`` (a thin annulus, 1-2 px wide: a thin structure).

Object colours and shading are drawn independently of the class, so a model
must recognise shapes, and separate them from the striped clutter. Scenes
are written in the formats the stock datasets read:

- segmentation: ``img_dir/<split>/*.png`` and ``ann_dir/<split>/*.png``
  (0 background, ``k`` the ``k``-th class), for mmseg's ``BaseSegDataset``;
- detection: ``<split>/*.png`` and ``<split>.json`` (COCO, category ``k``
  the ``k``-th class), for mmdet's ``CocoDataset``; objects less than 40%
  visible after occlusion are not annotated.
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

#: Every object class a scene can hold, in label order (label 0 is the
#: background).
CLASSES = ('disc', 'square', 'triangle', 'ring')
#: The segmentation classes of scenes drawn with all of :data:`CLASSES`.
SEG_CLASSES = ('background', ) + CLASSES
#: A colour per class of :data:`SEG_CLASSES`, for label maps.
SEG_PALETTE = [[0, 0, 0], [220, 20, 60], [0, 130, 200], [255, 180, 0],
               [60, 180, 75]]
#: The splits :func:`make_shapes_dataset` writes, in the order of their
#: random streams.
SPLITS = ('train', 'val', 'test')


def _texture(rng: np.random.Generator, h: int, w: int,
             contrast: float = 1.0) -> np.ndarray:
    """An oriented grating in two random colours, with noise: (h, w, 3).

    ``contrast`` scales the second colour's distance from the first and the
    noise (1: as drawn; the random draws are the same for every value)."""
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(3, 12)
    wave = 0.5 + 0.5 * np.sin(
        (xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    noise = rng.normal(0, 12, (h, w, 3))
    if contrast != 1.0:
        c2 = c1 + contrast * (c2 - c1)
        noise = contrast * noise
    tex = wave[..., None] * c1 + (1 - wave[..., None]) * c2
    tex += noise
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
                radius: Tuple[float, float]) -> np.ndarray:
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
               radius: Tuple[float, float] = (0.06, 0.22),
               classes: Sequence[str] = CLASSES,
               background_contrast: float = 1.0):
    """One scene.

    Args:
        rng: The scene's random stream.
        size: Height and width.
        num_objects: Fewest and most objects drawn (later ones may cover
            earlier ones).
        radius: Smallest and largest object radius, as fractions of the
            shorter side.
        classes: The object classes drawn, in label order (names from
            :data:`CLASSES`).
        background_contrast: Scales the background grating's colour
            difference and noise (1: full contrast; smaller: a plainer
            background, the objects' surfaces unchanged).

    Returns:
        tuple: ``image`` (H, W, 3) uint8, ``label`` (H, W) uint8 (0
        background, ``k + 1`` = ``classes[k]``), ``boxes`` list of
        ``(x1, y1, x2, y2, k)`` for objects at least 40% visible.
    """
    unknown = sorted(set(classes) - set(CLASSES))
    if unknown:
        raise ValueError(f'draw_scene: unknown classes {unknown}; the '
                         f'classes are {CLASSES}')
    h, w = size
    image = _texture(rng, h, w, background_contrast)
    label = np.zeros((h, w), np.uint8)
    instance = np.full((h, w), -1, np.int32)
    objects = []
    for i in range(int(rng.integers(num_objects[0], num_objects[1] + 1))):
        cls = int(rng.integers(len(classes)))
        mask = _shape_mask(rng, classes[cls], h, w, radius)
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


def write_split(rng: np.random.Generator, split: str, count: int,
                seg_root: Optional[str] = None,
                det_root: Optional[str] = None,
                size: Tuple[int, int] = (96, 96),
                num_objects: Tuple[int, int] = (3, 7),
                radius: Tuple[float, float] = (0.06, 0.22),
                classes: Sequence[str] = CLASSES,
                name_digits: int = 5,
                background_contrast: float = 1.0) -> None:
    """Draw ``count`` scenes from ``rng`` (:func:`draw_scene`) and write them
    as split ``split`` of the segmentation dataset under ``seg_root`` and of
    the detection dataset under ``det_root`` (either may be None: not
    written). The split's folders are emptied first, so that no scene of an
    earlier, larger split stays.

    Args:
        rng: The split's random stream.
        split: The split's name.
        count: Scenes.
        seg_root: Segmentation dataset root.
        det_root: Detection dataset root.
        size, num_objects, radius, classes: As :func:`draw_scene`.
        name_digits: Digits of the zero-padded file names.
        background_contrast: As :func:`draw_scene`.
    """
    folders = []
    if seg_root is not None:
        folders += [osp.join(seg_root, 'img_dir', split),
                    osp.join(seg_root, 'ann_dir', split)]
    if det_root is not None:
        folders.append(osp.join(det_root, split))
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    images: List[dict] = []
    annotations: List[dict] = []
    for i in range(count):
        image, label, boxes = draw_scene(rng, size, num_objects, radius,
                                         classes, background_contrast)
        name = f'{i:0{name_digits}d}.png'
        if seg_root is not None:
            Image.fromarray(image).save(
                osp.join(seg_root, 'img_dir', split, name))
            Image.fromarray(label).save(
                osp.join(seg_root, 'ann_dir', split, name))
        if det_root is None:
            continue
        Image.fromarray(image).save(osp.join(det_root, split, name))
        images.append(dict(id=i, file_name=name, height=size[0],
                           width=size[1]))
        for x1, y1, x2, y2, cls in boxes:
            annotations.append(dict(
                id=len(annotations), image_id=i, category_id=cls,
                bbox=[x1, y1, x2 - x1, y2 - y1],
                area=(x2 - x1) * (y2 - y1), iscrowd=0))
    if det_root is not None:
        with open(osp.join(det_root, f'{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations,
                           categories=[dict(id=i, name=n)
                                       for i, n in enumerate(classes)]), f)


def make_shapes_dataset(root: str,
                        num_train: int = 300,
                        num_val: int = 200,
                        num_test: int = 1000,
                        size: Tuple[int, int] = (96, 96),
                        seed: int = 0,
                        num_objects: Tuple[int, int] = (3, 7),
                        radius: Tuple[float, float] = (0.06, 0.22),
                        background_contrast: float = 1.0
                        ) -> Dict[str, str]:
    """Write the segmentation (``root/seg``) and detection (``root/det``)
    datasets of the same scenes, with every class of :data:`CLASSES`, in the
    three splits of :data:`SPLITS`: ``train``, ``val`` (for choosing
    settings) and ``test`` (for reporting).

    Split ``k`` of :data:`SPLITS` is drawn from
    ``numpy.random.default_rng([seed, k])``: re-running with the same
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
        background_contrast: As :func:`draw_scene`.

    Returns:
        dict: ``seg`` and ``det`` dataset roots.
    """
    seg_root, det_root = osp.join(root, 'seg'), osp.join(root, 'det')
    counts = dict(train=num_train, val=num_val, test=num_test)
    stamp = dict(counts, size=list(size), seed=seed,
                 num_objects=list(num_objects), radius=list(radius))
    if background_contrast != 1.0:  # folders of full contrast keep theirs
        stamp['background_contrast'] = background_contrast
    stamp_file = osp.join(root, 'generated.json')
    if osp.exists(stamp_file):
        with open(stamp_file) as f:
            if json.load(f) == stamp:
                return dict(seg=seg_root, det=det_root)
        os.remove(stamp_file)
    for k, split in enumerate(SPLITS):
        write_split(np.random.default_rng([seed, k]), split, counts[split],
                    seg_root, det_root, size, num_objects, radius,
                    background_contrast=background_contrast)
    with open(stamp_file, 'w') as f:
        json.dump(stamp, f)
    return dict(seg=seg_root, det=det_root)
