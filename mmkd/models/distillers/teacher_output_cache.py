"""The frozen teacher's tapped outputs, kept per view and served again when
the same view comes back."""
import hashlib
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch import Tensor

from mmkd.taps import FeatureTaps, map_tensors, tensor_leaves

from .frozen_teacher import TeacherRun


def view_key(image: Tensor, data_sample: Any) -> bytes:
    """What identifies one sample's view for the teacher: a digest of its
    preprocessed image (shape, dtype and every byte, padding included) and
    of its data sample's meta information (image shape, flip, scale, ...:
    what a detector's teacher may read).

    Args:
        image (Tensor): ``(3, H, W)``, one sample of the batch the student's
            data preprocessor made.
        data_sample (Any): Its data sample (``metainfo`` is read), or None.
    """
    digest = hashlib.blake2b(digest_size=16)
    add_value(digest, image)
    meta = getattr(data_sample, 'metainfo', None)
    for name in sorted(meta or {}):
        digest.update(repr(name).encode())
        add_value(digest, meta[name])
    return digest.digest()


def add_value(digest: Any, value: Any) -> None:
    """Feed ``value`` (an image, or a meta information value) to ``digest``
    whole: tensors and arrays by their dtype, shape and bytes (their
    ``repr`` elides the middle of a large one), sequences and dicts item by
    item, anything else by its ``repr``.

    Args:
        digest: A ``hashlib`` hash object.
        value (Any): What to feed it.
    """
    if isinstance(value, Tensor):
        flat = value.detach().contiguous().cpu().view(-1)
        digest.update(repr(('tensor', str(value.dtype),
                            tuple(value.shape))).encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, np.ndarray) and value.dtype != object:
        digest.update(repr(('ndarray', str(value.dtype),
                            value.shape)).encode())
        digest.update(np.ascontiguousarray(value).view(np.uint8).tobytes())
    elif isinstance(value, np.ndarray):  # of Python objects
        add_value(digest, value.tolist())
    elif isinstance(value, (list, tuple)):
        digest.update(f'{type(value).__name__}[{len(value)}]'.encode())
        for item in value:
            add_value(digest, item)
    elif isinstance(value, dict):
        digest.update(f'dict[{len(value)}]'.encode())
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode())
            add_value(digest, value[key])
    else:
        digest.update(repr(value).encode())


def output_bytes(outputs: Dict[str, List[Any]]) -> int:
    """Bytes of the tensors of one view's tapped outputs."""
    return sum(t.numel() * t.element_size()
               for calls in outputs.values() for out in calls
               for t in tensor_leaves(out))


