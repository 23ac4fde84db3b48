"""prepare_config: the distributed wrapper of distillers with a critic (every
published SKD config with the holistic term gets it without choosing it) and
mixed precision; setup_cpu_distributed's backend."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmkd.testing import REPO_ROOT as REPO
from mmkd.engine.runner_config import prepare_config, setup_cpu_distributed
from mmkd.utils.config_checks import ConfigValueError

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
    with pytest.raises(ConfigValueError) as e:
        prepare_config(cfg)
    assert e.value.key == 'model_wrapper_cfg.type'
    assert ("'MMSeparateDistributedDataParallel' for a "
            'distiller with') in e.value.expected
    assert e.value.found == "'MMDistributedDataParallel' (str)"


def test_amp_refuses_a_wrapper_it_cannot_convert():
    cfg = Config(dict(optim_wrapper=dict(
        type='ApexOptimWrapper', optimizer=dict(type='SGD', lr=0.1))))
    with pytest.raises(ConfigValueError) as e:
        prepare_config(cfg, amp=True)
    assert e.value.key == 'optim_wrapper.type'
    assert "'OptimWrapper' or 'AmpOptimWrapper' with --amp" in e.value.expected
    assert e.value.found == "'ApexOptimWrapper' (str)"
    # the entries of an OptimWrapperDict are named by their own key
    cfg = Config(dict(optim_wrapper=dict(
        constructor='mmkd.DistillerOptimWrapperConstructor',
        student=dict(type='OptimWrapper', optimizer=dict(type='SGD')),
        discriminator=dict(type='ApexOptimWrapper',
                           optimizer=dict(type='SGD')))))
    with pytest.raises(ConfigValueError) as e:
        prepare_config(cfg, amp=True)
    assert e.value.key == 'optim_wrapper.discriminator.type'
    assert "'OptimWrapper'" in e.value.expected
    assert e.value.found == "'ApexOptimWrapper' (str)"


def test_amp_turns_plain_wrappers_into_amp_ones():
    cfg = Config(dict(optim_wrapper=dict(
        constructor='mmkd.DistillerOptimWrapperConstructor',
        student=dict(optimizer=dict(type='SGD')),
        discriminator=dict(type='AmpOptimWrapper', loss_scale=512.0,
                           optimizer=dict(type='SGD')))))
    prepare_config(cfg, amp=True)
    assert cfg.optim_wrapper.student.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.student.loss_scale == 'dynamic'
    assert cfg.optim_wrapper.discriminator.loss_scale == 512.0


def test_a_gpu_backend_without_cuda_is_refused(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config(dict(launcher='pytorch',
                      env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    with pytest.raises(ConfigValueError) as e:
        setup_cpu_distributed(cfg)
    assert e.value.key == 'env_cfg.dist_cfg.backend'
    assert e.value.expected == "'gloo' where CUDA is not available"
    assert e.value.found == "'nccl' (str)"
