"""The study regime's student initialisation: a backbone pretrained on
another task than the one distilled, as the papers' students start from an
ImageNet classifier.

The other task is ImageNet's own kind: *which class is the object in this
crop* (single-label classification of the objects of the pretraining pool,
each cropped from its box with a margin and resized to a square): the
student's own backbone, global average pooling and one linear layer,
trained with a cross-entropy. The segmentation and detection students then
take the backbone's weights (``prefix='backbone.'``) and train their necks
and heads from their stock initialisation.
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Union

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, MODELS
from torch import Tensor, nn
from torch.utils.data import Dataset

from mmkd.testing.shapes import CLASSES


@DATASETS.register_module()
class ShapesObjectDataset(Dataset):
    """The objects of a generated detection split, one crop each.

    Args:
        data_root: The detection dataset root (``<split>/*.png`` and
            ``<split>.json`` of :func:`make_shapes_dataset`).
        split: The split's name.
        size: Side of the square each crop is resized to.
        margin: Context kept around a box, as a fraction of its larger side.
        flip: Flip each crop left-right with probability 0.5 (training).
    """

    def __init__(self, data_root: str, split: str, size: int = 48,
                 margin: float = 0.2, flip: bool = False) -> None:
        ann_file = osp.join(data_root, f'{split}.json')
        if not osp.exists(ann_file):
            raise FileNotFoundError(
                f'ShapesObjectDataset: no {ann_file}; generate the scenes '
                'with mmkd.testing.make_shapes_dataset first')
        with open(ann_file) as f:
            coco = json.load(f)
        files = {img['id']: osp.join(data_root, split, img['file_name'])
                 for img in coco['images']}
        self.objects = [(files[a['image_id']], a['bbox'], a['category_id'])
                        for a in coco['annotations']]
        self.size, self.margin, self.flip = size, margin, flip

    def __len__(self) -> int:
        return len(self.objects)

    def __getitem__(self, index: int) -> Dict[str, Tensor]:
        path, (x, y, w, h), label = self.objects[index]
        image = mmcv.imread(path)  # BGR, as the students read
        pad = self.margin * max(w, h)
        x1, y1 = max(0, int(x - pad)), max(0, int(y - pad))
        x2 = min(image.shape[1], int(np.ceil(x + w + pad)))
        y2 = min(image.shape[0], int(np.ceil(y + h + pad)))
        crop = mmcv.imresize(image[y1:y2, x1:x2], (self.size, self.size))
        if self.flip and np.random.rand() < 0.5:
            crop = crop[:, ::-1]
        inputs = torch.from_numpy(
            np.ascontiguousarray(crop.transpose(2, 0, 1)))
        return dict(inputs=inputs, data_samples=torch.tensor(label))


@MODELS.register_module()
class ShapesObjectClassifier(BaseModel):
    """A backbone, global average pooling of its last output and a linear
    layer giving one logit per object class.

    Args:
        backbone: The backbone's config (the student's, by its registered
            name in the config's default scope).
        in_channels: Channels of the backbone's last output.
        num_classes: Object classes (logits).
        data_preprocessor: mmengine's ``ImgDataPreprocessor`` config (the
            students' mean, std and BGR-to-RGB conversion).
        init_cfg: Initialisation config.
    """

    def __init__(self, backbone: dict, in_channels: int,
                 num_classes: int = len(CLASSES),
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.head = nn.Linear(in_channels, num_classes)

    def logits(self, inputs: Tensor) -> Tensor:
        """``(N, num_classes)`` logits of ``(N, 3, H, W)`` inputs."""
        features = self.backbone(inputs)
        last = features[-1] if isinstance(features, (list, tuple)) \
            else features
        return self.head(last.mean(dim=(2, 3)))

    def forward(self, inputs: Tensor, data_samples: Optional[Tensor] = None,
                mode: str = 'tensor') -> Union[Dict[str, Tensor], Tensor,
                                               List[Tensor]]:
        """``mode='loss'``: the cross-entropy against the ``(N, )`` class
        indices ``data_samples``; ``'predict'``: the predicted classes;
        ``'tensor'``: the logits."""
        logits = self.logits(inputs)
        if mode == 'loss':
            return dict(loss_cls=F.cross_entropy(logits, data_samples))
        if mode == 'predict':
            return list(logits.argmax(dim=1))
        return logits


def class_accuracy(model: ShapesObjectClassifier,
                   dataset: ShapesObjectDataset) -> List[float]:
    """Per class, the share of the objects of ``dataset`` the model
    classifies right, in percent (None for a class without objects)."""
    model.eval()
    right = torch.zeros(len(CLASSES))
    total = torch.zeros(len(CLASSES))
    with torch.no_grad():
        for start in range(0, len(dataset), 64):
            items = [dataset[i] for i in
                     range(start, min(len(dataset), start + 64))]
            labels = torch.stack([item['data_samples'] for item in items])
            data = model.data_preprocessor(dict(
                inputs=torch.stack([item['inputs'] for item in items]),
                data_samples=labels))
            predicted = torch.stack(model(data['inputs'], mode='predict'))
            total += torch.bincount(labels, minlength=len(CLASSES))
            right += torch.bincount(labels[predicted == labels],
                                    minlength=len(CLASSES))
    return [100 * float(r / t) if t else None for r, t in zip(right, total)]


def train_classifier(task, role: str, config: str, iters: int, seed: int,
                     work_dir: str, split: str = 'val',
                     resume: bool = False):
    """Train the object classifier of ``config`` in ``work_dir`` (the
    pool read from ``$SHAPES_POOL_DET``) and score it on the pool's
    ``split``: the :class:`StageResult` of a pretraining stage, its metric
    the mean over classes of :func:`class_accuracy` (``parts``: per
    class).

    Args:
        task: The task whose student's backbone it pretrains.
        role: The stage's role (``'pretraining'``).
        config: The classifier's config, relative to ``configs/``.
        iters: Training iterations (another number than the config's
            shortens its schedule, as the demo's stages do).
        seed: Training seed.
        work_dir: The stage's work directory.
        split: The pool's split scored.
        resume: Continue an interrupted run in ``work_dir``
            (``stage_run.make_resumable``).
    """
    import contextlib
    import os
    import time

    from mmengine.config import Config

    from .stage_run import (QuietRunner, StageResult, close_logger,
                            make_resumable, shorten_schedule)
    from .tasks import CONFIGS
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    if iters != cfg.train_cfg.max_iters:
        shorten_schedule(cfg, iters)
    make_resumable(cfg, iters, resume)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    cfg.experiment_name = f'{task.name}_{role}_seed{seed}_{time.time_ns()}'
    cfg.visualizer.name = cfg.experiment_name
    start = time.time()
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, 'console.log'), 'w') as console, \
            contextlib.redirect_stdout(console), \
            contextlib.redirect_stderr(console):
        runner = QuietRunner.from_cfg(cfg)
        runner.train()
    per_class = class_accuracy(runner.model, ShapesObjectDataset(
        cfg.train_dataloader.dataset.data_root, split,
        cfg.train_dataloader.dataset.size))
    close_logger(runner)
    scored = [a for a in per_class if a is not None]
    return StageResult(task.name, role, seed, float(np.mean(scored)),
                       split, per_class,
                       dict(lr=cfg.optim_wrapper.optimizer.lr),
                       time.time() - start, work_dir,
                       osp.join(work_dir, f'iter_{iters}.pth'))
