"""Every config under configs/fgfi/ builds and trains one iteration on CPU.

Small inputs (two images of different sizes in one batch, random boxes),
random teachers, nothing downloaded: the published-setting models at full
depth (R101 teachers, R50 students); only the data is tiny, and two-stage
detectors keep fewer proposals and RoIs."""
import glob
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

from mmkd.testing import REPO_ROOT as REPO
from mmkd.testing import (assert_distillation_step, demo_det_inputs,
                          offline_model_config)
from mmkd.utils.config_checks import ConfigValueError

FGFI = osp.join(REPO, 'configs', 'fgfi')
CONFIGS = sorted(glob.glob(osp.join(FGFI, '*.py')))
COCO = 'faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_1x_coco.py'
# the losses each distillation config must log, by file name
EXPECTED_LOSSES = {
    f'fgfi_{COCO}': {'imitation'},
    f'fgfi-full_{COCO}': {'imitation'},
    f'fgfi-full-hint_{COCO}': {'hint'},
    f'fgfi-gt_{COCO}': {'imitation'},
    f'fgfi-d_{COCO}': {'kd'},
    f'fgfi-id_{COCO}': {'imitation', 'kd'},
    'fgfi_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_1x_voc0712.py':
    {'imitation'},
    'fgfi_retinanet-r101-fpn_retinanet-r50-fpn_1x_coco.py': {'imitation'},
}
PLAIN_CONFIGS = {'faster-rcnn_r101_fpn_1x_voc0712.py'}  # the VOC teacher
HINT = f'fgfi-full-hint_{COCO}'
# configs that train on one input size (a HintRegressor's kernel is built for
# it): the test feeds images of this (H, W) instead
FIXED_SIZE_CONFIGS = {HINT: (64, 96)}


def test_every_config_is_covered():
    names = {osp.basename(c) for c in CONFIGS}
    assert names == set(EXPECTED_LOSSES) | PLAIN_CONFIGS


def few_rois(model_cfg):
    """Fewer proposals and sampled RoIs (in place): a two-stage detector's
    RoI head costs about as much per RoI as the whole backbone does on a
    64x96 image. The architecture is untouched."""
    train_cfg, test_cfg = model_cfg.get('train_cfg'), model_cfg.get('test_cfg')
    if train_cfg and 'rcnn' in train_cfg:
        train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=64)
        train_cfg.rcnn.sampler.num = 32
    if test_cfg and 'rcnn' in test_cfg:
        test_cfg.rpn.update(nms_pre=200, max_per_img=64)
    return model_cfg


def prepare(path):
    cfg = Config.fromfile(path)
    model = cfg.model
    if 'student' in model:
        from mmkd.utils.model_loading import load_model_config
        model.student = few_rois(offline_model_config(model.student))
        model.teacher = few_rois(offline_model_config(
            load_model_config(model.teacher, 'model.teacher')))
        model.teacher_checkpoint = None
    else:
        cfg.model = few_rois(offline_model_config(model))
    assert 'Pretrained' not in repr(cfg.model)  # nothing to download
    return cfg


def train_resize(cfg):
    """The Resize of the training pipeline."""
    resize, = [t for t in cfg.train_dataloader.dataset.pipeline
               if t['type'] == 'Resize']
    return resize


def fixed_train_size(cfg):
    """The one (H, W) every training image is resized to (a Resize with
    keep_ratio=False in the training pipeline)."""
    resize = train_resize(cfg)
    assert resize['keep_ratio'] is False
    width, height = resize['scale']
    return height, width


