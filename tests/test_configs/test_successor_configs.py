"""The published-setting configs of FGD, PKD and MGD (configs/fgd, pkd,
mgd) and CWD on a detector's classification head (configs/cwd/*coco*)
build and train one iteration on CPU: the published models at full depth
(R101 / X101 teachers, R50 / R18 students), random teachers, nothing
downloaded; only the data is tiny (two detection images of different sizes,
or two 64x64 segmentation crops), and two-stage detectors keep fewer
proposals and RoIs. The official hyper-parameters are read back."""
import glob
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope

from mmkd.testing import REPO_ROOT as REPO
from mmkd.testing import (assert_distillation_step, demo_det_inputs,
                          demo_seg_inputs, offline_model_config)
from mmkd.utils.model_loading import load_model_config

CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs', m, '*.py'))
    for m in ('fgd', 'pkd', 'mgd', 'rtmdet', 'yolox'))
CONFIGS = sorted(sum(CONFIGS, []) +
                 glob.glob(osp.join(REPO, 'configs', 'cwd', '*coco.py')))
# the losses each config must log, by file name
EXPECTED_LOSSES = {
    'fgd_retinanet-r101-fpn_retinanet-r50-fpn_2x_coco.py': {'fgd'},
    'fgd_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_2x_coco.py':
    {'fgd_p2', 'fgd_p3', 'fgd_p4', 'fgd_p5'},
    'pkd_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_2x_coco.py':
    {'pkd_p2', 'pkd_p3', 'pkd_p4', 'pkd_p5'},
    'pkd_retinanet-x101-64x4d-fpn_retinanet-r50-fpn_2x_coco.py':
    {'pkd_p3', 'pkd_p4', 'pkd_p5', 'pkd_p6'},
    'mgd_retinanet-x101-64x4d-fpn_retinanet-r50-fpn_2x_coco.py': {'mgd'},
    'mgd_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py':
    {'mgd', 'cwd'},
    'mgd_pspnet-r101-d8_deeplabv3-r18-d8_4xb2-80k_cityscapes-512x1024.py':
    {'mgd', 'cwd'},
    'cwd-cls-head_gfl-r101-fpn_gfl-r50-fpn_1x_coco.py': {'cwd'},
    'cwd-neck_rtmdet-s_rtmdet-tiny_8xb32-300e_coco.py':
    {'cwd_p3', 'cwd_p4', 'cwd_p5'},
    'cwd-neck_rtmdet-m_rtmdet-s_8xb32-300e_coco.py':
    {'cwd_p3', 'cwd_p4', 'cwd_p5'},
    'cwd-neck_rtmdet-l_rtmdet-m_8xb32-300e_coco.py':
    {'cwd_p3', 'cwd_p4', 'cwd_p5'},
    'cwd-neck_rtmdet-x_rtmdet-l_8xb32-300e_coco.py':
    {'cwd_p3', 'cwd_p4', 'cwd_p5'},
    'fgd_yolox-l_yolox-m_8xb8-300e_coco.py': {'fgd_p3', 'fgd_p4', 'fgd_p5'},
}
SEG_SIZE = 64


def test_every_config_is_covered():
    assert {osp.basename(c) for c in CONFIGS} == set(EXPECTED_LOSSES)


def few_rois(model_cfg):
    """Fewer proposals and sampled RoIs (in place) of a two-stage detector
    (the architecture is untouched)."""
    if 'rcnn' in model_cfg.get('train_cfg', {}):
        model_cfg.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=64)
        model_cfg.train_cfg.rcnn.sampler.num = 32
    return model_cfg


