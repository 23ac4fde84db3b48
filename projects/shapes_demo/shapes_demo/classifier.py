"""The study regime's student initialisation: a backbone pretrained on
another task than the one distilled, as the papers' students start from an
ImageNet classifier.

The other task is *which object classes a scene holds* (multi-label
classification of whole scenes of the pretraining pool): the student's own
backbone, global average pooling and one linear layer, trained with a
binary cross-entropy per class. The segmentation and detection students
then take the backbone's weights (``prefix='backbone.'``) and train their
necks and heads from their stock initialisation.
"""
import glob
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
class ShapesPresenceDataset(Dataset):
    """Scenes of a generated segmentation split with the classes they hold.

    Args:
        data_root: The segmentation dataset root (``img_dir/<split>`` and
            ``ann_dir/<split>`` of :func:`make_shapes_dataset`).
        split: The split's name.
        min_pixels: Pixels of a class a scene must show for the class to
            count as present (smaller remnants of occluded objects do not).
        flip: Flip each scene left-right with probability 0.5 (training).
    """

    def __init__(self, data_root: str, split: str, min_pixels: int = 20,
                 flip: bool = False) -> None:
        self.images = sorted(
            glob.glob(osp.join(data_root, 'img_dir', split, '*.png')))
        if not self.images:
            raise FileNotFoundError(
                f'ShapesPresenceDataset: no scenes in '
                f'{osp.join(data_root, "img_dir", split)}; generate them '
                'with mmkd.testing.make_shapes_dataset first')
        self.labels = [p.replace(osp.join('img_dir', split),
                                 osp.join('ann_dir', split))
                       for p in self.images]
        self.min_pixels = min_pixels
        self.flip = flip

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Dict[str, Tensor]:
        image = mmcv.imread(self.images[index])  # BGR, as the students read
        label = mmcv.imread(self.labels[index], flag='unchanged')
        counts = np.bincount(label.ravel(), minlength=len(CLASSES) + 1)
        target = torch.from_numpy(
            (counts[1:] >= self.min_pixels).astype(np.float32))
        if self.flip and np.random.rand() < 0.5:
            image = image[:, ::-1]
        inputs = torch.from_numpy(
            np.ascontiguousarray(image.transpose(2, 0, 1)))
        return dict(inputs=inputs, data_samples=target)


@MODELS.register_module()
class ShapesPresenceClassifier(BaseModel):
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
        """``mode='loss'``: the binary cross-entropy against the ``(N,
        num_classes)`` presence targets ``data_samples``; ``'predict'``:
        the presence probabilities; ``'tensor'``: the logits."""
        logits = self.logits(inputs)
        if mode == 'loss':
            return dict(loss_presence=F.binary_cross_entropy_with_logits(
                logits, data_samples))
        if mode == 'predict':
            return list(torch.sigmoid(logits))
        return logits


def presence_accuracy(model: ShapesPresenceClassifier,
                      dataset: ShapesPresenceDataset) -> List[float]:
    """Per class, the share of the scenes of ``dataset`` whose presence the
    model gets right (probability above 0.5), in percent."""
    model.eval()
    correct = torch.zeros(len(CLASSES))
    with torch.no_grad():
        for i in range(len(dataset)):
            item = dataset[i]
            data = model.data_preprocessor(
                dict(inputs=item['inputs'][None],
                     data_samples=item['data_samples'][None]))
            probs = model(data['inputs'], mode='predict')[0]
            correct += ((probs > 0.5).float() == item['data_samples']).float()
    return (100 * correct / len(dataset)).tolist()


def train_classifier(task, role: str, config: str, iters: int, seed: int,
                     work_dir: str, split: str = 'val'):
    """Train the presence classifier of ``config`` in ``work_dir`` (the
    pool read from ``$SHAPES_POOL_SEG``) and score it on the pool's
    ``split``: the :class:`StageResult` of a pretraining stage, its metric
    the mean over classes of :func:`presence_accuracy` (``parts``: per
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
    """
    import contextlib
    import os
    import time

    from mmengine.config import Config

    from .stage_run import (QuietRunner, StageResult, close_logger,
                            shorten_schedule)
    from .tasks import CONFIGS
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    if iters != cfg.train_cfg.max_iters:
        shorten_schedule(cfg, iters)
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
    per_class = presence_accuracy(
        runner.model, ShapesPresenceDataset(
            cfg.train_dataloader.dataset.data_root, split))
    close_logger(runner)
    return StageResult(task.name, role, seed, float(np.mean(per_class)),
                       split, per_class,
                       dict(lr=cfg.optim_wrapper.optimizer.lr),
                       time.time() - start, work_dir,
                       osp.join(work_dir, f'iter_{iters}.pth'))
