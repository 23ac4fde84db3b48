"""Random batches in the form a dataloader gives them (uint8 images and
data samples, before the data preprocessor), for tests and benchmarks; as
``mmdet.testing.demo_mm_inputs``."""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor


def demo_seg_inputs(batch_size: int = 2,
                    size: int = 32,
                    num_classes: int = 3,
                    seed: int = 0) -> Dict[str, list]:
    """A segmentation batch of random square images and label maps.

    Args:
        batch_size (int): Number of images ``N``.
        size (int): Side ``S`` of every image.
        num_classes (int): Labels are drawn from ``0 .. num_classes - 1``.
        seed (int): Seed of the generator (same seed, same batch).

    Returns:
        dict: ``inputs`` (``N`` uint8 tensors ``(3, S, S)``) and
        ``data_samples`` (``N`` ``SegDataSample`` with ``gt_sem_seg`` ``(1,
        S, S)`` and ``img_shape = ori_shape = pad_shape = (S, S)``).
    """
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch_size):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, num_classes, (1, size, size), generator=g))
        sample.set_metainfo(dict(img_shape=(size, size),
                                 ori_shape=(size, size),
                                 pad_shape=(size, size)))
        samples.append(sample)
    inputs = [torch.randint(0, 256, (3, size, size), generator=g,
                            dtype=torch.uint8) for _ in range(batch_size)]
    return dict(inputs=inputs, data_samples=samples)


def demo_det_inputs(boxes: Sequence,
                    sizes: Sequence[Tuple[int, int]],
                    num_classes: int = 1,
                    seed: int = 0) -> Dict[str, list]:
    """A detection batch: one random image per size, with its boxes.

    Args:
        boxes (Sequence): Per image, its ground-truth boxes ``(G_n, 4)``
            ``x1, y1, x2, y2`` in pixels (a tensor or nested lists; ``G_n``
            may be 0).
        sizes (Sequence[tuple[int, int]]): Per image, ``(h, w)``.
        num_classes (int): Labels are drawn from ``0 .. num_classes - 1``
            (all 0 for 1 class).
        seed (int): Seed of the generator.

    Returns:
        dict: ``inputs`` (uint8 ``(3, h, w)`` per image) and
        ``data_samples`` (``DetDataSample`` with ``gt_instances.bboxes``
        ``(G_n, 4)`` float32, ``labels``, and ``img_shape = ori_shape = (h,
        w)``, ``scale_factor = (1, 1)``).
    """
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    if len(boxes) != len(sizes):
        raise ValueError(f'demo_det_inputs: {len(boxes)} box lists for '
                         f'{len(sizes)} image sizes.')
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for (h, w), image_boxes in zip(sizes, boxes):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g,
                                    dtype=torch.uint8))
        sample = DetDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        b = torch.as_tensor(image_boxes, dtype=torch.float32).reshape(-1, 4)
        labels = (torch.randint(0, num_classes, (len(b), ), generator=g)
                  if num_classes > 1 else
                  torch.zeros(len(b), dtype=torch.long))
        sample.gt_instances = InstanceData(bboxes=b.cpu(), labels=labels)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def random_boxes(num_images: int,
                 num_boxes: int,
                 img_shape: Tuple[int, int],
                 seed: int = 0,
                 min_size: float = 8,
                 max_size: float = 600,
                 device: Optional[str] = None) -> List[Tensor]:
    """Random xyxy boxes: corners uniform in the image, sides log-uniform
    in ``[min_size, max_size]``, clipped to the image.

    Returns:
        list[Tensor]: ``num_images`` tensors ``(num_boxes, 4)`` float32.
    """
    img_h, img_w = img_shape
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(num_images):
        wh = torch.exp(torch.empty(num_boxes, 2).uniform_(
            math.log(min_size), math.log(max_size), generator=gen))
        xy = torch.rand(num_boxes, 2, generator=gen) * torch.tensor(
            [img_w, img_h], dtype=torch.float32)
        x2y2 = torch.minimum(xy + wh, torch.tensor([img_w, img_h]).float())
        out.append(torch.cat([xy, x2y2], dim=1).to(device))
    return out
