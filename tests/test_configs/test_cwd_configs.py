"""Every segmentation config under configs/cwd/ builds and trains one
iteration on CPU (the detection one: test_successor_configs.py).

The published-setting models at full depth (PSPNet-R101 teacher, PSPNet-R18
student, 19 classes), random teacher, nothing downloaded, SyncBN as BN; only
the data is tiny: two 64x64 images (two, because the student's PSP pooling
branch of scale 1 gives 1x1 maps, and BN in training needs more than one
value per channel)."""
import glob
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope

from mmkd.testing import REPO_ROOT as REPO
from mmkd.testing import (assert_distillation_step, demo_seg_inputs,
                          offline_model_config)

CWD = osp.join(REPO, 'configs', 'cwd')
CONFIGS = sorted(c for c in glob.glob(osp.join(CWD, '*.py'))
                 if 'cityscapes' in c)
SETTING = 'pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py'
# the losses each config must log, by file name
EXPECTED_LOSSES = {
    f'cwd-logits_{SETTING}': {'cwd'},
    f'cwd-feat_{SETTING}': {'cwd'},
    f'cwd-logits-skd-pixel-pair_{SETTING}': {'cwd', 'pixel', 'pair'},
}
SIZE = 64


def test_every_config_is_covered():
    assert {osp.basename(c) for c in CONFIGS} == set(EXPECTED_LOSSES)


def prepare(path):
    from mmkd.utils.model_loading import load_model_config
    cfg = Config.fromfile(path)
    model = cfg.model
    model.student = offline_model_config(model.student)
    # stock configs pad every batch to the 512x1024 crop: pad to 64x64
    model.student.data_preprocessor.size = (SIZE, SIZE)
    model.student.backbone.init_cfg = None
    teacher = offline_model_config(
        load_model_config(model.teacher, 'model.teacher'))
    teacher.backbone.init_cfg = None
    model.teacher = teacher
    model.teacher_checkpoint = None
    return cfg


def batch(n=2, classes=19, seed=0):
    return demo_seg_inputs(n, SIZE, classes, seed)


@pytest.fixture
def mid_training():
    """The runner's iteration inside every warm-up..stop window, so that the
    scheduled losses count in full."""
    hub = MessageHub.get_current_instance()
    old = hub.get_info('iter')
    hub.update_info('iter', 1000)
    yield
    hub.update_info('iter', old)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_one_training_iteration(path, mid_training):
    torch.manual_seed(0)
    cfg = prepare(path)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        model.init_weights()
        model.train()
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        before = [p.detach().clone() for p in model.parameters()
                  if p.requires_grad]

        log_vars = model.train_step(batch(), optim_wrapper)

    assert math.isfinite(float(log_vars['loss']))
    assert_distillation_step(model, cfg.model, log_vars,
                             EXPECTED_LOSSES[osp.basename(path)], before)


def test_published_settings_are_in_the_configs():
    """The settings the README's table refers to, read back."""
    logits = Config.fromfile(osp.join(CWD, f'cwd-logits_{SETTING}'))
    m = logits.model
    assert m.type == 'mmkd.SingleTeacherDistiller'
    assert m.student.backbone.depth == 18
    assert m.student.decode_head.channels == 128
    assert m.teacher == \
        'mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py'
    assert m.teacher_checkpoint.endswith(
        'pspnet_r101-d8_512x1024_80k_cityscapes_20200606_112211-e1e1100f.pth')
    assert m.student_taps.logits == m.teacher_taps.logits == \
        'decode_head.conv_seg'
    assert m.distill_losses.cwd == ConfigDict(
        type='mmkd.ChannelWiseLoss', tau=1.0, loss_weight=5.0,
        student='logits', teacher='logits')
    assert logits.train_cfg.max_iters == 80000  # the stock 80k schedule
    assert logits.train_dataloader.batch_size == 2  # x 4 GPUs
    assert logits.crop_size == (512, 1024)

    feat = Config.fromfile(osp.join(CWD, f'cwd-feat_{SETTING}')).model
    assert feat.connectors.feat_adapt == ConfigDict(
        type='mmkd.ConvConnector', in_channels=128, out_channels=512,
        kernel_size=1, act=False, init_std=None)
    assert feat.distill_losses.cwd.connector == 'feat_adapt'
    assert feat.student_taps.feat == 'decode_head.bottleneck'

    both = Config.fromfile(
        osp.join(CWD, f'cwd-logits-skd-pixel-pair_{SETTING}')).model
    assert both.type == 'mmkd.SingleTeacherDistiller'
    assert both.distill_losses.cwd == m.distill_losses.cwd
    assert both.distill_losses.pixel.loss_weight == 10.0
    assert both.distill_losses.pair.pool == 'max'
    assert both.distill_losses.pair.pool_scale == 0.5
    assert both.loss_schedules.pixel == dict(warmup=1000, stop=72000)
