"""The plain student config written beside student checkpoints, and the
model configs it is read from (load_model_config)."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmkd.testing import REPO_ROOT
from mmkd.utils.config_checks import (ConfigKeyError, ConfigValueError,
                                      describe)
from mmkd.utils.model_loading import load_model_config
from mmkd.utils.student_export import student_config


def test_student_config_of_a_holistic_config_is_plain():
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'skd', 'skd-holistic_pspnet-r101-d8_'
        'pspnet-r18-d8_4xb2-40k_cityscapes-512x1024.py'))
    assert cfg.model.type == 'mmkd.SingleTeacherDistiller'
    assert cfg.model_wrapper_cfg.type == 'MMSeparateDistributedDataParallel'
    plain = student_config(cfg)
    assert plain.model.type == 'EncoderDecoder'
    assert plain.default_scope == 'mmseg'
    # the critic's wrapper and optimizer are the distiller's, not the student's
    assert 'model_wrapper_cfg' not in plain
    assert 'constructor' not in plain.optim_wrapper
    assert not any(str(h.get('type', '')).startswith('mmkd.')
                   for h in plain.get('custom_hooks', []))
    # the SKD configs' helper values (their loss configs, the critic's
    # optimizer) named mmkd types in the exported config
    assert 'skd_losses' in cfg and 'skd_critic_optim_wrapper' in cfg
    assert 'skd_losses' not in plain
    assert 'skd_critic_optim_wrapper' not in plain
    assert 'mmkd.' not in plain.pretty_text


def test_a_config_without_a_student_is_refused():
    cfg = Config(dict(model=dict(type='EncoderDecoder')))
    with pytest.raises(ConfigKeyError) as e:
        student_config(cfg)
    assert e.value.key == 'model.student'
    assert e.value.expected == 'the student of an mmkd distillation config'
    assert e.value.found == 'nothing'
    with pytest.raises(ConfigKeyError) as e:
        student_config(Config(dict()))
    assert e.value.key == 'model.student'
    assert e.value.expected == 'the student of an mmkd distillation config'
    assert e.value.found == 'nothing'


@pytest.mark.parametrize('spec', [3, ['a.py']])
def test_a_model_spec_of_the_wrong_type_is_refused(spec):
    with pytest.raises(ConfigValueError) as e:
        load_model_config(spec, 'model.teacher')
    assert e.value.key == 'model.teacher'
    assert e.value.expected.startswith('a config path')
    assert e.value.found == describe(spec)


def test_a_config_file_without_a_model_is_refused(tmp_path):
    path = tmp_path / 'no_model.py'
    path.write_text('default_scope = "mmseg"\n')
    with pytest.raises(ConfigKeyError) as e:
        load_model_config(str(path), 'model.student')
    assert e.value.key == 'model.student'
    assert e.value.expected == "a config with a 'model'"
    assert e.value.found == repr(str(path))
    # a file that does not exist stays a FileNotFoundError
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_model_config(str(tmp_path / 'missing.py'), 'model.student')
