"""DetectionDistiller (FGFI): where gradients go, the imitation region of each
mode on a batch of images of different sizes, the warm-up, students without
anchors and the clear errors, on the tiny FGFI config (Faster R-CNN R50-FPN
teacher -> R18-FPN student, 5 FPN levels, strides 4 to 64)."""
import copy

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope, init_default_scope

from mmkd.taps.levels import pair_levels
from mmkd.testing import demo_det_inputs, tiny_config
from mmkd.utils.config_checks import (ConfigKeyError, ConfigValueError,
                                      describe)

FGFI = 'fgfi_faster_rcnn_r50_r18_tiny_shapes'
STRIDES = (4, 8, 16, 32, 64)
# Two images in one batch, padded to 64x96 (the first one's size)
SIZES = ((64, 96), (40, 56))
# Locations inside the 40x56 image per level: ceil(40 / s) x ceil(56 / s)
VALID_40x56 = {4: (10, 14), 8: (5, 7), 16: (3, 4), 32: (2, 2), 64: (1, 1)}
FEATMAP_SIZES = [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]


@pytest.fixture(scope='module')
def cfg():
    init_default_scope('mmdet')
    return tiny_config(FGFI)


@pytest.fixture
def at_iter():
    """Set the runner iteration the loss schedules read; restore it after."""
    hub = MessageHub.get_current_instance()
    old = hub.get_info('iter')

    def set_iter(k):
        MessageHub.get_current_instance().update_info('iter', k)

    yield set_iter
    hub.update_info('iter', old)


def build(model_cfg, **changes):
    from mmkd.registry import MODELS
    model_cfg = dict(copy.deepcopy(model_cfg))  # update replaces, not merges
    model_cfg.update(changes)
    torch.manual_seed(0)
    return MODELS.build(model_cfg).train()


def batch(model, boxes, sizes=SIZES, seed=0):
    """Preprocessed batch: one image per size, ``boxes[i]`` its gt boxes."""
    return model.data_preprocessor(demo_det_inputs(boxes, sizes, seed=seed),
                                   True)


def distiller_masks(model, data):
    """The region the distiller's losses get for this batch."""
    with torch.no_grad(), model.student_taps.recording():
        model.student.extract_feat(data['inputs'])
        return model.imitation_masks(data['inputs'], data['data_samples'])


