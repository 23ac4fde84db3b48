"""The plain student config written beside student checkpoints."""
import os.path as osp

from mmengine.config import Config

from mmkd.testing import REPO_ROOT
from mmkd.utils.student_export import student_config


def test_student_config_of_a_holistic_config_is_plain():
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'skd', 'skd-holistic_pspnet-r101-d8_'
        'pspnet-r18-d8_4xb2-40k_cityscapes-512x1024.py'))
    assert cfg.model.type == 'mmkd.SegmentationDistiller'
    assert cfg.model_wrapper_cfg.type == 'MMSeparateDistributedDataParallel'
    plain = student_config(cfg)
    assert plain.model.type == 'EncoderDecoder'
    assert plain.default_scope == 'mmseg'
    # the critic's wrapper and optimizer are the distiller's, not the student's
    assert 'model_wrapper_cfg' not in plain
    assert 'constructor' not in plain.optim_wrapper
    assert not any(str(h.get('type', '')).startswith('mmkd.')
                   for h in plain.get('custom_hooks', []))
