"""The distiller with a critic (SKD's holistic term,
``mmkd.models.distillers.critic``): the student and the critic of the holistic
term train with their own optimizers and never touch each other's weights;
the critic is in the training checkpoint (weights and optimizer state), not
in the student's; resume is exact. On the tiny config
tests/data/configs/skd_pspnet_r50_r18_tiny_shapes.py (all three terms)."""
import copy
import os
import os.path as osp

import pytest
import torch
from mmengine.optim import OptimWrapperDict, build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope

from mmkd.testing import TINY_CONFIGS as TINY
from mmkd.testing import demo_seg_inputs, tiny_config
from mmkd.testing import load_plain_checkpoint as load
from mmkd.utils.config_checks import ConfigValueError, describe
from mmkd.testing import load_training_checkpoint as load_full
from mmkd.testing import train_with_tool as train

SKD = 'skd_pspnet_r50_r18_tiny_shapes'
TERMS = ('distill.loss_pixel', 'distill.loss_pair', 'distill.loss_holistic', 'disc.loss',
         'disc.wasserstein', 'disc.gradient_penalty')


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """One thread here and in the training subprocesses: tiny inputs gain
    nothing from intra-op threads, and on a shared machine threads waiting
    for each other cost most of the time."""
    threads, env = torch.get_num_threads(), os.environ.get('OMP_NUM_THREADS')
    torch.set_num_threads(1)
    os.environ['OMP_NUM_THREADS'] = '1'
    yield
    torch.set_num_threads(threads)
    if env is None:
        os.environ.pop('OMP_NUM_THREADS')
    else:
        os.environ['OMP_NUM_THREADS'] = env


@pytest.fixture(scope='module')
def cfg():
    return tiny_config(SKD)


def build(cfg, **overrides):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.update(overrides)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(model_cfg).train()
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(optim_wrapper, OptimWrapperDict)
    return model, optim_wrapper


def batch(n=2, size=64, classes=3, seed=0):
    return demo_seg_inputs(n, size, classes, seed)


# ------------------------------------------------------ instrumentation
def parts(model):
    """Parameters by part: the critic, everything else the student optimizer
    trains (student and connectors), and the teacher."""
    return dict(
        discriminator=list(model.discriminator.parameters()),
        student=[p for n, p in model.named_parameters()
                 if not n.startswith('discriminator.')],
        teacher=list(model.teacher.parameters()))


