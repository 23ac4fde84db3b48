"""Downloaded checkpoints: one cache entry per URL, hashes in file names
checked, refused downloads removed, stock backbone schemes loaded safely."""
import hashlib
import os.path as osp
import shutil

import pytest
import torch

from mmkd.checkpoint import UnsafeCheckpointError
from mmkd.checkpoint.schemes import cached_path, load_url


class CreatesAFile:

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


@pytest.fixture
def hub_dir(tmp_path):
    """torch.hub's cache in a temporary folder."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    yield tmp_path / 'hub'
    torch.hub.set_dir(old)


def weights(tmp_path, rel, value):
    path = tmp_path / 'server' / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'state_dict': {'w': torch.full((2, ), float(value))}},
               str(path))
    return path


def test_urls_with_the_same_file_name_do_not_collide(tmp_path, hub_dir):
    a = weights(tmp_path, 'a/teacher.pth', 1)
    b = weights(tmp_path, 'b/teacher.pth', 2)
    assert cached_path(a.as_uri()) != cached_path(b.as_uri())
    assert load_url(a.as_uri())['state_dict']['w'][0] == 1
    assert load_url(b.as_uri())['state_dict']['w'][0] == 2
    # cached: a second load reads the cache, not the server
    a.unlink()
    assert load_url(a.as_uri())['state_dict']['w'][0] == 1


def test_hash_in_the_file_name_is_checked(tmp_path, hub_dir):
    good = weights(tmp_path, 'x/model.pth', 3)
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    named = good.with_name(f'model-{digest[:8]}.pth')
    shutil.copy(good, named)
    assert load_url(named.as_uri())['state_dict']['w'][0] == 3
    wrong = good.with_name('model-deadbeef.pth')
    shutil.copy(good, wrong)
    with pytest.raises(RuntimeError, match='does not match the hash'):
        load_url(wrong.as_uri(), what='model.teacher_checkpoint')
    assert not osp.exists(cached_path(wrong.as_uri()))


def test_refused_download_is_removed_from_the_cache(tmp_path, hub_dir):
    marker = tmp_path / 'payload_ran'
    evil = tmp_path / 'server' / 'evil.pth'
    evil.parent.mkdir(parents=True)
    torch.save({'x': CreatesAFile(str(marker))}, str(evil))
    with pytest.raises(UnsafeCheckpointError):
        load_url(evil.as_uri())
    assert not marker.exists()
    assert not osp.exists(cached_path(evil.as_uri()))
    # nothing left where torch.hub / mmengine's own loaders would look
    assert not (hub_dir / 'checkpoints' / 'evil.pth').exists()


def test_unreachable_url_names_the_key(tmp_path, hub_dir):
    missing = (tmp_path / 'server' / 'gone.pth').as_uri()
    with pytest.raises(OSError, match='model.teacher_checkpoint'):
        load_url(missing, what='model.teacher_checkpoint')


@pytest.mark.parametrize('scheme,table', [
    ('open-mmlab://', 'get_external_models'),
    ('torchvision://', 'get_torchvision_models'),
    ('mmcls://', 'get_mmcls_models'),
])
def test_stock_backbone_schemes_refuse_code(tmp_path, hub_dir, monkeypatch,
                                            scheme, table):
    """Stock configs initialise backbones from open-mmlab:// etc., which
    mmengine unpickles with weights_only=False. With mmkd imported they go
    through the safe loader: the payload never runs."""
    import mmengine.runner.checkpoint as mmengine_checkpoint
    from mmengine.runner.checkpoint import CheckpointLoader

    import mmkd  # noqa: F401
    marker = tmp_path / 'payload_ran'
    evil = tmp_path / 'server' / 'resnet18_v1c-b5776b93.pth'
    evil.parent.mkdir(parents=True)
    torch.save({'state_dict': {'x': CreatesAFile(str(marker))}}, str(evil))
    url = 'https://download.example/models/resnet18_v1c-b5776b93.pth'
    monkeypatch.setattr(mmengine_checkpoint, table,
                        lambda *a, **k: {'resnet18_v1c': url})

    def serve(src_url, dst, hash_prefix=None, progress=True):
        assert src_url == url
        shutil.copy(evil, dst)  # the server answers with the evil file

    monkeypatch.setattr(torch.hub, 'download_url_to_file', serve)
    with pytest.raises(UnsafeCheckpointError):
        CheckpointLoader.load_checkpoint(f'{scheme}resnet18_v1c')
    assert not marker.exists()
    assert not osp.exists(cached_path(url))
