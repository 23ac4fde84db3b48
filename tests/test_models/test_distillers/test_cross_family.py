"""A student of another detector family than its teacher: RetinaNet R18
(FPN P3-P7, strides 8 to 128) distilled from Faster R-CNN R101 (FPN P2-P6,
strides 4 to 64), with FGFI's imitation and with CWD on the FPN outputs:
the levels pair by stride (P3-P6), one training step each, the published
architectures with random weights on two small images."""
import copy
import math

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from mmkd.registry import MODELS
from mmkd.testing import demo_det_inputs, offline_model_config
from mmkd.utils.model_loading import load_model_config


def student_and_teacher():
    student = offline_model_config(load_model_config(
        'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', 'student'))
    teacher = offline_model_config(load_model_config(
        'mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py', 'teacher'))
    return student, teacher


def distiller(losses, **changes):
    student, teacher = student_and_teacher()
    cfg = dict(
        type='mmkd.DetectionDistiller', student=student, teacher=teacher,
        teacher_forward='extract_feat',
        student_taps=dict(fpn='neck'), teacher_taps=dict(fpn='neck'),
        distill_losses=losses, **changes)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg).train()


def batch():
    boxes = [[[10., 6., 40., 30.], [40., 20., 90., 60.]],
             [[30., 20., 60., 50.]]]
    return demo_det_inputs(boxes, ((64, 96), (80, 64)), 80, 0)


@pytest.fixture
def after_warmup():
    hub = MessageHub.get_current_instance()
    old = hub.get_info('iter')
    hub.update_info('iter', 1000)
    yield
    hub.update_info('iter', old)


@pytest.mark.parametrize('method', ['fgfi', 'cwd'])
def test_retinanet_student_of_a_faster_rcnn_teacher(method, after_warmup,
                                                    monkeypatch):
    logged = []
    monkeypatch.setattr(
        'mmkd.taps.levels.print_log',
        lambda message, logger: logged.append(message))
    if method == 'fgfi':
        model = distiller(
            dict(imitation=dict(type='mmkd.ImitationLoss', loss_weight=0.01,
                                student='fpn', connector='adapt',
                                teacher='fpn',
                                extra_inputs=dict(masks='imitation_masks'))),
            mask_tap='fpn', connectors=dict(adapt=dict(
                type='mmkd.ConvConnector', in_channels=256,
                out_channels=256, num_levels=5)))
    else:
        model = distiller(dict(cwd=dict(type='mmkd.ChannelWiseLoss',
                                        tau=1.0, loss_weight=5.0,
                                        student='fpn', teacher='fpn')))
    optim_wrapper = build_optim_wrapper(
        model, dict(type='OptimWrapper', optimizer=dict(type='SGD',
                                                        lr=0.01)))
    data = batch()
    neck = [p.detach().clone() for p in model.student.neck.parameters()]
    log_vars = model.train_step(data, optim_wrapper)
    name = 'imitation' if method == 'fgfi' else 'cwd'
    value = log_vars[f'distill.loss_{name}']
    assert math.isfinite(float(value)) and float(value) > 0
    assert any(not torch.equal(a, b) for a, b in
               zip(neck, model.student.neck.parameters()))
    assert logged == [
        f"model.distill_losses.{name}: student tap 'fpn' and teacher tap "
        "'fpn': levels paired by stride (8, 16, 32, 64); not distilled: "
        'student levels [4] (strides 128); teacher levels [0] (strides 4).']
    if method == 'cwd':
        # the distiller's value is the sum over the paired levels: student
        # P3-P6 (its levels 0-3) against teacher P3-P6 (its levels 1-4)
        with torch.no_grad(), DefaultScope.overwrite_default_scope('mmdet'):
            batch_data = model.data_preprocessor(copy.deepcopy(data), True)
            losses = model(**batch_data, mode='loss')
            s = model.student.extract_feat(batch_data['inputs'])
            t = model.teacher.extract_feat(batch_data['inputs'])
            expected = sum(model.distill_losses.cwd.forward_level(
                s[i], t[i + 1]) for i in range(4))
        assert float(losses['distill.loss_cwd']) == pytest.approx(
            float(expected), rel=1e-5)


def test_cwd_on_retinanet_classification_heads():
    """bbox_head.retina_cls runs once per FPN level: its tap is five
    (N, 9 * 80, H_l, W_l) maps, CWD sums the levels' losses (the published
    CWD detection setting; GFL's head: tests/test_configs)."""
    student, _ = student_and_teacher()
    teacher = copy.deepcopy(student)
    cfg = dict(type='mmkd.SingleTeacherDistiller', student=student,
               teacher=teacher, student_taps=dict(cls='bbox_head.retina_cls'),
               teacher_taps=dict(cls='bbox_head.retina_cls'),
               distill_losses=dict(cwd=dict(type='mmkd.ChannelWiseLoss',
                                            tau=1.0, loss_weight=5.0,
                                            student='cls', teacher='cls')))
    torch.manual_seed(0)
    with torch.no_grad(), DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg).train()
        batch_data = model.data_preprocessor(batch(), True)
        losses = model(**batch_data, mode='loss')
        inputs = batch_data['inputs']
        s, _ = model.student.bbox_head(model.student.extract_feat(inputs))
        t, _ = model.teacher.bbox_head(model.teacher.extract_feat(inputs))
    assert len(s) == 5 and s[0].shape[1] == 9 * 80
    loss = model.distill_losses.cwd
    expected = sum(loss.forward_level(a, b) for a, b in zip(s, t))
    assert float(losses['distill.loss_cwd']) == pytest.approx(
        float(expected), rel=1e-5)
    assert float(expected) > 0
