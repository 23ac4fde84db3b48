"""Tiny synthetic datasets in the formats the stock mmseg and mmdet datasets
read, for tests and smoke runs: a few "shapes" scenes
(:mod:`mmkd.testing.shapes`) with the first two classes, deterministic by
seed."""
from typing import Sequence, Tuple

import numpy as np

from .shapes import CLASSES, write_split

#: The tiny datasets' object classes: label ``k + 1`` (segmentation) and
#: category ``k`` (detection) are ``DET_CLASSES[k]``.
DET_CLASSES = CLASSES[:2]
#: The tiny segmentation dataset's classes (label 0 the background).
SEG_CLASSES = ('background', ) + DET_CLASSES

# the scenes' look, at 64x64 with three objects each
_SCENE = dict(num_objects=(3, 3), classes=DET_CLASSES, name_digits=4)


def make_tiny_seg_dataset(root: str,
                          splits: Sequence[str] = ('train', 'val'),
                          num_images: int = 4,
                          size: Tuple[int, int] = (64, 64),
                          seed: int = 0) -> str:
    """Write ``root/img_dir/<split>/*.png`` and ``root/ann_dir/<split>/*.png``
    (labels 0..2, see :data:`SEG_CLASSES`), as mmseg's ``BaseSegDataset``
    reads with ``img_suffix='.png'``. Split ``k`` of ``splits`` is drawn
    from ``numpy.random.default_rng([seed, k])``.

    Returns:
        str: ``root``.
    """
    for k, split in enumerate(splits):
        write_split(np.random.default_rng([seed, k]), split, num_images,
                    seg_root=root, size=size, **_SCENE)
    return root


def make_tiny_det_dataset(root: str,
                          splits: Sequence[str] = ('train', 'val'),
                          num_images: int = 4,
                          size: Tuple[int, int] = (64, 64),
                          seed: int = 0) -> str:
    """Write ``root/<split>/*.png`` and ``root/<split>.json`` (COCO format,
    categories :data:`DET_CLASSES`), as mmdet's ``CocoDataset`` reads. Split
    ``k`` of ``splits`` is drawn from ``numpy.random.default_rng([seed,
    k])``.

    Returns:
        str: ``root``.
    """
    for k, split in enumerate(splits):
        write_split(np.random.default_rng([seed, k]), split, num_images,
                    det_root=root, size=size, **_SCENE)
    return root
