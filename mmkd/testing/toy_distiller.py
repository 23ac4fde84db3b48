"""A distiller whose gradients are known by hand, and a runner stand-in,
for the tests of :class:`~mmkd.engine.hooks.DistillDiagnosticsHook`.

The student's tap ``feat`` is ``x = inputs`` (an identity 1×1 convolution),
its task loss ``Σ x`` (task gradient 1 at every element); the teacher
outputs ``k·inputs``; each term is a ``FeatureMSELoss(w)``. With inputs
``2`` everywhere the term's gradient at each of the ``n`` elements of a map
is ``w·2(2 − 2k)/n``, so its ratio to the task's is ``|4w(1 − k)| / n`` and
its cosine the sign of ``1 − k``."""
from types import SimpleNamespace
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper

from mmkd.registry import MODELS


@MODELS.register_module()
class ToyScaledModel(BaseModel):
    """``x = scale · inputs`` by a 1×1 convolution ``feat`` (2 channels),
    run once per level (level ``i``: the input subsampled by ``2^i``); the
    task loss is ``Σ x`` over the levels.

    Args:
        scale (float): The factor. Defaults to 1.
        levels (int): How many times ``feat`` runs. Defaults to 1.
    """

    def __init__(self, scale: float = 1.0, levels: int = 1,
                 data_preprocessor=None, init_cfg=None) -> None:
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.feat = nn.Conv2d(2, 2, 1, bias=False)
        self.levels = levels
        with torch.no_grad():
            self.feat.weight.copy_(scale * torch.eye(2)[:, :, None, None])

    def forward(self, inputs: torch.Tensor, data_samples=None,
                mode: str = 'tensor'):
        """``(N, 2, H, W)`` in; ``dict(loss_task=Σ x)`` for ``'loss'``,
        else the maps per level."""
        maps: List[torch.Tensor] = [self.feat(inputs[..., ::2**i, ::2**i])
                                    for i in range(self.levels)]
        if mode == 'loss':
            return dict(loss_task=sum(m.sum() for m in maps))
        return maps


def toy_distiller(terms: Dict[str, float], teacher_scale: float = 0.5,
                  levels: int = 1) -> nn.Module:
    """A ``SingleTeacherDistiller`` of two :class:`ToyScaledModel`
    (the teacher's ``scale`` is ``teacher_scale``), in train mode.

    Args:
        terms (dict): Term name -> ``loss_weight`` of a ``FeatureMSELoss``
            (levels summed) on the tap ``feat``.
        teacher_scale (float): ``k``.
        levels (int): Levels of the tap.
    """
    cfg = dict(
        type='mmkd.SingleTeacherDistiller',
        student=dict(type='mmkd.ToyScaledModel', levels=levels),
        teacher=dict(type='mmkd.ToyScaledModel', scale=teacher_scale,
                     levels=levels),
        student_taps=dict(feat='feat'), teacher_taps=dict(feat='feat'),
        distill_losses={
            name: dict(type='mmkd.FeatureMSELoss', loss_weight=weight,
                       level_reduction='sum', student='feat',
                       teacher='feat')
            for name, weight in terms.items()})
    return MODELS.build(cfg).train()


def hook_runner(model: nn.Module, optim_wrapper: Any = None,
                iteration: int = 0) -> SimpleNamespace:
    """What a hook reads of mmengine's Runner: ``model``,
    ``optim_wrapper``, ``iter``, a message hub, and a visualizer whose
    ``add_scalars(values, step)`` calls are kept in ``sent``."""
    sent: list = []
    return SimpleNamespace(
        model=model, optim_wrapper=optim_wrapper, iter=iteration,
        message_hub=MessageHub.get_instance('toy_diagnostics'),
        visualizer=SimpleNamespace(
            add_scalars=lambda values, step: sent.append((step, values))),
        sent=sent)


def measured_step(model: nn.Module, hook: Any, iteration: int = 0,
                  data: Optional[dict] = None,
                  optim_wrapper: Any = None) -> Dict[str, float]:
    """One real ``train_step`` of ``model`` (SGD, lr 0.1, unless
    ``optim_wrapper`` is given) at iteration ``iteration`` with ``hook``'s
    ``before_train_iter`` and ``after_train_iter`` around it.

    Args:
        data (dict, optional): The batch as a dataloader gives it; by
            default ``inputs`` ``(1, 2, 2, 2)`` of 2s (the toy distiller's).

    Returns:
        dict: The scalars the hook sent to the visualizer (empty when it
        measured nothing).
    """
    if optim_wrapper is None:
        optim_wrapper = OptimWrapper(
            torch.optim.SGD(model.parameters(), lr=0.1))
    runner = hook_runner(model, optim_wrapper, iteration)
    if data is None:
        data = dict(inputs=torch.full((1, 2, 2, 2), 2.0), data_samples=None)
    hook.before_train_iter(runner, 0, data)
    model.train_step(data, optim_wrapper)
    hook.after_train_iter(runner, 0, data)
    return runner.sent[0][1] if runner.sent else {}