def prepare(path):
    cfg = Config.fromfile(path)
    model = cfg.model
    model.student = few_rois(offline_model_config(model.student))
    model.teacher = few_rois(offline_model_config(
        load_model_config(model.teacher, 'model.teacher')))
    model.teacher_checkpoint = None
    if cfg.default_scope == 'mmseg':
        # stock configs pad every batch to the 512x1024 crop
        model.student.data_preprocessor.size = (SEG_SIZE, SEG_SIZE)
    # YOLOX resizes every batch to 480-800 px: the tiny batch as it is
    model.student.data_preprocessor.pop('batch_augments', None)
    if cfg.default_scope == 'mmdet':
        # RTMDet's pipeline pads every image to 640x640, its preprocessor
        # does not: pad the tiny batch to what its neck divides by
        model.student.data_preprocessor.setdefault('pad_size_divisor', 32)
    assert 'Pretrained' not in repr(cfg.model)  # nothing to download
    return cfg


def det_batch(num_classes, sizes=((64, 96), (80, 64))):
    g = torch.Generator().manual_seed(0)
    boxes = []
    for h, w in sizes:
        xy = torch.rand(3, 2, generator=g) * torch.tensor([w - 24., h - 24.])
        wh = 8 + torch.rand(3, 2, generator=g) * 16
        boxes.append(torch.cat([xy, xy + wh], dim=1))
    return demo_det_inputs(boxes, sizes, num_classes, 0)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_one_training_iteration(path):
    torch.manual_seed(0)
    cfg = prepare(path)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        model.init_weights()
        # the official init_student: the named parts are the teacher's
        teacher = model.teacher.state_dict()
        for key in model.from_teacher:
            assert torch.equal(model.student.state_dict()[key], teacher[key])
        model.train()
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        before = [p.detach().clone() for p in model.parameters()
                  if p.requires_grad]
        if cfg.default_scope == 'mmseg':
            data = demo_seg_inputs(2, SEG_SIZE, 19, 0)
        else:
            student = cfg.model.student
            head = student.get('roi_head', {}).get('bbox_head') or \
                student.bbox_head
            data = det_batch(head.num_classes)
        log_vars = model.train_step(data, optim_wrapper)
    assert math.isfinite(float(log_vars['loss']))
    assert_distillation_step(model, cfg.model, log_vars,
                             EXPECTED_LOSSES[osp.basename(path)], before)


def config(name):
    folder = name.split('_')[0].split('-')[0]
    return Config.fromfile(osp.join(REPO, 'configs', folder, name))


def test_official_hyper_parameters():
    retina = config('fgd_retinanet-r101-fpn_retinanet-r50-fpn_2x_coco.py')
    fgd = retina.model.distill_losses.fgd
    assert (fgd.temp, fgd.alpha, fgd.beta, fgd.gamma, fgd.lambda_rela,
            fgd.num_levels) == (0.5, 1e-3, 5e-4, 5e-4, 5e-6, 5)
    assert retina.optim_wrapper.clip_grad.max_norm == 35
    assert retina.optim_wrapper.optimizer.lr == 0.01
    assert retina.train_cfg.max_epochs == 24
    # init_student=True: the neck and heads start from the teacher's
    assert retina.model.student_from_teacher == ['neck', 'bbox_head']
    faster = config('fgd_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_2x_coco.py')
    for level in ('p2', 'p3', 'p4', 'p5'):
        loss = faster.model.distill_losses[f'fgd_{level}']
        assert (loss.alpha, loss.beta, loss.gamma, loss.lambda_rela) == (
            5e-5, 2.5e-5, 5e-5, 5e-7)
    assert faster.optim_wrapper.optimizer.lr == 0.02
    assert 'p6' not in faster.model.student_taps
    assert faster.model.student_from_teacher == ['neck', 'rpn_head',
                                                 'roi_head']
    pkd = config('pkd_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_2x_coco.py')
    assert {v.loss_weight for v in pkd.model.distill_losses.values()} == {6}
    pkd_retina = config(
        'pkd_retinanet-x101-64x4d-fpn_retinanet-r50-fpn_2x_coco.py')
    assert {v.loss_weight
            for v in pkd_retina.model.distill_losses.values()} == {10}
    mgd = config('mgd_retinanet-x101-64x4d-fpn_retinanet-r50-fpn_2x_coco.py')
    loss = mgd.model.distill_losses.mgd
    assert (loss.loss_weight, loss.mask_ratio, loss.num_levels) == (
        2e-5, 0.65, 5)
    assert mgd.model.student_from_teacher == ['neck', 'bbox_head']
    seg = config(
        'mgd_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py')
    loss = seg.model.distill_losses
    assert (loss.mgd.student_channels, loss.mgd.teacher_channels,
            loss.mgd.loss_weight, loss.mgd.mask_ratio) == (512, 2048, 2e-5,
                                                           0.75)
    assert (loss.cwd.tau, loss.cwd.loss_weight) == (4.0, 3.0)


