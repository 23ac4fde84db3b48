"""Checkpoints are untrusted input: code in a pickle never runs, and the
plain types mmengine writes still load."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope

from mmkd.testing import tiny_config
from mmkd.checkpoint import UnsafeCheckpointError, safe_torch_load


class CreatesAFile:
    """Unpickling this calls ``open(path, 'w')``: a file appears if the
    payload ever runs."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


class GetsAttribute:
    """Unpickling this calls ``getattr(HistoryBuffer, 'update')``: not a
    statistics method, so the restricted getattr must refuse it."""

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return (getattr, (HistoryBuffer, 'update'))


@pytest.fixture
def evil(tmp_path):
    marker = str(tmp_path / 'payload_ran')
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {'w': torch.zeros(1)},
                'meta': {'x': CreatesAFile(marker)}}, path)
    return path, marker


def test_plain_mmengine_checkpoint_loads(tmp_path):
    hub = MessageHub.get_instance('test_safe_checkpoint')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/lr', np.float64(0.1))
    hub.update_info('iter', np.int64(3))
    path = str(tmp_path / 'ok.pth')
    torch.save({'message_hub': hub.state_dict(),
                'meta': {'seed': np.int64(1), 'arr': np.arange(3.)}}, path)
    ckpt = safe_torch_load(path)
    restored = MessageHub.get_instance('test_safe_checkpoint_restored')
    restored.load_state_dict(ckpt['message_hub'])
    assert restored.get_scalar('train/loss').current() == 1.5
    assert restored.get_info('iter') == 3
    np.testing.assert_array_equal(ckpt['meta']['arr'], np.arange(3.))


def test_code_in_a_checkpoint_never_runs(evil):
    path, marker = evil
    with pytest.raises(UnsafeCheckpointError, match='open'):
        safe_torch_load(path)
    assert not osp.exists(marker)


def test_getattr_is_limited_to_history_buffer_statistics(tmp_path):
    path = str(tmp_path / 'getattr.pth')

    torch.save({'x': GetsAttribute()}, path)
    with pytest.raises(UnsafeCheckpointError, match='getattr'):
        safe_torch_load(path)


def _seg_distiller_cfg():
    init_default_scope('mmseg')
    return tiny_config('hint_pspnet_r50_r18_tiny_shapes')


def test_refused_as_teacher(evil):
    from mmkd.registry import MODELS
    path, marker = evil
    cfg = _seg_distiller_cfg().model
    cfg.teacher_checkpoint = path
    with pytest.raises(UnsafeCheckpointError):
        MODELS.build(copy.deepcopy(cfg))
    assert not osp.exists(marker)


def test_refused_as_student(evil):
    from mmkd.registry import MODELS
    path, marker = evil
    cfg = _seg_distiller_cfg().model
    cfg.student_checkpoint = path
    model = MODELS.build(copy.deepcopy(cfg))
    with pytest.raises(UnsafeCheckpointError):
        model.init_weights()
    assert not osp.exists(marker)


def test_refused_for_resume_and_load_from(evil, tiny_data, tmp_path):
    from mmengine.runner import Runner
    path, marker = evil
    for resume in (True, False):
        cfg = _seg_distiller_cfg()
        cfg.work_dir = str(tmp_path / f'work_{resume}')
        cfg.resume, cfg.load_from = resume, path
        runner = Runner.from_cfg(cfg)
        with pytest.raises(UnsafeCheckpointError):
            runner.train()
        assert not osp.exists(marker)