def valid_by_hand(sizes=SIZES):
    """Per level (N, H, W): the locations inside each image."""
    levels = []
    for stride, (fh, fw) in zip(STRIDES, FEATMAP_SIZES):
        level = torch.zeros((len(sizes), fh, fw), dtype=torch.bool)
        for i, (h, w) in enumerate(sizes):
            vh = -(-h // stride)  # ceil
            vw = -(-w // stride)
            level[i, :vh, :vw] = True
        levels.append(level)
    return levels


BOXES = [
    # image 0 (64x96): a small and a large box
    [[10, 6, 30, 20], [40, 20, 90, 60]],
    # image 1 (40x56): a box against its bottom-right corner, whose anchor
    # region would spill into the padding
    [[30, 20, 56, 40]],
]


# --------------------------------------------------------------- gradients
def test_gradients_reach_student_and_connectors_never_teacher(cfg, at_iter):
    at_iter(1000)  # after the warm-up
    model = build(cfg.model)
    data = batch(model, BOXES)
    losses = model(**data, mode='loss')
    masks = distiller_masks(model, data)
    losses['distill.loss_imitation'].backward()

    student = dict(model.student.named_parameters())
    # the imitation gradient reaches the neck and the trainable backbone
    # stages, not the heads (frozen_stages=1: stem and layer1 are frozen)
    for name in ('neck.fpn_convs.0.conv.weight',
                 'neck.lateral_convs.3.conv.weight',
                 'backbone.layer4.1.conv2.weight'):
        assert student[name].grad is not None, name
        assert student[name].grad.abs().sum() > 0, name
    assert student['backbone.conv1.weight'].grad is None
    for name, p in student.items():
        if name.startswith(('rpn_head.', 'roi_head.')):
            assert p.grad is None, name
    # each level's adaptation layer: a gradient where its mask has locations
    for lvl, layer in enumerate(model.connectors['fpn_adapt'].layers):
        grad = layer[0].weight.grad
        assert grad is not None
        assert (grad.abs().sum() > 0) == bool(masks[lvl].any()), lvl
    assert masks[0].any()
    # never the teacher
    assert all(not p.requires_grad and p.grad is None
               for p in model.teacher.parameters())

    # the whole step: the heads train too, the teacher still not
    model.zero_grad()
    total, _ = model.parse_losses(model(**data, mode='loss'))
    total.backward()
    assert student['rpn_head.rpn_cls.weight'].grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_teacher_taps_carry_no_graph(cfg, at_iter):
    at_iter(1000)
    model = build(cfg.model)
    data = batch(model, BOXES)
    with model.teacher_taps.recording(), model.student_taps.recording():
        with torch.no_grad():
            model.run_teacher(data['inputs'], data['data_samples'])
        model.student.extract_feat(data['inputs'])
        assert all(not t.requires_grad for t in model.teacher_taps['fpn'])
        assert all(s.requires_grad for s in model.student_taps['fpn'])


# ------------------------------------------------------------------ masks
def test_imitation_masks_equal_the_generator_restricted_to_each_image(cfg):
    model = build(cfg.model)
    data = batch(model, BOXES)
    assert tuple(data['inputs'].shape[-2:]) == (64, 96)
    masks = distiller_masks(model, data)
    assert [tuple(m.shape) for m in masks] == [(2, h, w)
                                              for h, w in FEATMAP_SIZES]

    # the generator called directly, on the student's RPN anchors
    anchors = model.student.rpn_head.prior_generator.grid_priors(
        FEATMAP_SIZES, device='cpu')
    boxes = [s.gt_instances.bboxes for s in data['data_samples']]
    unrestricted = model.mask_generator.generate_batch(boxes, anchors,
                                                       FEATMAP_SIZES)
    valid = valid_by_hand()
    for lvl, stride in enumerate(STRIDES):
        assert torch.equal(masks[lvl], unrestricted[lvl] & valid[lvl]), lvl
        # nothing in the padding of the smaller image
        vh, vw = VALID_40x56[stride]
        assert not masks[lvl][1, vh:, :].any()
        assert not masks[lvl][1, :, vw:].any()
    # ... where the generator alone would put some
    assert any(
        (unrestricted[lvl][1] & ~valid[lvl][1]).any() for lvl in range(5))
    # and a real region inside both images
    assert masks[0][0].any() and masks[0][1].any()
    assert not masks[0][0].all()


def test_psi_and_scope_come_from_the_config(cfg):
    model = build(cfg.model, mask_generator=dict(
        type='mmkd.ImitationMaskGenerator', psi=0.8, max_iou_scope='level'))
    assert model.mask_generator.psi == 0.8
    assert model.mask_generator.max_iou_scope == 'level'
    data = batch(model, BOXES)
    masks = distiller_masks(model, data)
    anchors = model.student.rpn_head.prior_generator.grid_priors(
        FEATMAP_SIZES, device='cpu')
    from mmkd.task_modules import ImitationMaskGenerator
    expected = ImitationMaskGenerator(psi=0.8, max_iou_scope='level') \
        .generate_batch([s.gt_instances.bboxes for s in data['data_samples']],
                        anchors, FEATMAP_SIZES, valid_by_hand())
    for lvl in range(5):
        assert torch.equal(masks[lvl], expected[lvl])


def test_gt_region_is_the_cells_of_the_scaled_boxes(cfg):
    model = build(cfg.model, region='gt')
    assert model.mask_generator is None
    # one box in image 0, none in image 1
    data = batch(model, [[[10, 6, 30, 20]], []])
    masks = distiller_masks(model, data)
    # cells floor(x1/s)..ceil(x2/s)-1 and floor(y1/s)..ceil(y2/s)-1, by hand:
    # (rows, cols) per stride for the box x 10..30, y 6..20
    cells = {4: (slice(1, 5), slice(2, 8)), 8: (slice(0, 3), slice(1, 4)),
             16: (slice(0, 2), slice(0, 2)), 32: (slice(0, 1), slice(0, 1)),
             64: (slice(0, 1), slice(0, 1))}
    for lvl, stride in enumerate(STRIDES):
        expected = torch.zeros((2, ) + FEATMAP_SIZES[lvl], dtype=torch.bool)
        expected[(0, ) + cells[stride]] = True
        assert torch.equal(masks[lvl], expected), stride
    assert int(masks[0].sum()) == 4 * 6


def test_full_region_is_the_valid_area(cfg):
    model = build(cfg.model, region='full')
    data = batch(model, BOXES)
    masks = distiller_masks(model, data)
    for lvl, stride in enumerate(STRIDES):
        assert masks[lvl][0].all()  # the 64x96 image fills the batch
        vh, vw = VALID_40x56[stride]
        assert int(masks[lvl][1].sum()) == vh * vw
        assert masks[lvl][1, :vh, :vw].all()
        assert torch.equal(masks[lvl], valid_by_hand()[lvl])


# ---------------------------------------------------------------- warm-up
def imitation_by_hand(model, data, masks):
    """lambda * sum_l sum I (f_adap(s) - t)^2 / (2 N_p), from the models."""
    with torch.no_grad():
        s = model.connectors['fpn_adapt'](
            model.student.extract_feat(data['inputs']))
        t = model.teacher.extract_feat(data['inputs'])
        total = sum(((a - b).pow(2).sum(1) * m).sum()
                    for a, b, m in zip(s, t, masks))
        num = sum(m.sum() for m in masks)
    return 0.01 * float(total) / (2 * float(num))


def test_warmup_gives_no_imitation_then_the_full_loss(cfg, at_iter):
    model = build(cfg.model, loss_schedules=dict(imitation=dict(warmup=3)))
    data = batch(model, BOXES)
    masks = distiller_masks(model, data)
    expected = imitation_by_hand(model, data, masks)
    assert expected > 0

    for k in (0, 2):
        at_iter(k)
        with torch.no_grad():
            losses = model(**data, mode='loss')
        assert float(losses['distill.loss_imitation']) == 0.0
        assert float(losses['distill_factor.imitation']) == 0.0
        _, log_vars = model.parse_losses(losses)
        assert float(log_vars['distill_factor.imitation']) == 0.0
    for k in (3, 50):
        at_iter(k)
        with torch.no_grad():
            losses = model(**data, mode='loss')
        assert float(losses['distill.loss_imitation']) == pytest.approx(
            expected, rel=1e-5)
        total, log_vars = model.parse_losses(losses)
        log_vars = {key: float(v) for key, v in log_vars.items()}
        # logged beside the losses; the factor is not summed into the loss
        assert log_vars['distill_factor.imitation'] == 1.0
        assert log_vars['distill.loss_imitation'] == pytest.approx(
            expected, rel=1e-5)
        # the task losses and distill.loss_imitation
        summed = sum(v for key, v in log_vars.items()
                     if 'loss' in key and key != 'loss')
        assert float(total) == pytest.approx(summed, rel=1e-5)
        assert log_vars['loss'] == pytest.approx(summed, rel=1e-5)


# --------------------------------------------------- students w/o anchors
def tiny_fcos():
    """A tiny FCOS (point-based: MlvlPointGenerator, no anchors)."""
    from mmkd.utils.model_loading import load_model_config
    model = load_model_config('mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco'
                              '.py', 'test')
    model.backbone.update(depth=18, base_channels=8, init_cfg=None)
    model.neck.update(in_channels=[8, 16, 32, 64], out_channels=16)
    model.bbox_head.update(
        in_channels=16, feat_channels=16, stacked_convs=1, num_classes=2,
        norm_cfg=dict(type='GN', num_groups=4, requires_grad=True))
    return model


def fcos_distiller_cfg(cfg, **changes):
    model_cfg = dict(copy.deepcopy(cfg.model))
    model_cfg.update(
        student=tiny_fcos(), teacher=tiny_fcos(),
        connectors=dict(fpn_adapt=dict(type='mmkd.ConvConnector',
                                       in_channels=16, out_channels=16,
                                       num_levels=5)))
    model_cfg.update(changes)
    return model_cfg


def test_student_without_anchors_needs_an_anchor_generator(cfg):
    with pytest.raises(ValueError) as e:
        build(fcos_distiller_cfg(cfg))
    message = str(e.value)
    assert 'FCOS has no anchor generator' in message
    assert 'MlvlPointGenerator' in message
    assert 'model.anchor_generator' in message
    # the gt region needs no anchors
    build(fcos_distiller_cfg(cfg, region='gt'))


def test_anchor_generator_given_for_a_student_without_anchors(cfg, at_iter):
    at_iter(1000)
    anchor_generator = dict(type='AnchorGenerator', scales=[8],
                            ratios=[0.5, 1.0, 2.0],
                            strides=[8, 16, 32, 64, 128])
    model = build(fcos_distiller_cfg(cfg, anchor_generator=anchor_generator))
    data = batch(model, BOXES)
    losses = model(**data, mode='loss')
    assert {'loss_cls', 'loss_bbox', 'loss_centerness',
            'distill.loss_imitation'} <= set(losses)
    assert float(losses['distill.loss_imitation']) > 0
    # the masks use the given anchors on FCOS's P3-P7
    from mmdet.registry import TASK_UTILS
    sizes = [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]
    anchors = TASK_UTILS.build(anchor_generator).grid_priors(sizes,
                                                             device='cpu')
    masks = distiller_masks(model, data)
    expected = model.mask_generator.generate_batch(
        [s.gt_instances.bboxes for s in data['data_samples']], anchors,
        sizes)
    for lvl, stride in enumerate((8, 16, 32, 64, 128)):
        valid = torch.zeros((2, ) + sizes[lvl], dtype=torch.bool)
        valid[0] = True
        valid[1, :-(-40 // stride), :-(-56 // stride)] = True
        assert torch.equal(masks[lvl], expected[lvl] & valid), lvl


# ------------------------------------------------------------- bad inputs
@pytest.mark.parametrize('psi', [1.5, -0.1, None, 'half'])
def test_psi_not_a_number_in_0_1(cfg, psi):
    """psi=None gave a TypeError that named no key."""
    with pytest.raises(ConfigValueError) as e:
        build(cfg.model, mask_generator=dict(
            type='mmkd.ImitationMaskGenerator', psi=psi))
    assert e.value.key == 'model.mask_generator.psi'
    assert e.value.expected == 'a number in [0, 1]'
    assert e.value.found == describe(psi)


def test_default_mask_generator_in_an_mmdet_scoped_config(cfg):
    """Without model.mask_generator, the default generator was looked up in
    mmdet's registry under default_scope='mmdet' and not found."""
    model_cfg = dict(copy.deepcopy(cfg.model))
    model_cfg.pop('mask_generator')
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = build(model_cfg)
    assert type(model.mask_generator).__name__ == 'ImitationMaskGenerator'
    assert model.mask_generator.psi == 0.5


def test_mask_tap_only_when_a_loss_uses_the_region(cfg):
    """No loss asks for 'imitation_masks': no mask_tap and no region, even
    for a student without anchors (FCOS, with CWD on its classification
    head, one map per level); an imitation loss without mask_tap is
    refused, naming the key and the loss."""
    model = build(fcos_distiller_cfg(
        cfg, mask_tap=None, connectors=dict(), loss_schedules=dict(),
        teacher_forward='tensor',
        student_taps=dict(cls='bbox_head.conv_cls'),
        teacher_taps=dict(cls='bbox_head.conv_cls'),
        distill_losses=dict(cwd=dict(type='mmkd.ChannelWiseLoss',
                                     student='cls', teacher='cls'))))
    assert model.imitation_region is None and model.prior_generator is None
    data = batch(model, BOXES)
    losses = model(**data, mode='loss')
    assert float(losses['distill.loss_cwd']) > 0
    with pytest.raises(ConfigValueError) as e:
        build(cfg.model, mask_tap=None)
    assert e.value.key == 'model.mask_tap'
    assert "one of ['fpn'] (model.student_taps)" in e.value.expected
    assert e.value.found == 'nothing'


def test_unknown_region_and_mask_tap(cfg):
    with pytest.raises(ConfigValueError) as e:
        build(cfg.model, region='boxes')
    assert e.value.key == 'model.region'
    assert e.value.found == "'boxes' (str)"
    with pytest.raises(ConfigKeyError) as e:
        build(cfg.model, mask_tap='p2')
    assert e.value.key == 'model.mask_tap'
    assert e.value.found == "'p2'"


def teacher_cfg(**neck):
    """The tiny teacher with its FPN changed (only its backbone and neck run:
    teacher_forward='extract_feat')."""
    model = copy.deepcopy(tiny_config(
        'faster_rcnn_r50_fpn_tiny_shapes_teacher').model)
    model.neck.update(neck)
    return model


def test_levels_of_other_strides_are_paired_by_stride(cfg, at_iter,
                                                     monkeypatch):
    """A teacher FPN of four levels (strides 4 to 32) against the student's
    five (4 to 64): the first four pair, the student's stride-64 level is
    left out, named in the log, with its masks."""
    at_iter(1000)
    model = build(cfg.model, teacher=teacher_cfg(num_outs=4))
    data = batch(model, BOXES)
    masks = distiller_masks(model, data)
    logged = []
    monkeypatch.setattr(
        'mmkd.taps.levels.print_log',
        lambda message, logger: logged.append(message))
    losses = model(**data, mode='loss')
    model(**data, mode='loss')  # logged once
    assert logged == [
        "model.distill_losses.imitation: student tap 'fpn' and teacher tap "
        "'fpn': levels paired by stride (4, 8, 16, 32); not distilled: "
        'student levels [4] (strides 64).']
    with torch.no_grad():
        s = model.connectors['fpn_adapt'](
            model.student.extract_feat(data['inputs']))
        t = model.teacher.extract_feat(data['inputs'])
        total = sum(((a - b).pow(2).sum(1) * m).sum()
                    for a, b, m in zip(s[:4], t, masks[:4]))
        num = sum(m.sum() for m in masks[:4])
    assert float(losses['distill.loss_imitation']) == pytest.approx(
        0.01 * float(total) / (2 * float(num)), rel=1e-5)


def test_fpns_starting_at_other_levels_pair_by_stride(cfg, at_iter):
    """The teacher's FPN starts one level later (P3-P7, strides 8 to 128,
    as RetinaNet's) than the student's (P2-P6): student levels 1-4 pair
    with teacher levels 0-3, as many levels on both sides, and the masks
    follow the student's levels."""
    at_iter(1000)
    model = build(cfg.model, teacher=teacher_cfg(
        start_level=1, add_extra_convs='on_input'))
    data = batch(model, BOXES)
    masks = distiller_masks(model, data)
    losses = model(**data, mode='loss')
    with torch.no_grad():
        s = model.connectors['fpn_adapt'](
            model.student.extract_feat(data['inputs']))
        t = model.teacher.extract_feat(data['inputs'])
        assert [tuple(x.shape[-2:]) for x in t] == FEATMAP_SIZES[1:] + [
            (1, 1)]
        total = sum(((a - b).pow(2).sum(1) * m).sum()
                    for a, b, m in zip(s[1:], t[:4], masks[1:]))
        num = sum(m.sum() for m in masks[1:])
    assert float(losses['distill.loss_imitation']) == pytest.approx(
        0.01 * float(total) / (2 * float(num)), rel=1e-5)


def test_no_level_of_the_same_stride(cfg, at_iter):
    at_iter(1000)
    # student P2-P6 (4 to 64) tapped at P2-P3 only; teacher P5-P6
    model = build(cfg.model, teacher=teacher_cfg(num_outs=5),
                  student_taps=dict(fpn='neck', low='neck.fpn_convs.0'),
                  connectors=dict(), loss_schedules=dict(),
                  distill_losses=dict(cwd=dict(
                      type='mmkd.ChannelWiseLoss', student='fpn',
                      teacher='fpn')))
    data = batch(model, BOXES)
    with model.teacher_taps.recording(), model.student_taps.recording():
        with torch.no_grad():
            model.run_teacher(data['inputs'], data['data_samples'])
        model.student.extract_feat(data['inputs'])
        student = tuple(model.student_taps['fpn'])[:2]
        teacher = tuple(model.teacher_taps['fpn'])[3:]
    with pytest.raises(ValueError, match=(
            r"^model\.distill_losses\.cwd: student tap 'fpn' and teacher tap "
            r"'fpn' have no level of the same stride \(student strides 4, 8, "
            r'teacher strides 32, 64, measured on a \(64, 96\) batch\)')):
        pair_levels('model.distill_losses.cwd', model.loss_routes['cwd'],
                    student, student, teacher, {}, (64, 96), set())


def test_mask_tap_levels_differ_from_the_anchor_levels(cfg):
    model = build(cfg.model, anchor_generator=dict(
        type='AnchorGenerator', scales=[8], ratios=[1.0],
        strides=[4, 8, 16, 32]))
    data = batch(model, BOXES)
    with pytest.raises(ValueError,
                       match='has 5 levels but the anchor generator has 4'):
        distiller_masks(model, data)


def test_connector_output_channels_differ_from_the_teacher(cfg, at_iter):
    at_iter(1000)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.connectors.fpn_adapt.out_channels = 16  # the teacher has 32
    model = build(model_cfg)
    data = batch(model, BOXES)
    with pytest.raises(ValueError) as e:
        model(**data, mode='loss')
    message = str(e.value)
    assert 'model.connectors.fpn_adapt' in message
    assert '(2, 16, 16, 24)' in message and '(2, 32, 16, 24)' in message
    assert "out_channels to the teacher's channels" in message