def grad_state(params):
    """'none' (no .grad at all), 'zero' or 'nonzero'."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 'none'
    return 'nonzero' if any(g.abs().sum() > 0 for g in grads) else 'zero'


def spy_on(model, optim_wrapper):
    """Wrap each wrapper's ``update_params`` (snapshot the parameters of
    every part around it) and ``step`` (the gradients right after its
    backward). Returns the list the events are appended to."""
    events = []
    for name in ('student', 'discriminator'):
        wrapper = optim_wrapper[name]

        def update_params(loss, _name=name, _orig=wrapper.update_params,
                          **kwargs):
            before = {part: [p.detach().clone() for p in params]
                      for part, params in parts(model).items()}
            _orig(loss, **kwargs)
            changed = {
                part: any(not torch.equal(a, p) for a, p in zip(
                    before[part], params))
                for part, params in parts(model).items()}
            events.append(dict(kind='update', wrapper=_name,
                               changed=changed))

        def step(_name=name, _orig=wrapper.step, **kwargs):
            events.append(dict(kind='step', wrapper=_name, grads={
                part: grad_state(params)
                for part, params in parts(model).items()}))
            _orig(**kwargs)

        wrapper.update_params = update_params
        wrapper.step = step
    return events


# ---------------------------------------------------------------- tests
def test_loss_dict_has_every_term(cfg):
    model, optim_wrapper = build(cfg)
    log_vars = model.train_step(batch(), optim_wrapper)
    assert set(TERMS) <= set(log_vars)
    for key in TERMS:
        assert torch.isfinite(torch.as_tensor(log_vars[key])), key


@pytest.mark.parametrize('unused, value', [
    ('connector', 'adapt'), ('extra_inputs', dict(image='inputs'))])
def test_holistic_term_takes_no_connector_or_extra_inputs(cfg, unused, value):
    """Both were ignored without a word: the critic sees the logit taps as
    they are."""
    losses = copy.deepcopy(cfg.model.distill_losses)
    losses.holistic[unused] = value
    connectors = dict(adapt=dict(type='mmkd.ConvConnector', in_channels=3,
                                 out_channels=3))
    with pytest.raises(ConfigValueError) as e:
        build(cfg, distill_losses=losses, connectors=connectors)
    assert e.value.key == f'model.distill_losses.holistic.{unused}'
    assert e.value.expected.startswith('nothing: the holistic term compares')
    assert e.value.found == describe(value)


@pytest.mark.parametrize('n_critic', [0, 1.5, '2'])
def test_n_critic_is_a_positive_int(cfg, n_critic):
    with pytest.raises(ConfigValueError) as e:
        build(cfg, n_critic=n_critic)
    assert e.value.key == 'model.n_critic'
    assert e.value.expected == 'an int >= 1'
    assert e.value.found == describe(n_critic)


def test_student_and_critic_steps_touch_only_their_own_weights(cfg):
    """Parameters only: the critic's spectral-norm power-iteration vectors
    (buffers ``_u``/``_v``) advance at each of its forward passes in training
    mode, the generator pass of the student's step included, as in the
    official SAGAN-style code."""
    model, optim_wrapper = build(cfg)
    events = spy_on(model, optim_wrapper)
    for seed in range(2):
        model.train_step(batch(seed=seed), optim_wrapper)
    updates = [e for e in events if e['kind'] == 'update']
    assert [e['wrapper'] for e in updates] == ['student', 'discriminator'] * 2
    for e in updates:
        own = e['wrapper']
        other = 'discriminator' if own == 'student' else 'student'
        assert e['changed'][own], e
        assert not e['changed'][other], e
        assert not e['changed']['teacher'], e


def test_gradients_right_after_each_backward(cfg):
    model, optim_wrapper = build(cfg)
    events = spy_on(model, optim_wrapper)
    for seed in range(2):
        model.train_step(batch(seed=seed), optim_wrapper)
    steps = [e for e in events if e['kind'] == 'step']
    assert [e['wrapper'] for e in steps] == ['student', 'discriminator'] * 2
    for e in steps:
        grads = e['grads']
        assert grads['teacher'] == 'none', e
        if e['wrapper'] == 'student':
            # the generator term reaches the student through the frozen
            # critic; the critic itself gets no gradient
            assert grads['student'] == 'nonzero', e
            assert grads['discriminator'] in ('none', 'zero'), e
        else:
            assert grads['discriminator'] == 'nonzero', e
            assert grads['student'] in ('none', 'zero'), e


def test_n_critic_steps_per_student_step(cfg):
    model, optim_wrapper = build(cfg, n_critic=3)
    events = spy_on(model, optim_wrapper)
    model.train_step(batch(), optim_wrapper)
    updates = [(e['wrapper'], e['changed']['discriminator'])
               for e in events if e['kind'] == 'update']
    assert updates == [('student', False)] + [('discriminator', True)] * 3


# ------------------------------------------ through tools/train.py (Runner)
@pytest.fixture(scope='module')
def runs(tiny_data, tmp_path_factory):
    """8 iterations straight; 4, then resumed for 4 more.

    The Runner gives a model dict without ``data_preprocessor`` (a
    distiller's) the config's top-level ``data_preprocessor``, and the tiny
    base config leaves that one at the stock 512x1024 padding: set to the
    tiny images' 64x64 here, which makes an iteration ~50x cheaper.
    """
    config = osp.join(TINY, SKD + '.py')
    root = tmp_path_factory.mktemp('skd_runs')
    size = 'data_preprocessor.size=(64,64)'
    opts = ['--cfg-options', 'train_cfg.max_iters=8',
            'default_hooks.checkpoint.interval=4', size]
    straight_log = train(config, root / 'straight', *opts)
    train(config, root / 'split', '--cfg-options', 'train_cfg.max_iters=4',
          'default_hooks.checkpoint.interval=4', size)
    resumed_log = train(config, root / 'split', '--resume', *opts)
    return dict(straight=root / 'straight', split=root / 'split',
                straight_log=straight_log, resumed_log=resumed_log)


def test_training_log_has_every_term(runs):
    for term in TERMS:
        assert f'{term}: ' in runs['straight_log'], term


def test_critic_is_in_the_training_checkpoint_only(runs):
    """The first leg of the split run (4 iterations) wrote iter_4.pth."""
    full = load_full(runs['split'] / 'iter_4.pth')
    critic = [k for k in full['state_dict'] if k.startswith('discriminator.')]
    assert critic
    assert set(full['optimizer']) == {'student', 'discriminator'}
    critic_state = full['optimizer']['discriminator']['state']
    assert critic_state and all('momentum_buffer' in s
                                for s in critic_state.values())
    student = load(runs['split'] / 'iter_4_student.pth')['state_dict']
    assert not any('discriminator' in k for k in student)
    assert not any(k.startswith(('student.', 'teacher', 'connectors'))
                   for k in student)


def test_resume_is_exact(runs):
    """4 iterations + resume 4 == 8 straight, critic included."""
    assert 'resumed' in runs['resumed_log'].lower()
    a = load_full(runs['straight'] / 'iter_8.pth')
    b = load_full(runs['split'] / 'iter_8.pth')
    assert a['state_dict'].keys() == b['state_dict'].keys()
    assert any(k.startswith('discriminator.') for k in a['state_dict'])
    for key in a['state_dict']:
        torch.testing.assert_close(a['state_dict'][key], b['state_dict'][key],
                                   rtol=0, atol=0, msg=key)
    assert set(a['optimizer']) == set(b['optimizer']) == {
        'student', 'discriminator'}
    for name in a['optimizer']:
        state_a = a['optimizer'][name]['state']
        state_b = b['optimizer'][name]['state']
        assert state_a.keys() == state_b.keys()
        for key in state_a:
            torch.testing.assert_close(state_a[key]['momentum_buffer'],
                                       state_b[key]['momentum_buffer'],
                                       rtol=0, atol=0, msg=f'{name} {key}')


# ------------------------------------------------- distributed safeguards
class SyncBNCritic(torch.nn.Module):
    """A critic with a SyncBatchNorm (which has no double backward)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, 4, 3)
        self.norm = torch.nn.SyncBatchNorm(4)

    def forward(self, x):
        return self.norm(self.conv(x)).mean((1, 2, 3))