def test_rtmdet_settings_are_mmyolos():
    """mmyolo's RTMDet distillation: CWD (tau 1, weight 1) on the
    standardised neck convolutions P3-P5, stopped at epoch 280 of 300; the
    connectors map the student's neck channels to the teacher's."""
    paths = sorted(glob.glob(osp.join(REPO, 'configs', 'rtmdet', '*.py')))
    assert len(paths) == 4
    for path in paths:
        cfg = Config.fromfile(path)
        model = cfg.model
        taps = {f'p{i + 3}': f'neck.out_convs.{i}.conv' for i in range(3)}
        assert model.student_taps == model.teacher_taps == taps
        assert {(v.type, v.tau, v.loss_weight, v.normalize)
                for v in model.distill_losses.values()} == {
                    ('mmkd.ChannelWiseLoss', 1.0, 1.0, 'batch')}
        assert list(model.loss_schedules.values()) == [
            dict(stop=280, by_epoch=True)] * 3
        assert cfg.max_epochs == 300
        teacher = load_model_config(model.teacher, 'model.teacher')
        for adapt in model.connectors.values():
            assert (adapt.in_channels, adapt.out_channels) == (
                model.student.neck.out_channels, teacher.neck.out_channels)
            assert (adapt.kernel_size, adapt.act) == (1, False)


def test_yolox_settings_are_the_official_fgd_ones():
    cfg = Config.fromfile(osp.join(
        REPO, 'configs', 'yolox', 'fgd_yolox-l_yolox-m_8xb8-300e_coco.py'))
    losses = cfg.model.distill_losses
    assert {(v.temp, v.alpha, v.beta, v.gamma, v.lambda_rela,
             v.student_channels, v.teacher_channels)
            for v in losses.values()} == {(0.5, 2e-3, 1e-3, 1e-3, 1e-5, 192,
                                          256)}
    assert cfg.model.student_taps == {
        f'p{i + 3}': f'neck.out_convs.{i}' for i in range(3)}
    assert 'student_from_teacher' not in cfg.model  # official: init_student
    # False


def test_yolox_mode_switch_reaches_the_student():
    """mmdet's YOLOXModeSwitchHook sets ``bbox_head.use_l1`` on the trained
    detector (``model.detector`` when the model wraps one): the distiller's
    student."""
    from types import SimpleNamespace

    from mmdet.engine.hooks import YOLOXModeSwitchHook
    torch.manual_seed(0)
    cfg = prepare(osp.join(REPO, 'configs', 'yolox',
                           'fgd_yolox-l_yolox-m_8xb8-300e_coco.py'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    assert model.detector is model.student
    assert not model.student.bbox_head.use_l1
    loader = SimpleNamespace(dataset=SimpleNamespace(
        update_skip_type_keys=lambda keys: None))
    runner = SimpleNamespace(epoch=285, max_epochs=300, model=model,
                             train_dataloader=loader,
                             logger=SimpleNamespace(info=lambda msg: None))
    YOLOXModeSwitchHook(num_last_epochs=15).before_train_epoch(runner)
    assert model.student.bbox_head.use_l1
