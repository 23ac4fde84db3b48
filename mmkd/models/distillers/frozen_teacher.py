"""The teacher of a distiller: built, loaded, frozen for good, run at its own
precision on the student's batch renormalised for it."""
import contextlib
import types
from typing import Any, ContextManager, Iterable, Mapping, Optional

import torch
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from torch import Tensor

from mmkd.utils.config_checks import ConfigKeyError, ConfigValueError, describe
from mmkd.utils.model_loading import load_model_config, load_weights

#: ``teacher_precision`` -> autocast dtype (None: the step's own context)
TEACHER_PRECISIONS = {'auto': None, 'fp32': torch.float32,
                      'bf16': torch.bfloat16, 'fp16': torch.float16}
TEACHER_FORWARDS = ('tensor', 'extract_feat')


def build_model(cfg: ConfigDict, key: str) -> nn.Module:
    """Build a model of any package from its config (in the package's scope).

    Args:
        cfg (ConfigDict): The model config, with ``_scope_`` where it is not
            mmkd's.
        key (str): The config key that gave it, for the message.
    """
    from mmengine.registry import MODELS as ROOT_MODELS
    try:
        return ROOT_MODELS.build(cfg)
    except KeyError as e:
        raise ConfigKeyError(
            f'{key}.type', 'a model type registered in its package',
            f"'{cfg.get('type')}' ({e})",
            'A model of another package builds in that package\'s scope: '
            "inherit it from a package config (_base_ = 'mmseg::...'), set "
            "default_scope, or give _scope_='mmseg' (or 'mmdet') in the model "
            'dict.') from None


def freeze(model: nn.Module) -> None:
    """Put every module of ``model`` in eval mode for good (dropout and
    drop-path too) and stop its gradients."""
    model.eval()
    model.requires_grad_(False)
    for module in model.modules():
        # model.train() on the teacher, or any of its parts, is a no-op.
        module.train = types.MethodType(lambda self, mode=True: self, module)


def build_frozen_teacher(teacher: Any, checkpoint: Optional[str],
                         min_key_match: float) -> nn.Module:
    """The teacher model, its weights loaded (``model.teacher_checkpoint``)
    and frozen (:func:`freeze`).

    Args:
        teacher (str | dict): ``'mmseg::path.py'``, a local config file or
            an inline model config (``model.teacher``).
        checkpoint (str, optional): Its weights, a local path or URL. Only
            tests leave it out (a random teacher is then logged as a
            warning).
        min_key_match (float): See :func:`~mmkd.utils.load_weights`.
    """
    model = build_model(load_model_config(teacher, 'model.teacher'),
                        'model.teacher')
    if checkpoint is not None:
        load_weights(model, checkpoint, 'model.teacher_checkpoint',
                     min_key_match)
    else:
        print_log(
            'model.teacher_checkpoint is not set: distilling from a randomly '
            'initialised teacher (only meaningful in tests).',
            logger='current', level=30)
    freeze(model)
    return model


def check_teacher_run(forward: Any, precision: Any) -> None:
    """Check ``model.teacher_forward`` and ``model.teacher_precision``."""
    if forward not in TEACHER_FORWARDS:
        raise ConfigValueError(
            'model.teacher_forward', f'one of {list(TEACHER_FORWARDS)}',
            describe(forward),
            "'tensor' runs the teacher's _forward (backbone to head outputs), "
            "'extract_feat' its backbone and neck only.")
    if precision not in TEACHER_PRECISIONS:
        raise ConfigValueError(
            'model.teacher_precision', f'one of {list(TEACHER_PRECISIONS)}',
            describe(precision),
            "'bf16' or 'fp16' run the teacher under autocast, 'fp32' "
            "without, 'auto' as the training step runs.")


def teacher_autocast(precision: str, device_type: str) -> ContextManager:
    """The autocast context of the teacher's forward at ``precision`` (a
    ``teacher_precision``) on ``device_type``: ``'auto'`` leaves the step's
    own context as it is."""
    if precision == 'auto':
        return contextlib.nullcontext()
    dtype = TEACHER_PRECISIONS[precision]
    return torch.autocast(device_type=device_type, dtype=dtype,
                          enabled=dtype is not torch.float32)


def check_data_preprocessor(given: Optional[Mapping],
                            student: Mapping) -> None:
    """Refuse a top-level ``data_preprocessor`` (which mmengine's Runner
    passes to the model) that differs from the student's own: the distiller
    feeds teacher and student with the student's."""

    def plain(cfg):
        cfg = dict(cfg or {})
        cfg.pop('_scope_', None)
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in cfg.items()}

    own = student.get('data_preprocessor')
    if given is None or own is None or plain(given) == plain(own):
        return
    diff = {k: (plain(given).get(k), plain(own).get(k))
            for k in set(plain(given)) | set(plain(own))
            if plain(given).get(k) != plain(own).get(k)}
    raise ConfigValueError(
        'model.data_preprocessor', 'the same as model.student.'
        'data_preprocessor', f'differences {diff} (given, student)',
        'Make them equal, e.g. data_preprocessor = dict(size=crop_size) at '
        'the top level and model.data_preprocessor = data_preprocessor in '
        'the student config.')