def test_critic_with_sync_bn_is_refused_at_build(cfg):
    from mmkd.registry import MODELS as MMKD_MODELS
    MMKD_MODELS.register_module('SyncBNCritic', module=SyncBNCritic,
                                force=True)
    with pytest.raises(ValueError, match=r'model\.discriminator.*'
                       r'SyncBatchNorm in \[\'norm\'\]'):
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            MODELS.build(dict(copy.deepcopy(cfg.model), discriminator=dict(
                type='mmkd.SyncBNCritic', in_channels=6)))


def test_critic_converted_to_sync_bn_is_refused_at_the_step(cfg):
    """As mmengine's ``sync_bn`` option would convert it."""
    model, optim_wrapper = build(cfg)
    model.discriminator.layers[0].add_module('norm',
                                             torch.nn.SyncBatchNorm(16))
    with pytest.raises(ValueError, match='no double backward'):
        model.train_step(batch(), optim_wrapper)


def test_a_distributed_step_that_bypasses_train_step_is_refused(
        cfg, monkeypatch):
    """mmengine's default DDP wrapper computes the losses and calls
    ``parse_losses`` itself: the critic would never train."""
    from types import SimpleNamespace

    from mmkd.models.distillers import critic
    model, _ = build(cfg)
    data = model.data_preprocessor(batch(), True)
    monkeypatch.setattr(critic, 'dist', SimpleNamespace(
        is_available=lambda: True, is_initialized=lambda: True))
    with pytest.raises(RuntimeError,
                       match='MMSeparateDistributedDataParallel'):
        model(**data, mode='loss')


def test_alpha_of_each_rank_is_its_share_of_the_global_batch(monkeypatch):
    """Rank r of w takes samples r, r + w, ... of the weights one process
    draws for the whole batch (mmengine's samplers deal samples so)."""
    from mmkd.models.distillers import critic
    whole = critic.penalty_alpha(6, 0, 'cpu')
    for rank in range(3):
        monkeypatch.setattr(critic, 'get_dist_info', lambda r=rank: (r, 3))
        torch.testing.assert_close(
            critic.penalty_alpha(2, 0, 'cpu'), whole[rank::3],
            rtol=0, atol=0)


def test_discriminator_arguments_are_named_by_their_key(cfg):
    """The critic's own checks named its argument only (``SegDiscriminator
    in_channels``), not where it sits in the config."""
    discriminator = copy.deepcopy(cfg.model.discriminator)
    discriminator.in_channels = 0
    with pytest.raises(ConfigValueError) as e:
        build(cfg, discriminator=discriminator)
    assert e.value.key == 'model.discriminator.in_channels'
    assert e.value.expected == 'an int >= 1'
    assert e.value.found == '0'
    discriminator.in_channels = 6
    discriminator.channels = 8  # no such argument
    with pytest.raises(ConfigValueError) as e:
        build(cfg, discriminator=discriminator)
    assert e.value.key == 'model.discriminator'
    assert e.value.expected == 'arguments its class accepts'
    assert "unexpected keyword argument 'channels'" in e.value.found
