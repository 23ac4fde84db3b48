"""Tiny synthetic datasets in the formats the stock mmseg and mmdet datasets
read, for tests and smoke runs (deterministic by seed)."""
import json
import os
import os.path as osp
from typing import Sequence, Tuple

import numpy as np
from PIL import Image

SEG_CLASSES = ('background', 'square', 'disc')
DET_CLASSES = ('square', 'disc')


def _draw(rng: np.random.Generator, size: Tuple[int, int], num_shapes: int):
    """An image with noisy texture and ``num_shapes`` shapes.

    Returns:
        tuple: ``image (H, W, 3) uint8``, ``label (H, W) uint8`` (0 background,
        1 square, 2 disc) and the boxes ``[(x1, y1, x2, y2, class), ...]``.
    """
    h, w = size
    image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    label = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    boxes = []
    for _ in range(num_shapes):
        cls = int(rng.integers(1, 3))
        r = int(rng.integers(max(2, min(h, w) // 10), max(3, min(h, w) // 4)))
        cy, cx = int(rng.integers(r, h - r)), int(rng.integers(r, w - r))
        if cls == 1:
            region = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
        else:
            region = (yy - cy)**2 + (xx - cx)**2 <= r * r
        color = np.array([200, 60, 60] if cls == 1 else [60, 200, 60])
        image[region] = np.clip(color + rng.integers(-30, 30, 3), 0, 255)
        label[region] = cls
        ys, xs = np.nonzero(region)
        boxes.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1,
                      int(ys.max()) + 1, cls - 1))
    return image, label, boxes


def make_tiny_seg_dataset(root: str,
                          splits: Sequence[str] = ('train', 'val'),
                          num_images: int = 4,
                          size: Tuple[int, int] = (64, 64),
                          seed: int = 0) -> str:
    """Write ``root/img_dir/<split>/*.png`` and ``root/ann_dir/<split>/*.png``
    (labels 0..2, see :data:`SEG_CLASSES`), as mmseg's ``BaseSegDataset``
    reads with ``img_suffix='.png'``.

    Returns:
        str: ``root``.
    """
    rng = np.random.default_rng(seed)
    for split in splits:
        os.makedirs(osp.join(root, 'img_dir', split), exist_ok=True)
        os.makedirs(osp.join(root, 'ann_dir', split), exist_ok=True)
        for i in range(num_images):
            image, label, _ = _draw(rng, size, num_shapes=3)
            Image.fromarray(image).save(
                osp.join(root, 'img_dir', split, f'{i:04d}.png'))
            Image.fromarray(label).save(
                osp.join(root, 'ann_dir', split, f'{i:04d}.png'))
    return root


def make_tiny_det_dataset(root: str,
                          splits: Sequence[str] = ('train', 'val'),
                          num_images: int = 4,
                          size: Tuple[int, int] = (64, 64),
                          seed: int = 0) -> str:
    """Write ``root/<split>/*.png`` and ``root/<split>.json`` (COCO format,
    categories :data:`DET_CLASSES`), as mmdet's ``CocoDataset`` reads.

    Returns:
        str: ``root``.
    """
    rng = np.random.default_rng(seed)
    for split in splits:
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(num_images):
            image, _, boxes = _draw(rng, size, num_shapes=3)
            name = f'{i:04d}.png'
            Image.fromarray(image).save(osp.join(root, split, name))
            images.append(dict(id=i, file_name=name, height=size[0],
                               width=size[1]))
            for x1, y1, x2, y2, cls in boxes:
                annotations.append(dict(
                    id=len(annotations), image_id=i, category_id=cls,
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    area=(x2 - x1) * (y2 - y1), iscrowd=0))
        coco = dict(images=images, annotations=annotations,
                    categories=[dict(id=i, name=n)
                                for i, n in enumerate(DET_CLASSES)])
        with open(osp.join(root, f'{split}.json'), 'w') as f:
            json.dump(coco, f)
    return root