def renormalise_for_teacher(inputs: Tensor, student: nn.Module,
                            teacher: Optional[nn.Module]) -> Tensor:
    """The student's preprocessed batch as the teacher's data preprocessor
    would have made it (padding aside), when the two differ in mean/std or
    channel order (e.g. a Caffe-style teacher for a PyTorch-style student).

    Args:
        inputs (Tensor): ``(N, 3, H, W)`` as the student's preprocessor made
            it.
        student (nn.Module): The student's data preprocessor.
        teacher (nn.Module, optional): The teacher's data preprocessor.

    Returns:
        Tensor: ``(N, 3, H, W)``; ``inputs`` itself when nothing differs.
    """
    if teacher is None or not hasattr(teacher, '_enable_normalize'):
        return inputs

    def convention(p):
        swap = bool(getattr(p, '_channel_conversion', False)
                    or getattr(p, 'channel_conversion', False))
        if not getattr(p, '_enable_normalize', False):
            return None, None, swap
        return p.mean, p.std, swap

    s_mean, s_std, s_swap = convention(student)
    t_mean, t_std, t_swap = convention(teacher)
    same = s_swap == t_swap and (s_mean is None) == (t_mean is None) \
        and (s_mean is None or (torch.equal(s_mean, t_mean)
                                and torch.equal(s_std, t_std)))
    if same:
        return inputs
    pixels = inputs if s_mean is None else inputs * s_std + s_mean
    if s_swap != t_swap:
        pixels = pixels.flip(1)
    return pixels if t_mean is None else (pixels - t_mean) / t_std


class TeacherRun:
    """One forward of the frozen teacher per training step, far enough to
    fill its taps: under ``torch.no_grad()``, at ``precision``, on the
    student's batch renormalised for it (:func:`renormalise_for_teacher`).

    How far it runs: ``forward='tensor'`` runs the teacher's ``_forward``
    (backbone to head outputs), ``'extract_feat'`` its backbone and neck.
    A two-stage detector teacher whose taps all lie in its backbone, neck
    and RPN head (e.g. FGFI's D and ID variants) stops after
    ``rpn_head.forward`` with ``'tensor'``: its proposals (NMS) and RoI
    head feed no tap, so skipping them leaves every tap as it is.

    Args:
        teacher (nn.Module): The frozen teacher (:func:`build_frozen_teacher`).
        forward (str): ``model.teacher_forward``.
        precision (str): ``model.teacher_precision``.
        tapped (Iterable[str]): The module paths of the teacher's taps.
    """

    def __init__(self, teacher: nn.Module, forward: str, precision: str,
                 tapped: Iterable[str]) -> None:
        check_teacher_run(forward, precision)
        self.teacher, self.forward, self.precision = teacher, forward, precision
        self.stop = rpn_stop(teacher, forward, tapped)

    def __call__(self, inputs: Tensor, data_samples: list,
                 student_preprocessor: nn.Module) -> Any:
        """Run the teacher on the student's batch.

        Args:
            inputs (Tensor): ``(N, 3, H, W)`` as the student's data
                preprocessor made it.
            data_samples (list): The batch's data samples.
            student_preprocessor (nn.Module): The student's data
                preprocessor (its mean, std and channel order).

        Returns:
            What the teacher's forward returned (its taps hold what the
            losses use).
        """
        with torch.no_grad(), self.autocast(inputs):
            inputs = renormalise_for_teacher(
                inputs, student_preprocessor,
                getattr(self.teacher, 'data_preprocessor', None))
            if self.stop == 'rpn_head':
                return self.teacher.rpn_head(self.teacher.extract_feat(inputs))
            if self.forward == 'extract_feat':
                return self.teacher.extract_feat(inputs)
            return self.teacher(inputs, data_samples, mode='tensor')

    def autocast(self, inputs: Tensor) -> ContextManager:
        """The autocast context of the teacher's forward on the device of
        ``inputs``."""
        return teacher_autocast(self.precision, inputs.device.type)


def rpn_stop(teacher: nn.Module, forward: str,
             tapped: Iterable[str]) -> Optional[str]:
    """Where a teacher run with ``forward='tensor'`` can stop:
    ``'rpn_head'`` for a two-stage detector whose taps (module paths
    ``tapped``) lie in its backbone, neck and RPN head only, else None (the
    whole ``_forward``)."""
    if forward != 'tensor' or not all(
            hasattr(teacher, a) for a in ('rpn_head', 'roi_head',
                                          'extract_feat')) or \
            not getattr(teacher, 'with_rpn', False):
        return None
    parts = {path.split('.')[0] for path in tapped}
    if not parts <= {'backbone', 'neck', 'rpn_head'}:
        return None
    print_log(
        "model.teacher_forward='tensor': the teacher's taps lie in its "
        f'{sorted(parts)}, so it runs up to rpn_head (no proposals, no RoI '
        'head).', logger='current')
    return 'rpn_head'
