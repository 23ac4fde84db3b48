"""DistillDiagnosticsHook under ``--amp`` (AmpOptimWrapper; bf16 autocast
and torch's CPU loss scaler, see the ``cpu_amp`` fixture): the probe runs in
the step's autocast, its figures are unscaled (the same with a loss scale
of 1024 as with 1), and the step is bit-identical to one without the
hook."""
import copy

import pytest
import torch
from mmengine.optim import AmpOptimWrapper
from mmengine.registry import MODELS, DefaultScope

from mmkd.engine.hooks import DistillDiagnosticsHook
from mmkd.testing import demo_seg_inputs, measured_step, tiny_config


def amp_distiller(loss_scale):
    """The tiny hint distiller (seed 0) and a bf16 AmpOptimWrapper."""
    cfg = tiny_config('hint_pspnet_r50_r18_tiny_shapes')
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model).train()
    wrapper = AmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        dtype='bfloat16', loss_scale=loss_scale)
    return model, wrapper


def test_amp_figures_are_unscaled_and_the_step_unchanged(cpu_amp):
    data = demo_seg_inputs(size=64)
    figures = {}
    for scale in (1.0, 1024.0):
        model, wrapper = amp_distiller(scale)
        seen = []
        model.student.decode_head.bottleneck.register_forward_hook(
            lambda m, a, out: seen.append(out.dtype))
        figures[scale] = measured_step(
            model, DistillDiagnosticsHook(interval=1),
            data=copy.deepcopy(data), optim_wrapper=wrapper)
        assert seen == [torch.bfloat16]  # the step ran under autocast
    norm = 'distill_diag/hint/grad_norm'
    assert figures[1024.0][norm] > 0
    for key in (norm, 'distill_diag/task/feat/grad_norm',
                'distill_diag/hint/grad_ratio'):
        assert figures[1024.0][key] == pytest.approx(figures[1.0][key],
                                                     rel=1e-6), key
    # the step with the hook equals the step without it, bit for bit
    hooked, wrapper = amp_distiller(1024.0)
    measured_step(hooked, DistillDiagnosticsHook(interval=1),
                  data=copy.deepcopy(data), optim_wrapper=wrapper)
    plain, wrapper = amp_distiller(1024.0)
    plain.train_step(copy.deepcopy(data), wrapper)
    for (key, a), b in zip(hooked.state_dict().items(),
                           plain.state_dict().values()):
        assert torch.equal(a, b), key
