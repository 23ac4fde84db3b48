"""Shared fixtures: tiny generated datasets and the tiny configs."""
import os
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = osp.join(REPO, 'configs', 'tiny')


@pytest.fixture(autouse=True)
def restore_default_scope():
    """No test leaks mmengine's default scope into the next one (plain type
    names resolve through it): after each test, no default scope is set, as
    at the start of the session."""
    from mmengine.registry import DefaultScope
    yield
    DefaultScope._instance_dict.clear()


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


def tiny_config(name: str):
    """Load ``configs/tiny/<name>.py``."""
    from mmengine.config import Config
    return Config.fromfile(osp.join(TINY, name + '.py'))
