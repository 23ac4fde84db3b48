"""prepare_config: the distributed wrapper of distillers with a critic (every
published SKD config with the holistic term gets it without choosing it)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmkd.testing import REPO_ROOT as REPO
from mmkd.engine.runner_config import prepare_config

SKD = sorted(glob.glob(osp.join(REPO, 'configs', 'skd', '*.py')))


@pytest.mark.parametrize('path', SKD, ids=osp.basename)
def test_skd_configs_get_the_separate_ddp_wrapper(path):
    cfg = Config.fromfile(path)
    cfg.pop('model_wrapper_cfg', None)  # as a user's config might
    prepare_config(cfg)
    if cfg.model.get('discriminator') is None:
        assert cfg.get('model_wrapper_cfg') is None
    else:
        assert cfg.model_wrapper_cfg.type == \
            'MMSeparateDistributedDataParallel'


def test_a_critic_under_another_wrapper_is_refused():
    holistic = [p for p in SKD if 'holistic' in p][0]
    cfg = Config.fromfile(holistic)
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel')
    with pytest.raises(ValueError, match=r'model_wrapper_cfg\.type.*'
                       'MMSeparateDistributedDataParallel'):
        prepare_config(cfg)
