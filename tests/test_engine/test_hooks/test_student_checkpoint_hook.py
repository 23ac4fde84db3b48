"""StudentCheckpointHook: every saved checkpoint, best ones included, gets a
student checkpoint with its own weights; the hook writes atomically, only
beside the checkpoint it was given, and never deletes a file it did not
write."""
import os
import os.path as osp

import pytest
import torch

def plain_load(path):
    return torch.load(str(path), map_location='cpu', weights_only=True)


def full_load(path):
    from mmkd.checkpoint import safe_torch_load
    return safe_torch_load(str(path))


def snapshot(folder):
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size)
            for p in folder.iterdir()}


@pytest.fixture(scope='module')
def best_run(train_tiny_hint, tmp_path_factory):
    """Three iterations with validation and save_best after each."""
    work = tmp_path_factory.mktemp('best_run')
    train_tiny_hint(work, max_iters=3, save_best=True)
    return work


def test_every_checkpoint_best_included_gets_its_own_student(best_run):
    fulls = sorted(p for p in best_run.glob('*.pth')
                   if not p.name.endswith('_student.pth'))
    assert any(p.name.startswith('best_mIoU_iter_') for p in fulls)
    assert {'iter_1.pth', 'iter_2.pth', 'iter_3.pth'} <= {p.name
                                                          for p in fulls}
    for full in fulls:
        student = full.with_name(full.stem + '_student.pth')
        assert student.is_file(), student.name
        ckpt, stud = full_load(full), plain_load(student)
        assert stud['meta']['source_checkpoint'] == full.name
        assert stud['meta']['iter'] == ckpt['meta']['iter'], full.name
        weights = {k[len('student.'):]: v
                   for k, v in ckpt['state_dict'].items()
                   if k.startswith('student.')}
        assert weights.keys() == stud['state_dict'].keys()
        for key, value in weights.items():
            assert torch.equal(value, stud['state_dict'][key]), (full, key)


def test_resume_into_a_new_work_dir_leaves_the_old_one_alone(
        best_run, train_tiny_hint, tmp_path):
    """The resumed message hub names the old run's last and best
    checkpoints; the resumed run's first best checkpoint (saved before any
    regular one) goes to the new folder, and mmengine's CheckpointHook does
    not delete the old best as "the previous best"."""
    import shutil
    old = tmp_path / 'old'
    shutil.copytree(best_run, old)
    resumed = full_load(old / 'iter_2.pth')
    info = resumed['message_hub']['runtime_info']
    # the best of the first two iterations, whichever it was
    best = osp.basename(info['best_ckpt'])
    assert best in ('best_mIoU_iter_1.pth', 'best_mIoU_iter_2.pth')
    assert info['best_ckpt'] == str(best_run / best)
    # the old folder's own paths, and a best score any validation beats
    info['best_ckpt'] = str(old / best)
    info['last_ckpt'] = str(old / 'iter_2.pth')
    info['best_score'] = -1.0
    torch.save(resumed, str(old / 'iter_2.pth'))
    before = snapshot(old)
    new = tmp_path / 'resumed'
    train_tiny_hint(new, max_iters=4, save_best=True, interval=100,
                    resume_from=old / 'iter_2.pth')
    assert snapshot(old) == before
    assert (new / 'iter_4.pth').is_file()
    assert (new / 'iter_4_student.pth').is_file()
    assert len(list(new.glob('best_mIoU_iter_*_student.pth'))) == 1
    assert len(list(new.glob('best_mIoU_iter_*[0-9].pth'))) == 1
    assert (new / 'student_config.py').is_file()


def test_resume_in_the_same_work_dir_replaces_the_previous_best(
        best_run, train_tiny_hint, tmp_path):
    """Resumed in its own folder, a run keeps mmengine's behaviour: a new
    best replaces the previous best (and its student checkpoint)."""
    import shutil
    work = tmp_path / 'work'
    shutil.copytree(best_run, work)
    resumed = full_load(work / 'iter_2.pth')
    info = resumed['message_hub']['runtime_info']
    best = osp.basename(info['best_ckpt'])  # iteration 1's or 2's
    assert (work / best).is_file()
    info['best_ckpt'] = str(work / best)
    info['last_ckpt'] = str(work / 'iter_2.pth')
    info['best_score'] = -1.0
    torch.save(resumed, str(work / 'iter_2.pth'))
    train_tiny_hint(work, max_iters=4, save_best=True, interval=100,
                    resume_from=work / 'iter_2.pth')
    assert not (work / best).exists()
    assert not (work / best.replace('.pth', '_student.pth')).exists()
    bests = [p.name for p in work.glob('best_mIoU_iter_*.pth')]
    assert len(bests) == 2, bests  # the full and the student checkpoint


def test_never_deletes_files_it_did_not_write(train_tiny_hint, tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    mine = {'pretrained_student.pth': b'user weights',
            'notes_student.pth': b'unrelated'}
    for name, data in mine.items():
        (work / name).write_bytes(data)
    train_tiny_hint(work, max_iters=3, max_keep_ckpts=1)
    for name, data in mine.items():
        assert (work / name).read_bytes() == data
    assert (work / 'iter_3.pth').is_file()
    assert (work / 'iter_3_student.pth').is_file()
    # the student checkpoints of removed checkpoints go with them
    assert not (work / 'iter_1_student.pth').exists()
    assert not (work / 'iter_2_student.pth').exists()


def test_student_config_is_written_afresh_each_run(train_tiny_hint,
                                                   tmp_path):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    work = tmp_path / 'work'
    train_tiny_hint(work, max_iters=1)
    first = Config.fromfile(str(work / 'student_config.py'))
    assert first.model.auxiliary_head.channels == 8

    def wider_aux(cfg):
        cfg.model.student.auxiliary_head.channels = 12

    train_tiny_hint(work, max_iters=1, edit=wider_aux)
    second = Config.fromfile(str(work / 'student_config.py'))
    assert second.model.auxiliary_head.channels == 12
    init_default_scope(second.default_scope)
    plain = MODELS.build(second.model)
    plain.load_state_dict(plain_load(work / 'iter_1_student.pth')
                          ['state_dict'], strict=True)


def test_an_interrupted_save_leaves_no_partial_file(tmp_path, monkeypatch):
    import mmkd.utils.student_export as export

    def killed_midway(obj, path):
        with open(path, 'wb') as f:
            f.write(b'PK\x03\x04 partial')
        raise KeyboardInterrupt  # the process is stopped during the write

    monkeypatch.setattr(export.torch, 'save', killed_midway)
    target = tmp_path / 'iter_3_student.pth'
    with pytest.raises(KeyboardInterrupt):
        export.save_student_checkpoint(
            {'student.w': torch.zeros(1)}, str(target))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('value', ['yes', 1, None])
def test_write_config_is_a_bool(value):
    from mmkd.engine.hooks import StudentCheckpointHook
    from mmkd.utils.config_checks import ConfigValueError, describe
    with pytest.raises(ConfigValueError) as e:
        StudentCheckpointHook(write_config=value)
    assert e.value.key == 'write_config'
    assert e.value.expected == 'True or False'
    assert e.value.found == describe(value)
