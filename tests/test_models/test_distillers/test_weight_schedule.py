"""LossWeightSchedule: the factor of a distillation loss by iteration (or
epoch): 0 before ``warmup`` and from ``stop`` on, 1 between, or a linear /
cosine decay to ``min_factor``; and the distiller applying it
(``loss_schedules``), read from mmengine's message hub."""
import copy
import math

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope

from mmkd.models.distillers.weight_schedule import LossWeightSchedule
from mmkd.testing import demo_seg_inputs, tiny_config
from mmkd.utils.config_checks import ConfigKeyError, ConfigValueError

HINT = 'hint_pspnet_r50_r18_tiny_shapes'


@pytest.fixture
def hub():
    """The current message hub, with its 'iter' and 'epoch' put back (or
    removed) afterwards."""
    hub = MessageHub.get_current_instance()
    keys = ('iter', 'epoch')
    old = {k: hub.runtime_info[k] for k in keys if k in hub.runtime_info}
    for key in keys:
        hub.runtime_info.pop(key, None)
    yield hub
    for key in keys:
        hub.runtime_info.pop(key, None)
    for key, value in old.items():
        hub.update_info(key, value)


# ------------------------------------------------------------ the factor
def test_warmup_boundary():
    schedule = LossWeightSchedule(warmup=5)
    assert [schedule.factor(t) for t in (0, 4, 5, 6, 10**6)] == \
        [0.0, 0.0, 1.0, 1.0, 1.0]


