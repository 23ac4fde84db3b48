"""Resuming from a checkpoint that holds only plain types, but whose values
mmengine would execute (meta['config']) or turn into file removals (the
message hub's best_ckpt). With mmkd imported neither happens."""
import uuid

import pytest
import torch

from conftest import tiny_config


def train(work_dir, max_iters, resume_from=None, save_best=False):
    from mmengine.runner import Runner

    from mmkd.utils.runner_config import prepare_config
    cfg = tiny_config('hint_pspnet_r50_r18_tiny_shapes')
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'resume_test_{uuid.uuid4().hex[:8]}'
    cfg.train_cfg.max_iters = max_iters
    cfg.param_scheduler[0].end = max_iters
    cfg.default_hooks.checkpoint.interval = 1
    if save_best:
        cfg.default_hooks.checkpoint.save_best = 'mIoU'
        cfg.train_cfg.val_interval = 1
    if resume_from is not None:
        cfg.resume, cfg.load_from = True, str(resume_from)
    prepare_config(cfg)
    Runner.from_cfg(cfg).train()


@pytest.fixture(scope='module')
def checkpoint(tiny_data, tmp_path_factory):
    """A real one-iteration training checkpoint (trusted: we wrote it)."""
    work = tmp_path_factory.mktemp('resume_source')
    train(work, max_iters=1)
    return torch.load(str(work / 'iter_1.pth'), weights_only=False)


def test_resume_never_executes_the_config_in_the_checkpoint(
        checkpoint, tmp_path):
    marker = tmp_path / 'payload_ran'
    crafted = dict(checkpoint, meta=dict(
        checkpoint['meta'],
        config=f"open({str(marker)!r}, 'w').close()\ngpu_ids = [0]\n"))
    work = tmp_path / 'work'
    work.mkdir()
    torch.save(crafted, str(work / 'crafted.pth'))
    train(work, max_iters=2, resume_from=work / 'crafted.pth')
    assert not marker.exists()
    assert (work / 'iter_2.pth').is_file()


def test_resume_never_deletes_a_path_named_in_the_checkpoint(
        checkpoint, tmp_path):
    victim = tmp_path / 'precious'
    victim.mkdir()
    (victim / 'thesis.tex').write_text('years of work')
    hub = checkpoint['message_hub']
    crafted = dict(checkpoint, message_hub=dict(
        hub, runtime_info=dict(hub['runtime_info'], best_ckpt=str(victim))))
    work = tmp_path / 'work'
    work.mkdir()
    torch.save(crafted, str(work / 'crafted.pth'))
    train(work, max_iters=2, save_best=True,
          resume_from=work / 'crafted.pth')
    assert (victim / 'thesis.tex').read_text() == 'years of work'
    assert list(work.glob('best_mIoU_iter_2*.pth'))
