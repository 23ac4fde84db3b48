"""Resuming from a checkpoint that holds only plain types, but whose values
mmengine would execute (meta['config']) or turn into file removals (the
message hub's best_ckpt). With mmkd imported neither happens."""
import pytest
import torch


@pytest.fixture(scope='module')
def checkpoint(train_tiny_hint, tmp_path_factory):
    """A real one-iteration training checkpoint (trusted: we wrote it)."""
    work = tmp_path_factory.mktemp('resume_source')
    train_tiny_hint(work, max_iters=1)
    return torch.load(str(work / 'iter_1.pth'), weights_only=False)


def test_resume_never_executes_the_config_in_the_checkpoint(
        checkpoint, train_tiny_hint, tmp_path):
    marker = tmp_path / 'payload_ran'
    crafted = dict(checkpoint, meta=dict(
        checkpoint['meta'],
        config=f"open({str(marker)!r}, 'w').close()\ngpu_ids = [0]\n"))
    work = tmp_path / 'work'
    work.mkdir()
    torch.save(crafted, str(work / 'crafted.pth'))
    train_tiny_hint(work, max_iters=2, resume_from=work / 'crafted.pth')
    assert not marker.exists()
    assert (work / 'iter_2.pth').is_file()


def test_resume_never_deletes_a_path_named_in_the_checkpoint(
        checkpoint, train_tiny_hint, tmp_path):
    victim = tmp_path / 'precious'
    victim.mkdir()
    (victim / 'thesis.tex').write_text('years of work')
    hub = checkpoint['message_hub']
    crafted = dict(checkpoint, message_hub=dict(
        hub, runtime_info=dict(hub['runtime_info'], best_ckpt=str(victim))))
    work = tmp_path / 'work'
    work.mkdir()
    torch.save(crafted, str(work / 'crafted.pth'))
    train_tiny_hint(work, max_iters=2, save_best=True,
          resume_from=work / 'crafted.pth')
    assert (victim / 'thesis.tex').read_text() == 'years of work'
    assert list(work.glob('best_mIoU_iter_2*.pth'))
