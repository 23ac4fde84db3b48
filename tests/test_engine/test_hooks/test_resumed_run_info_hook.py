"""ResumedRunInfoHook forgets best-checkpoint paths outside the folder the
run saves checkpoints to, and only those."""
from types import SimpleNamespace

import pytest
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub

from mmkd.engine.hooks import ResumedRunInfoHook


def runner_with(tmp_path, info, out_dir=None):
    hub = MessageHub.get_instance(f'resumed_{tmp_path.name}')
    hub._runtime_info = dict(info)
    return SimpleNamespace(
        work_dir=str(tmp_path / 'new'), message_hub=hub,
        hooks=[CheckpointHook(interval=1, out_dir=out_dir)])


@pytest.mark.parametrize('out_dir', [None, 'elsewhere'])
def test_keeps_paths_in_the_checkpoint_folder_only(tmp_path, out_dir):
    folder = tmp_path / 'new' if out_dir is None else (
        tmp_path / out_dir / 'new')
    if out_dir is not None:
        out_dir = str(tmp_path / out_dir)
    info = {
        'best_ckpt': str(folder / 'best_mIoU_iter_2.pth'),
        'best_ckpt_aAcc': str(tmp_path / 'old' / 'best_aAcc_iter_2.pth'),
        'best_ckpt_mDice': 3,
        'best_score': 24.1,
        'last_ckpt': str(tmp_path / 'old' / 'iter_2.pth'),
    }
    runner = runner_with(tmp_path, info, out_dir)
    ResumedRunInfoHook().before_train(runner)
    assert runner.message_hub.runtime_info == {
        'best_ckpt': info['best_ckpt'], 'best_score': 24.1,
        'last_ckpt': info['last_ckpt']}


def test_a_folder_reached_through_dot_dot_is_the_same_folder(tmp_path):
    (tmp_path / 'new').mkdir()
    path = str(tmp_path / 'new' / '..' / 'new' / 'best_mIoU_iter_2.pth')
    runner = runner_with(tmp_path, {'best_ckpt': path})
    ResumedRunInfoHook().before_train(runner)
    assert runner.message_hub.runtime_info == {'best_ckpt': path}


def test_runs_before_the_checkpoint_hook():
    from mmengine.runner.priority import get_priority
    assert get_priority(ResumedRunInfoHook.priority) < get_priority(
        CheckpointHook.priority)