class CachedTeacherRun:
    """A :class:`~mmkd.models.distillers.frozen_teacher.TeacherRun` that
    runs the teacher only on the views of a batch it has not seen, and
    fills the teacher's taps for the others with what the teacher output
    for them before.

    Which views come back: the same preprocessed image with the same meta
    information (:func:`view_key`), e.g. a fixed image with or without its
    flip in a pipeline that only flips. Under random crops, resizes or
    colour changes views hardly recur and every sample runs the teacher.
    The frozen teacher (eval mode, no gradient) gives each sample an output
    that depends on that sample alone, so a kept output is what the
    teacher computes for the view again, up to the floating-point rounding
    of a batch of another composition (measured: a sample's output in a
    batch of 8 and alone differ by up to about 1e-6 in features of order 1
    on a CPU; in batches of 8 and 3 they are equal).

    A batch with no kept view runs the teacher as :class:`TeacherRun` does
    and its taps hold what the teacher recorded. Otherwise the teacher runs
    on the unseen views alone (none if all were seen), and each tap holds
    the batch's outputs put together per sample in batch order.

    The kept outputs stay on their device; when they take ``max_bytes``,
    no further view is kept (the ones kept stay: under a shuffled sampler,
    replacing them would not raise the hit rate).

    Args:
        run (TeacherRun): The distiller's teacher run.
        taps (FeatureTaps): The distiller's teacher taps.
        max_bytes (int): The most the kept outputs may take.
    """

    def __init__(self, run: TeacherRun, taps: FeatureTaps,
                 max_bytes: int) -> None:
        self.run, self.taps, self.max_bytes = run, taps, max_bytes
        self.kept: Dict[bytes, Dict[str, List[Any]]] = {}
        self.kept_bytes = 0
        self.full = False
        #: samples served, those served from the kept outputs, and batches
        #: that ran the teacher (on some of their samples)
        self.counts = dict(samples=0, hits=0, teacher_runs=0)

    def __getattr__(self, name: str) -> Any:
        # forward, precision, stop, teacher: the wrapped run's
        if name.startswith('__') or 'run' not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__['run'], name)

    def __call__(self, inputs: Tensor, data_samples: Optional[list],
                 student_preprocessor: nn.Module) -> None:
        """Fill the teacher's taps for the batch (as
        :meth:`TeacherRun.__call__` does; returns nothing: the taps hold
        what the losses use).

        Args:
            inputs (Tensor): ``(N, 3, H, W)`` as the student's data
                preprocessor made it.
            data_samples (list, optional): The batch's data samples.
            student_preprocessor (nn.Module): The student's data
                preprocessor.
        """
        samples = data_samples or [None] * len(inputs)
        keys = [view_key(image, sample)
                for image, sample in zip(inputs, samples)]
        unseen = [i for i, key in enumerate(keys) if key not in self.kept
                  and key not in keys[:i]]
        self.counts['samples'] += len(keys)
        self.counts['hits'] += sum(key in self.kept for key in keys)
        fresh = self._run_teacher(inputs, data_samples, student_preprocessor,
                                  unseen)
        self._keep(keys, fresh)
        if len(unseen) == len(keys):
            return
        served = {keys[i]: outputs for i, outputs in fresh.items()}
        served.update({key: self.kept[key] for key in keys
                       if key not in served})
        for name in self.taps.paths:
            self.taps.replace(name, stack_views(
                [served[key][name] for key in keys]))

    def _run_teacher(self, inputs: Tensor, data_samples: Optional[list],
                     student_preprocessor: nn.Module,
                     unseen: List[int]) -> Dict[int, Dict[str, List[Any]]]:
        """Run the teacher on the samples ``unseen`` of the batch; their
        tapped outputs per sample (batch index -> tap -> calls)."""
        if not unseen:
            return {}
        self.counts['teacher_runs'] += 1
        whole = len(unseen) == len(inputs)
        self.run(inputs if whole else inputs[unseen],
                 data_samples if whole or data_samples is None else
                 [data_samples[i] for i in unseen], student_preprocessor)
        fresh: Dict[int, Dict[str, List[Any]]] = {i: {} for i in unseen}
        for name in self.taps.paths:
            calls = self.taps.outputs(name)
            for out in calls:
                check_batch_dim(out, len(unseen), self.taps.where, name)
            for j, i in enumerate(unseen):
                fresh[i][name] = [map_tensors(lambda t: t[j].clone(), out)
                                  for out in calls]
        return fresh

    def _keep(self, keys: List[bytes],
              fresh: Dict[int, Dict[str, List[Any]]]) -> None:
        for i, outputs in fresh.items():
            if self.full:
                return
            size = output_bytes(outputs)
            if self.kept_bytes + size > self.max_bytes:
                self.full = True
                print_log(
                    f'Teacher output cache: {len(self.kept)} views kept '
                    f'({self.kept_bytes / 2**20:.0f} MiB of max_bytes '
                    f'{self.max_bytes / 2**20:.0f} MiB); views not seen so '
                    'far run the teacher every time they come.',
                    logger='current', level=30)
                return
            self.kept[keys[i]] = outputs
            self.kept_bytes += size


def check_batch_dim(output: Any, size: int, where: str, name: str) -> None:
    """Raise unless every tensor of a tapped ``output`` has the batch's
    ``size`` samples along dim 0 (the outputs are kept per sample)."""
    for t in tensor_leaves(output):
        if t.dim() == 0 or t.shape[0] != size:
            raise RuntimeError(
                f'{where}.{name}: a tensor of shape {tuple(t.shape)} in its '
                f'output has no batch dimension of the {size} samples the '
                'teacher ran on, so its outputs cannot be kept per view. '
                'Remove TeacherOutputCacheHook from custom_hooks for this '
                'model.')


def stack_views(views: List[List[Any]]) -> List[Any]:
    """One tap's outputs for a batch from its outputs per view.

    Args:
        views (list): Per sample in batch order, the tap's outputs (one per
            call of its module), each a tensor without batch dimension or a
            tuple, list or dict of them.

    Returns:
        list: Per call, the output with its tensors stacked along a new
        dim 0.
    """
    calls = []
    for c, first in enumerate(views[0]):
        leaves = [tensor_leaves(view[c]) for view in views]
        stacked = iter([torch.stack(parts) for parts in zip(*leaves)])
        calls.append(map_tensors(lambda _: next(stacked), first))
    return calls
