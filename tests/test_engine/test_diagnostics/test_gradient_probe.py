"""The gradient probe of DistillDiagnosticsHook on a hand-built distiller
whose gradients are known (:mod:`mmkd.testing.toy_distiller`: inputs 2
everywhere, a term ``FeatureMSELoss(w)`` against a teacher at ``k·x`` has
the ratio ``|4w(1 − k)| / n`` to the task's gradient on a map of ``n``
elements, and the cosine the sign of ``1 − k``)."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from mmkd.engine.hooks import DistillDiagnosticsHook
from mmkd.engine.hooks.distill_diagnostics_hook import loss_scale
from mmkd.testing import hook_runner, measured_step, toy_distiller
from mmkd.utils.config_checks import ConfigValueError

def test_known_ratios_and_cosines():
    model = toy_distiller(dict(pull=0.4, off=0.0, twin=0.4),
                          teacher_scale=0.5)
    hook = DistillDiagnosticsHook(interval=1)
    values = measured_step(model, hook)
    # k = 0.5: ratio |0.4·4·0.5| / 8 = 0.1, same direction as the task
    assert values['distill_diag/pull/grad_ratio'] == pytest.approx(0.1)
    assert values['distill_diag/pull/grad_cos'] == pytest.approx(1.0)
    # a term with weight 0 reads 0; two identical terms read equal
    assert values['distill_diag/off/grad_ratio'] == 0.0
    assert values['distill_diag/off/grad_cos'] == 0.0
    assert values['distill_diag/twin/grad_ratio'] == \
        values['distill_diag/pull/grad_ratio']
    assert values['distill_diag/task/feat/grad_norm'] == pytest.approx(
        math.sqrt(8))


def test_opposing_term_and_levels():
    # k = 3 on two levels (2x2 and 1x1 maps of a 2x2 input, strides 1, 2)
    model = toy_distiller(dict(push=0.4), teacher_scale=3.0, levels=2)
    values = measured_step(model, DistillDiagnosticsHook(interval=1))
    # per level: the term's gradient w·2(2 − 6)/n_l against 1 per element:
    # ratio 3.2 / n_l (n_0 = 8, n_1 = 2), cosine −1
    assert values['distill_diag/push/grad_ratio/P0'] == pytest.approx(0.4)
    assert values['distill_diag/push/grad_ratio/P1'] == pytest.approx(1.6)
    assert values['distill_diag/push/grad_cos/P1'] == pytest.approx(-1.0)
    # all levels: sqrt(8·0.4² + 2·1.6²) / sqrt(10)
    assert values['distill_diag/push/grad_ratio'] == pytest.approx(
        math.sqrt(8 * 0.16 + 2 * 2.56) / math.sqrt(10))


def test_unmeasured_iteration_sends_nothing_and_installs_nothing():
    model = toy_distiller(dict(pull=0.4))
    hook = DistillDiagnosticsHook(interval=3)
    assert measured_step(model, hook, iteration=1) == {}
    assert not model._forward_hooks and not model._forward_pre_hooks
    assert measured_step(model, hook, iteration=3) != {}
    # the hooks of a measured step are gone after it
    assert not model._forward_hooks and not model._forward_pre_hooks
    # (the tap's own hook stays)
    assert len(model.student.feat._forward_hooks) == 1


def test_summary_suggests_a_weight_from_the_ratio():
    model = toy_distiller(dict(pull=0.004, off=0.0))
    hook = DistillDiagnosticsHook(interval=1)
    measured_step(model, hook)
    runner = hook_runner(model, None)
    hook.after_train(runner)
    summary = runner.message_hub.get_info('distill_diagnostics_summary')
    pull, off = summary.split('\n')
    # ratio 0.004·4·0.5/8 = 0.001: below 5 %, weight 0.004·0.2/0.001 = 0.8
    assert pull.startswith("pull: 0.1 % of the task's gradient on all")
    assert 'too small to change the student; try loss_weight=0.8 (now ' \
        '0.004)' in pull
    assert off.startswith("off: 0 % of the task's gradient")
    assert 'sends no gradient to the student' in off


def test_refuses_a_model_that_is_no_distiller():
    hook = DistillDiagnosticsHook(interval=1)
    runner = hook_runner(nn.Linear(2, 2), None)
    with pytest.raises(ConfigValueError) as e:
        hook.before_train(runner)
    assert e.value.key == 'custom_hooks'
    assert ('DistillDiagnosticsHook with a distillation '
            'model') in e.value.expected
    assert e.value.found == 'model Linear'
    with pytest.raises(ConfigValueError) as e:
        DistillDiagnosticsHook(interval=0)
    assert e.value.key == 'interval'
    assert e.value.expected == 'an int >= 1'
    assert e.value.found == '0'


def test_loss_scale_of_the_student_wrapper():
    scaler = torch.amp.GradScaler('cpu', init_scale=512.0)
    amp = SimpleNamespace(loss_scaler=scaler)
    assert loss_scale(amp) == 512.0
    assert loss_scale(dict(student=amp, discriminator=None)) == 512.0
    assert loss_scale(SimpleNamespace()) == 1.0
    with pytest.raises(ConfigValueError) as e:
        loss_scale(dict(a=amp, b=amp))
    assert e.value.key == 'optim_wrapper'
    assert "a 'student' entry" in e.value.expected
    assert e.value.found == "['a', 'b'] (list)"
