"""DistillDiagnosticsHook in real tiny training runs: a run that measures
every iteration trains bit-identically to one without the hook (parameters,
gradients, buffers, optimizer state, random states), its figures reach the
visualizer's JSON log, and a region that covers everything reads 100 %."""
import json
import random
import uuid

import numpy as np
import torch

from mmkd.testing import tiny_config

HOOK = dict(type='mmkd.DistillDiagnosticsHook', interval=1)


def train(name, work_dir, iters, hooks=(), edit=None):
    """Train tiny config ``name`` for ``iters`` iterations (no validation);
    the runner after training."""
    from mmengine.runner import Runner

    from mmkd.engine.runner_config import prepare_config
    cfg = tiny_config(name)
    cfg.work_dir = str(work_dir)
    tag = uuid.uuid4().hex[:8]
    cfg.experiment_name = f'diag_{tag}'
    cfg.visualizer.name = f'diag_{tag}'  # mmengine keeps them by name
    cfg.train_cfg.max_iters = iters
    cfg.param_scheduler[0].end = iters
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.custom_hooks = list(hooks)
    if edit is not None:
        edit(cfg)
    prepare_config(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def training_state(runner):
    """Everything training leaves behind that the hook must not change."""
    model = runner.model
    return dict(
        state=model.state_dict(),  # parameters and buffers (BN statistics)
        grads={n: p.grad for n, p in model.named_parameters()},
        optimizer=runner.optim_wrapper.optimizer.state_dict(),
        torch_rng=torch.get_rng_state(), numpy_rng=np.random.get_state(),
        python_rng=random.getstate())


def assert_identical(a, b):
    assert a['state'].keys() == b['state'].keys()
    for key in a['state']:
        assert torch.equal(a['state'][key], b['state'][key]), key
    for key, grad in a['grads'].items():
        other = b['grads'][key]
        assert (grad is None) == (other is None), key
        assert grad is None or torch.equal(grad, other), key
    opt_a, opt_b = a['optimizer'], b['optimizer']
    assert opt_a['param_groups'] == opt_b['param_groups']
    assert opt_a['state'].keys() == opt_b['state'].keys()
    for index, state in opt_a['state'].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value),
                               torch.as_tensor(opt_b['state'][index][key]))
    assert torch.equal(a['torch_rng'], b['torch_rng'])
    assert all(np.array_equal(x, y)
               for x, y in zip(a['numpy_rng'], b['numpy_rng']))
    assert a['python_rng'] == b['python_rng']


def with_dropout(cfg):
    # dropout draws from torch's generator in every step
    cfg.model.student.decode_head.dropout_ratio = 0.1


def test_run_with_the_hook_trains_bit_identically(tiny_data, tmp_path):
    name = 'hint_pspnet_r50_r18_tiny_shapes'
    plain = training_state(train(name, tmp_path / 'plain', 3,
                                 edit=with_dropout))
    runner = train(name, tmp_path / 'hooked', 3, [HOOK], edit=with_dropout)
    assert_identical(plain, training_state(runner))
    # the figures of every iteration are in the JSON log of the visualizer
    [scalars] = list((tmp_path / 'hooked').glob('*/vis_data/scalars.json'))
    lines = [json.loads(line) for line in scalars.read_text().splitlines()]
    measured = [line for line in lines
                if 'distill_diag/hint/grad_ratio' in line]
    assert [line['step'] for line in measured] == [1, 2, 3]
    for line in measured:
        assert line['distill_diag/hint/grad_ratio'] > 0
        assert -1 <= line['distill_diag/hint/grad_cos'] <= 1
        assert line['distill_diag/connector/feat_adapt/weight_norm'] > 0
    summary = runner.message_hub.get_info('distill_diagnostics_summary')
    assert summary.startswith("hint: ")
    assert "of the task's gradient on all (tap 'feat')" in summary
    assert '[3 measured iterations]' in summary


def full_region(cfg):
    cfg.model.region = 'full'  # every location inside the image


def test_a_region_covering_everything_reads_100_percent(tiny_data, tmp_path):
    # the tiny detection images are 64x64 (no padding): 'full' is every
    # location of every FPN level
    runner = train('fgfi_faster_rcnn_r50_r18_tiny_shapes', tmp_path, 2,
                   [HOOK], edit=full_region)
    hub = runner.message_hub
    for level in ('', '/P2', '/P6'):
        assert hub.get_scalar(
            f'distill_diag/imitation/mask_cover{level}').current() == 1.0
        assert hub.get_scalar(
            f'distill_diag/imitation/mask_diff{level}').current() == \
            1.0
    # per-level figures of the 5 FPN levels (strides 4 to 64)
    assert hub.get_scalar(
        'distill_diag/imitation/grad_ratio/P4').current() >= 0
    summary = hub.get_info('distill_diagnostics_summary')
    assert 'its mask covers 100 % of the locations and holds 100 % of ' \
        'the teacher–student difference' in summary