def shrink_hint_regressors(cfg, size):
    """Rebuild (in place) every HintRegressor of ``cfg`` for inputs of
    ``size`` (H, W) instead of the config's training size, at the strides
    its map sizes imply (an exact divisor of the training size)."""
    height, width = fixed_train_size(cfg)
    for connector in cfg.model.connectors.values():
        if connector['type'] != 'mmkd.HintRegressor':
            continue
        for key in ('student_size', 'teacher_size'):
            map_h, map_w = connector[key]
            stride = height // map_h
            assert (map_h * stride, map_w * stride) == (height, width)
            connector[key] = (size[0] // stride, size[1] // stride)


def batch(num_classes, seed=0, sizes=((64, 96), (80, 64))):
    """Two images of the given sizes (by default different: 64x96 and
    80x64), 3 random boxes of 8 to 24 pixels each."""
    g = torch.Generator().manual_seed(seed)
    boxes = []
    for h, w in sizes:
        xy = torch.rand(3, 2, generator=g) * torch.tensor([w - 24., h - 24.])
        wh = 8 + torch.rand(3, 2, generator=g) * 16
        boxes.append(torch.cat([xy, xy + wh], dim=1))
    return demo_det_inputs(boxes, sizes, num_classes, seed)


def num_classes(model_cfg):
    head = model_cfg.get('roi_head', {}).get('bbox_head') or \
        model_cfg.get('bbox_head')
    return head['num_classes']


@pytest.fixture
def after_warmup():
    """The runner's iteration past every warm-up, so that the distillation
    losses count in full."""
    hub = MessageHub.get_current_instance()
    old = hub.get_info('iter')
    hub.update_info('iter', 1000)
    yield
    hub.update_info('iter', old)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_one_training_iteration(path, after_warmup):
    torch.manual_seed(0)
    name = osp.basename(path)
    cfg = prepare(path)
    sizes = ((64, 96), (80, 64))
    if name in FIXED_SIZE_CONFIGS:
        shrink_hint_regressors(cfg, FIXED_SIZE_CONFIGS[name])
        sizes = (FIXED_SIZE_CONFIGS[name], ) * 2
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    student_cfg = cfg.model.get('student', cfg.model)
    before = [p.detach().clone() for p in model.parameters()
              if p.requires_grad]
    if name == HINT:
        regressor = model.connectors['hint_regressor']
        regressor_before = [p.detach().clone()
                            for p in regressor.parameters()]

    log_vars = model.train_step(
        batch(num_classes(student_cfg), sizes=sizes), optim_wrapper)

    assert math.isfinite(float(log_vars['loss']))
    if name in PLAIN_CONFIGS:
        assert not any(k.startswith('distill') for k in log_vars)
        # the step updated the student
        after = [p for p in model.parameters() if p.requires_grad]
        assert any(not torch.equal(a, b) for a, b in zip(after, before))
    else:
        assert_distillation_step(model, cfg.model, log_vars,
                                 EXPECTED_LOSSES[name], before)
    if name == HINT:
        # the hint covers every location: the step trains the regressor
        assert all(not torch.equal(p, q) for p, q in zip(
            regressor.parameters(), regressor_before))
        # images of different sizes (a batch padded to its largest) give maps
        # the regressor was not built for: P4 6x6 (96x96 padded) for 4x6
        with pytest.raises(ConfigValueError) as e:
            model.train_step(batch(num_classes(student_cfg)), optim_wrapper)
        assert (e.value.key, e.value.owner) == ('student_size',
                                                'HintRegressor')
        assert e.value.expected.startswith('6x6, the size of the student map')
        assert e.value.found == '4x6 (-> teacher 2x3, kernel 3x4)'


def test_published_settings_are_in_the_configs():
    """The official FGFI hyper-parameters, read back from the configs."""
    cfg = Config.fromfile(osp.join(FGFI, f'fgfi_{COCO}'))
    m = cfg.model
    assert m.type == 'mmkd.DetectionDistiller'
    assert m.student.backbone.depth == 50
    assert m.teacher == 'mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py'
    assert m.teacher_forward == 'extract_feat'
    assert m.mask_generator.psi == 0.5
    assert m.mask_generator.max_iou_scope == 'all'
    assert m.connectors.fpn_adapt == ConfigDict(
        type='mmkd.ConvConnector', in_channels=256, out_channels=256,
        num_levels=5)
    assert m.distill_losses.imitation.loss_weight == 0.01
    assert m.distill_losses.imitation.extra_inputs == dict(
        masks='imitation_masks')
    assert m.loss_schedules.imitation.warmup == 400
    assert cfg.optim_wrapper.clip_grad.max_norm == 10
    for variant, region in (('full', 'full'), ('gt', 'gt')):
        v = Config.fromfile(osp.join(FGFI, f'fgfi-{variant}_{COCO}'))
        assert v.model.region == region
        assert v.model.distill_losses == m.distill_losses
    d = Config.fromfile(osp.join(FGFI, f'fgfi-d_{COCO}'))
    assert set(d.model.distill_losses) == {'kd'}
    assert d.model.distill_losses.kd.use_sigmoid
    assert d.model.teacher_forward == 'tensor'
    assert not d.model.connectors


def test_hint_config_trains_on_one_unpadded_input_size():
    """Images of any size leave the training pipeline at 800x1344, which the
    student's preprocessor does not pad; the regressor is built for that
    size's P4 (stride 16) and P5 (stride 32)."""
    import numpy as np
    from mmdet.registry import TRANSFORMS
    cfg = Config.fromfile(osp.join(FGFI, HINT))
    init_default_scope('mmdet')
    transform = TRANSFORMS.build(train_resize(cfg))
    for h, w in ((480, 640), (640, 427), (333, 1000)):
        out = transform(dict(img=np.zeros((h, w, 3), np.uint8)))
        assert out['img_shape'] == (800, 1344) == fixed_train_size(cfg)
    divisor = cfg.model.student.data_preprocessor.pad_size_divisor
    assert 800 % divisor == 0 and 1344 % divisor == 0
    regressor = cfg.model.connectors.hint_regressor
    assert tuple(regressor.student_size) == (800 // 16, 1344 // 16)
    assert tuple(regressor.teacher_size) == (800 // 32, 1344 // 32)


def test_hint_config_weight_is_the_f_variant_scale_per_location():
    """FeatureMSELoss at the config's weight equals the F variant's
    ImitationLoss (lambda 0.01) with every location in the mask."""
    from mmkd.models.losses import FeatureMSELoss, ImitationLoss
    cfg = Config.fromfile(osp.join(FGFI, HINT))
    full = Config.fromfile(osp.join(FGFI, f'fgfi-full_{COCO}'))
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 2, 256, 3, 4)
    every_location = torch.ones(2, 3, 4, dtype=torch.bool)
    lam = full.model.distill_losses.imitation.loss_weight
    assert FeatureMSELoss(cfg.model.distill_losses.hint.loss_weight)(
        student, teacher).item() == pytest.approx(
            ImitationLoss(lam)(student, teacher, every_location).item())