def test_stop_boundary():
    schedule = LossWeightSchedule(warmup=5, stop=10)
    assert [schedule.factor(t) for t in (4, 5, 9, 10, 11, 10**6)] == \
        [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_no_schedule_arguments_is_always_one():
    schedule = LossWeightSchedule()
    assert all(schedule.factor(t) == 1.0 for t in (0, 1, 1000))


def test_linear_decay_begin_middle_end():
    # from warmup 2 (factor 1) to decay_end 12 (factor 0.2), linearly:
    # at t, 0.2 + 0.8 · (1 - (t - 2) / 10)
    schedule = LossWeightSchedule(warmup=2, decay='linear', decay_end=12,
                                  min_factor=0.2)
    assert schedule.factor(1) == 0.0  # still warming up
    assert schedule.factor(2) == 1.0  # begin
    assert schedule.factor(7) == pytest.approx(0.6)  # middle: 0.2 + 0.8/2
    assert schedule.factor(4) == pytest.approx(0.2 + 0.8 * 0.8)
    assert schedule.factor(12) == pytest.approx(0.2)  # end
    assert schedule.factor(1000) == pytest.approx(0.2)  # stays there


def test_cosine_decay_begin_middle_end():
    # 0.2 + 0.8 · (1 + cos(pi · (t - 2) / 8)) / 2, from t = 2 to t = 10
    schedule = LossWeightSchedule(warmup=2, decay='cosine', decay_end=10,
                                  min_factor=0.2)
    assert schedule.factor(2) == 1.0
    # a quarter of the way: (1 + cos(pi/4)) / 2 = 0.8535534
    assert schedule.factor(4) == pytest.approx(
        0.2 + 0.8 * (1 + math.cos(math.pi / 4)) / 2)
    assert schedule.factor(6) == pytest.approx(0.6)  # middle, as linear
    assert schedule.factor(10) == pytest.approx(0.2)
    assert schedule.factor(11) == pytest.approx(0.2)
    # cosine stays above linear in the first half, below in the second
    linear = LossWeightSchedule(warmup=2, decay='linear', decay_end=10,
                                min_factor=0.2)
    assert schedule.factor(4) > linear.factor(4)
    assert schedule.factor(8) < linear.factor(8)


def test_decay_with_explicit_begin_and_stop():
    # flat 1 until decay_begin 4, linear to 0 at 14, stopped at 10:
    # the step before the stop has the decayed value, the stop 0.
    schedule = LossWeightSchedule(warmup=0, stop=10, decay='linear',
                                  decay_begin=4, decay_end=14)
    assert schedule.factor(0) == 1.0
    assert schedule.factor(4) == 1.0
    assert schedule.factor(9) == pytest.approx(0.5)  # stop - 1: decayed
    assert schedule.factor(10) == 0.0  # stop


def test_current_factor_reads_the_iteration(hub):
    schedule = LossWeightSchedule(warmup=3)
    assert schedule.current_factor() == 1.0  # no loop: not scheduled
    hub.update_info('iter', 2)
    assert schedule.current_factor() == 0.0
    hub.update_info('iter', 3)
    assert schedule.current_factor() == 1.0


def test_by_epoch_reads_the_epoch(hub):
    schedule = LossWeightSchedule(warmup=4, stop=6, by_epoch=True)
    hub.update_info('iter', 5000)  # ignored by an epoch schedule
    hub.update_info('epoch', 3)
    assert schedule.current_factor() == 0.0
    hub.update_info('epoch', 4)
    assert schedule.current_factor() == 1.0
    hub.update_info('epoch', 6)
    assert schedule.current_factor() == 0.0
    # and an iteration schedule ignores the epoch
    assert LossWeightSchedule(warmup=4).current_factor() == 1.0


def test_bad_schedules_are_explained():
    with pytest.raises(ConfigValueError) as e:
        LossWeightSchedule(warmup=10, stop=5)
    assert e.value.key == 'schedule.stop'
    assert e.value.expected == 'None or a step > warmup (10)'
    assert e.value.found == '5'
    with pytest.raises(ConfigValueError) as e:
        LossWeightSchedule(warmup=5, stop=5)
    assert e.value.key == 'schedule.stop'
    assert e.value.expected == 'None or a step > warmup (5)'
    assert e.value.found == '5'
    with pytest.raises(ConfigValueError) as e:
        LossWeightSchedule(warmup=-1)
    assert e.value.key == 'schedule.warmup'
    assert e.value.expected == 'an int >= 0'
    assert e.value.found == '-1'
    with pytest.raises(ConfigValueError) as e:
        LossWeightSchedule(decay='step')
    assert e.value.key == 'schedule.decay'
    assert e.value.expected == "None, 'linear' or 'cosine'"
    assert e.value.found == "'step' (str)"
    with pytest.raises(ConfigValueError) as e:
        LossWeightSchedule(decay='linear')
    assert e.value.key == 'schedule.decay_end'
    assert e.value.expected == "a step > decay_begin (0) with decay='linear'"
    assert e.value.found == 'None'
    with pytest.raises(ConfigValueError) as e:
        LossWeightSchedule(warmup=10, decay='cosine', decay_end=10)
    assert e.value.key == 'schedule.decay_end'
    assert e.value.expected == "a step > decay_begin (10) with decay='cosine'"
    assert e.value.found == '10'
    with pytest.raises(ConfigValueError) as e:
        LossWeightSchedule(decay='linear', decay_end=5, min_factor=1.5)
    assert e.value.key == 'schedule.min_factor'
    assert e.value.expected == 'a number in [0, 1]'
    assert e.value.found == '1.5'


@pytest.mark.parametrize('arg, value, found', [
    ('warmup', '400', "'400' (str)"), ('warmup', 1.5, '1.5'),
    ('warmup', None, 'None'), ('stop', True, 'True (bool)'),
    ('decay_begin', -1, '-1'), ('decay_end', 2.0, '2.0')])
def test_steps_are_ints(arg, value, found):
    """A string or a float step failed with a TypeError of a comparison, or
    was used as it was."""
    expected = 'an int >= 0' if arg == 'warmup' else 'None or an int >= 0'
    with pytest.raises(ConfigValueError) as e:
        LossWeightSchedule(**{arg: value}, key='model.loss_schedules.hint')
    assert e.value.key == f'model.loss_schedules.hint.{arg}'
    assert e.value.expected == expected
    assert e.value.found == found


# --------------------------------------------------- through the distiller
@pytest.fixture(scope='module')
def cfg():
    # the student and teacher build in mmseg's scope, as in an mmseg run;
    # the global default scope is put back afterwards
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield tiny_config(HINT)


def build(model_cfg, seed=0):
    from mmkd.registry import MODELS
    torch.manual_seed(seed)
    return MODELS.build(copy.deepcopy(model_cfg))


def batch(model, n=2, size=32, classes=3, seed=0):
    return model.data_preprocessor(
        demo_seg_inputs(n, size, classes, seed), True)


def test_warmup_through_the_distiller(cfg, hub):
    scheduled_cfg = copy.deepcopy(cfg.model)
    scheduled_cfg.loss_schedules = dict(hint=dict(warmup=2))
    model = build(scheduled_cfg).train()
    plain = build(cfg.model).train()
    # the very same student, connector and (random) teacher
    plain.load_state_dict(model.state_dict())
    plain.teacher.load_state_dict(model.teacher.state_dict())
    data = batch(model)
    reference = plain(**data, mode='loss')['distill.loss_hint'].detach()
    assert reference.item() > 0

    hub.update_info('iter', 1)  # last warm-up iteration
    losses = model(**data, mode='loss')
    _, log_vars = model.parse_losses(losses)
    assert float(log_vars['distill.loss_hint']) == 0.0
    assert float(log_vars['distill_factor.hint']) == 0.0
    # still in the graph (every learnable part gets a gradient under DDP)
    assert losses['distill.loss_hint'].requires_grad
    # the total is the student's own losses alone
    total, _ = model.parse_losses(losses)
    own = sum(v for k, v in losses.items() if 'loss' in k)
    torch.testing.assert_close(total, own)

    hub.update_info('iter', 2)  # first distillation iteration
    losses = model(**data, mode='loss')
    _, log_vars = model.parse_losses(losses)
    assert float(log_vars['distill_factor.hint']) == 1.0
    assert float(log_vars['distill.loss_hint']) == pytest.approx(
        reference.item(), rel=1e-6)
    torch.testing.assert_close(losses['distill.loss_hint'].detach(), reference)
    # an unscheduled loss logs no factor
    _, plain_vars = plain.parse_losses(plain(**data, mode='loss'))
    assert 'distill_factor.hint' not in plain_vars


def test_schedule_whose_warmup_ends_after_its_stop(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.loss_schedules = dict(hint=dict(warmup=10, stop=5))
    with pytest.raises(ConfigValueError) as e:
        build(model_cfg)
    assert e.value.key == 'model.loss_schedules.hint.stop'
    assert e.value.expected == 'None or a step > warmup (10)'
    assert e.value.found == '5'


def test_schedule_of_a_loss_that_does_not_exist(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.loss_schedules = dict(imitation=dict(warmup=400))
    with pytest.raises(ConfigKeyError) as e:
        build(model_cfg)
    assert e.value.key == 'model.loss_schedules.imitation'
    assert ('the name of a distillation loss, one of '
            "['hint']") in e.value.expected
    assert e.value.found == "'imitation'"


@pytest.mark.parametrize('tau, found', [
    (0, '0'), (-1.0, '-1.0'), (math.inf, 'inf'), (math.nan, 'nan'),
    (None, 'None'), ('1', "'1' (str)")])
def test_temperature_that_is_no_temperature_is_refused(cfg, tau, found):
    """tau = inf makes every distribution uniform, tau <= 0 is no
    temperature."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.distill_losses.cwd = dict(
        type='mmkd.ChannelWiseLoss', tau=tau, student='feat',
        connector='feat_adapt', teacher='feat')
    with pytest.raises(ConfigValueError) as e:
        build(model_cfg)
    assert e.value.key == 'model.distill_losses.cwd.tau'
    assert e.value.expected == 'a finite number > 0'
    assert e.value.found == found


def test_schedule_with_an_unknown_argument(cfg):
    """An unknown argument failed with a bare TypeError of __init__."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.loss_schedules = dict(hint=dict(warm_up=10))
    with pytest.raises(ConfigValueError) as e:
        build(model_cfg)
    assert e.value.key == 'model.loss_schedules.hint'
    assert e.value.expected == 'arguments its class accepts'
    assert "unexpected keyword argument 'warm_up'" in e.value.found
