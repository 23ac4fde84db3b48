"""Shared fixtures: tiny generated datasets, a tiny training run.

Test modules import their helpers from :mod:`mmkd.testing` (random batches,
the tiny configs of ``tests/data/configs``), never from this file or from
one another.
"""
import os

import pytest

from mmkd.testing import tiny_config


@pytest.fixture(autouse=True)
def restore_default_scope():
    """No test leaks mmengine's default scope into the next one (plain type
    names resolve through it): after each test, no default scope is set, as
    at the start of the session."""
    from mmengine.registry import DefaultScope
    yield
    DefaultScope._instance_dict.clear()


@pytest.fixture
def cpu_amp(monkeypatch):
    """mmengine 0.10.7's AmpOptimWrapper refuses to be built without an
    accelerator and takes its loss scaler from ``torch.cuda.amp``: let it
    build on CPU with torch's CPU ``GradScaler`` (a real scaler: losses are
    multiplied, gradients unscaled before the step; autocast runs bf16)."""
    import functools

    import torch
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)
    monkeypatch.setattr(amp_optimizer_wrapper, 'GradScaler',
                        functools.partial(torch.amp.GradScaler, 'cpu'))


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """Generate the tiny seg/det datasets once and point the tiny configs at
    them (through $MMKD_TINY_SEG / $MMKD_TINY_DET)."""
    from mmkd.testing import make_tiny_det_dataset, make_tiny_seg_dataset
    root = tmp_path_factory.mktemp('tiny_data')
    seg = make_tiny_seg_dataset(str(root / 'seg'))
    det = make_tiny_det_dataset(str(root / 'det'))
    old = {k: os.environ.get(k) for k in ('MMKD_TINY_SEG', 'MMKD_TINY_DET')}
    os.environ['MMKD_TINY_SEG'], os.environ['MMKD_TINY_DET'] = seg, det
    yield dict(seg=seg, det=det)
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope='session')
def train_tiny_hint(tiny_data):
    """A function that trains the tiny seg hint-distillation config in this
    process, as ``tools/train.py`` prepares it (student checkpoint hook):
    ``train(work_dir, max_iters, interval=1, save_best=False,
    max_keep_ckpts=-1, resume_from=None, edit=None)``; a checkpoint every
    ``interval`` iterations and at the end, validation every iteration with
    ``save_best``; ``edit(cfg)`` changes the config last."""
    import uuid

    def train(work_dir, max_iters, interval=1, save_best=False,
              max_keep_ckpts=-1, resume_from=None, edit=None):
        from mmengine.runner import Runner

        from mmkd.engine.runner_config import prepare_config
        cfg = tiny_config('hint_pspnet_r50_r18_tiny_shapes')
        cfg.work_dir = str(work_dir)
        # one message hub per runner: a shared name would share the hub
        cfg.experiment_name = f'tiny_hint_{uuid.uuid4().hex[:8]}'
        cfg.train_cfg.max_iters = max_iters
        cfg.param_scheduler[0].end = max_iters
        cfg.default_hooks.checkpoint.update(
            interval=interval, max_keep_ckpts=max_keep_ckpts)
        if save_best:
            cfg.default_hooks.checkpoint.save_best = 'mIoU'
            cfg.train_cfg.val_interval = 1
        if resume_from is not None:
            cfg.resume, cfg.load_from = True, str(resume_from)
        if edit is not None:
            edit(cfg)
        prepare_config(cfg)
        Runner.from_cfg(cfg).train()

    return train
