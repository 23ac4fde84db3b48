"""SingleTeacherDistiller: the frozen teacher, taps, connectors, loss routing
and the clear errors, on the tiny PSPNet configs."""
import copy
import math
import re

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper

from mmkd.models.distillers.frozen_teacher import renormalise_for_teacher
from mmkd.testing import demo_seg_inputs, tiny_config
from mmkd.utils.config_checks import (ConfigKeyError, ConfigValueError,
                                      describe)

HINT = 'hint_pspnet_r50_r18_tiny_shapes'


@pytest.fixture(scope='module')
def cfg():
    return tiny_config(HINT)


def build(model_cfg):
    from mmkd.registry import MODELS
    return MODELS.build(copy.deepcopy(model_cfg))


def batch(model, n=2, size=32, classes=3, seed=0, training=True):
    return model.data_preprocessor(
        demo_seg_inputs(n, size, classes, seed), training)


def test_teacher_is_frozen_and_outside_state(cfg):
    model = build(cfg.model)
    model.train()
    assert not any(m.training for m in model.teacher.modules())
    model.teacher.train()  # even asked directly
    model.teacher.decode_head.train()
    assert not any(m.training for m in model.teacher.modules())
    assert all(not p.requires_grad for p in model.teacher.parameters())
    keys = model.state_dict().keys()
    assert not any(k.startswith('teacher') for k in keys)
    assert any(k.startswith('student.') for k in keys)
    assert any(k.startswith('connectors.feat_adapt') for k in keys)
    teacher_params = {id(p) for p in model.teacher.parameters()}
    assert not teacher_params & {id(p) for p in model.parameters()}
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.1)))
    in_optim = {id(p) for g in wrapper.optimizer.param_groups
                for p in g['params']}
    assert not teacher_params & in_optim
    # the teacher follows dtype/device moves
    model.double()
    assert next(model.teacher.parameters()).dtype == torch.float64


def test_loss_dict_and_value(cfg):
    torch.manual_seed(0)
    model = build(cfg.model).train()
    data = batch(model)
    losses = model(**data, mode='loss')
    assert {'decode.loss_ce', 'aux.loss_ce', 'distill.loss_hint'} <= set(losses)
    # the hint value, recomputed by hand from the two models' bottlenecks
    with torch.no_grad():
        t_feat = model.teacher.decode_head._forward_feature(
            model.teacher.extract_feat(data['inputs']))
        s_feat = model.student.decode_head._forward_feature(
            model.student.extract_feat(data['inputs']))
        expected = F.mse_loss(model.connectors.feat_adapt(s_feat), t_feat)
    torch.testing.assert_close(losses['distill.loss_hint'].detach(), expected)


def test_distillation_losses_count_in_the_total(cfg):
    model = build(cfg.model).train()
    losses = model(**batch(model), mode='loss')
    total, log_vars = model.parse_losses(losses)
    expected = sum(v for k, v in losses.items()
                   if 'loss' in k or k.startswith('distill.'))
    assert 'decode.acc_seg' in losses  # a logged value, not a loss
    torch.testing.assert_close(total, expected)
    assert 'distill.loss_hint' in log_vars and 'loss' in log_vars


def test_gradients_reach_student_and_connector_only(cfg):
    model = build(cfg.model).train()
    losses = model(**batch(model), mode='loss')
    losses['distill.loss_hint'].backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    conv = model.connectors.feat_adapt.layers[0][0]
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    bottleneck = model.student.decode_head.bottleneck.conv.weight
    assert bottleneck.grad is not None and bottleneck.grad.abs().sum() > 0


def test_predict_runs_student_only(cfg):
    model = build(cfg.model).eval()
    data = batch(model, training=False)

    def boom(*args, **kwargs):
        raise AssertionError('the teacher ran during predict')

    model.teacher.forward = boom
    out = model(**data, mode='predict')
    ref = model.student(**data, mode='predict')
    torch.testing.assert_close(out[0].seg_logits.data,
                               ref[0].seg_logits.data)


def test_wrong_tap_path_lists_close_matches(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.student_taps = dict(feat='decode_head.bottlenek')
    with pytest.raises(ConfigKeyError) as e:
        build(model_cfg)
    assert e.value.key == 'model.student_taps.feat'
    assert "'decode_head.bottleneck'" in e.value.expected  # a close match
    assert e.value.found == "'decode_head.bottlenek'"


def test_missing_teacher_config(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.teacher = '/no/such/teacher.py'
    with pytest.raises(FileNotFoundError, match='model.teacher.*does not'):
        build(model_cfg)


def test_teacher_checkpoint_that_does_not_match(cfg, tmp_path):
    model = build(cfg.model)
    path = str(tmp_path / 'student.pth')
    # a checkpoint of the (much smaller) student is no teacher checkpoint
    torch.save(dict(state_dict=model.student.state_dict()), path)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.teacher_checkpoint = path
    with pytest.raises(ValueError, match='model.teacher_checkpoint.*poorly'):
        build(model_cfg)


def test_teacher_checkpoint_loads(cfg, tmp_path):
    model = build(cfg.model)
    path = str(tmp_path / 'teacher.pth')
    state = {k: torch.randn_like(v) if v.is_floating_point() else v
             for k, v in model.teacher.state_dict().items()}
    torch.save(dict(state_dict=state), path)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.teacher_checkpoint = path
    loaded = build(model_cfg)
    for k, v in loaded.teacher.state_dict().items():
        torch.testing.assert_close(v, state[k])


def test_connector_with_wrong_output_channels(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.connectors.feat_adapt.out_channels = 24
    model = build(model_cfg)
    with pytest.raises(ValueError, match=r'feat_adapt.*\(2, 24, .*\(2, 32, '):
        model(**batch(model), mode='loss')


def test_unregistered_loss(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.distill_losses.hint.type = 'mmkd.NoSuchLoss'
    with pytest.raises(ConfigKeyError) as e:
        build(model_cfg)
    assert e.value.key == 'model.distill_losses.hint.type'
    assert e.value.found == "'mmkd.NoSuchLoss'"


def test_loss_naming_unknown_tap(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.distill_losses.hint.teacher = 'logits'
    with pytest.raises(ConfigKeyError) as e:
        build(model_cfg)
    assert e.value.key == 'model.distill_losses.hint.teacher'
    assert e.value.found == "'logits'"


def test_inline_teacher_config(cfg):
    teacher = tiny_config('pspnet_r50_tiny_shapes_teacher').model
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.teacher = teacher
    model = build(model_cfg)
    assert model.teacher.backbone.depth == 50


def test_student_checkpoint_is_loaded_in_init_weights(cfg, tmp_path):
    donor = build(cfg.model)
    path = str(tmp_path / 'pretrained_student.pth')
    torch.save(dict(state_dict=donor.student.state_dict()), path)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.student_checkpoint = path
    model = build(model_cfg)
    model.init_weights()
    for k, v in model.student.state_dict().items():
        torch.testing.assert_close(v, donor.student.state_dict()[k])


def test_plain_student_state_dict_loads_into_the_distiller(cfg):
    """mmengine's load_from with a plain (e.g. mmseg model zoo) student."""
    donor = build(cfg.model)
    model = build(cfg.model)
    model.load_state_dict(donor.student.state_dict(), strict=False)
    for k, v in model.student.state_dict().items():
        torch.testing.assert_close(v, donor.student.state_dict()[k])


def test_teacher_from_a_package_config(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.teacher = \
        'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
    model_cfg.teacher_taps = dict(feat='decode_head.bottleneck')
    model = build(model_cfg)
    assert type(model.teacher).__name__ == 'EncoderDecoder'
    assert model.teacher.decode_head.num_classes == 19
    assert not any(m.training for m in model.teacher.modules())


def test_logits_with_different_class_counts(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.teacher = tiny_config('pspnet_r50_tiny_shapes_teacher').model
    model_cfg.teacher.decode_head.num_classes = 5
    model_cfg.student_taps = dict(logits='decode_head.conv_seg')
    model_cfg.teacher_taps = dict(logits='decode_head.conv_seg')
    model_cfg.connectors = {}
    model_cfg.distill_losses = dict(pixel=dict(
        type='mmkd.PixelWiseLoss', student='logits', teacher='logits'))
    model = build(model_cfg)
    with pytest.raises(ValueError,
                       match=r'model.distill_losses.pixel: .*3.*5'):
        model(**batch(model), mode='loss')


def test_data_preprocessor_must_match_the_students(cfg):
    """mmengine's Runner passes the top-level data_preprocessor: a crop size
    changed in the student only would silently pad every batch."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.data_preprocessor = dict(
        model_cfg.student.data_preprocessor, size=(512, 1024))
    with pytest.raises(ConfigValueError) as e:
        build(model_cfg)
    assert e.value.key == 'model.data_preprocessor'
    assert e.value.expected == 'the same as model.student.data_preprocessor'
    assert '[512, 1024]' in e.value.found and '[64, 64]' in e.value.found
    model_cfg.data_preprocessor = copy.deepcopy(
        cfg.model.student.data_preprocessor)
    assert build(model_cfg).data_preprocessor.size == (64, 64)


def test_teacher_with_another_normalisation_gets_its_own_inputs(cfg):
    """A Caffe-style teacher (BGR, other mean/std) of a PyTorch-style
    student sees the batch as its own preprocessor would have made it."""
    model_cfg = copy.deepcopy(cfg.model)
    teacher = tiny_config('pspnet_r50_tiny_shapes_teacher').model
    teacher.data_preprocessor.update(
        mean=[103.53, 116.28, 123.675], std=[1.0, 1.0, 1.0],
        bgr_to_rgb=False)
    model_cfg.teacher = teacher
    model = build(model_cfg)
    seen = []
    model.teacher.backbone.register_forward_pre_hook(
        lambda module, args: seen.append(args[0]))
    raw = dict(inputs=[torch.randint(0, 255, (3, 32, 32),
                                     dtype=torch.uint8) for _ in range(2)],
               data_samples=batch(model)['data_samples'])
    data = model.data_preprocessor(raw, True)
    model(**data, mode='loss')
    # what the teacher's own preprocessor makes of the same raw batch
    expected = model.teacher.data_preprocessor(raw, True)['inputs']
    torch.testing.assert_close(seen[0], expected, rtol=0, atol=1e-4)
    # same conventions: the batch is passed through untouched
    same = build(cfg.model)
    assert renormalise_for_teacher(
        data['inputs'], same.data_preprocessor,
        same.teacher.data_preprocessor) is data['inputs']


# ------------------------------------------- clear errors when it is built
def with_hint(cfg, **changes):
    """The hint config with ``changes`` to its loss entry."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.distill_losses.hint.update(changes)
    return model_cfg


@pytest.mark.parametrize(
    'weight', [None, '1.0', [1.0], math.nan, -1.0, math.inf, True])
def test_loss_weight_that_is_no_weight(cfg, weight):
    """None, a string or a list failed with a bare TypeError at the first
    step; NaN and negative weights were accepted."""
    with pytest.raises(ConfigValueError) as e:
        build(with_hint(cfg, loss_weight=weight))
    assert e.value.key == 'model.distill_losses.hint.loss_weight'
    assert e.value.expected == 'a finite number >= 0'
    assert e.value.found == describe(weight)


@pytest.mark.parametrize('value', [5, -0.1, None, '90%'])
def test_min_key_match_is_a_fraction(cfg, value):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.min_key_match = value
    with pytest.raises(ConfigValueError) as e:
        build(model_cfg)
    assert e.value.key == 'model.min_key_match'
    assert e.value.expected == 'a number in [0, 1]'
    assert e.value.found == describe(value)


def test_connector_with_wrong_input_channels(cfg):
    """torch's raw conv error at the first step before."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.connectors.feat_adapt.in_channels = 24
    model = build(model_cfg)
    with pytest.raises(ConfigValueError) as e:
        model(**batch(model), mode='loss')
    assert e.value.key == 'model.connectors.feat_adapt.in_channels'
    assert e.value.expected.startswith(
        "16, the channels of student tap 'feat'")
    assert e.value.found == '24'


def test_connector_arguments_are_named_by_their_key(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.connectors.feat_adapt.in_channels = None
    with pytest.raises(ConfigValueError) as e:
        build(model_cfg)
    assert e.value.key == 'model.connectors.feat_adapt.in_channels'
    assert e.value.expected == 'an int >= 1'
    assert e.value.found == 'None'
    model_cfg.connectors.feat_adapt.in_channels = 16
    model_cfg.connectors.feat_adapt.kernel_size = 2
    with pytest.raises(ConfigValueError) as e:
        build(model_cfg)
    assert e.value.key == 'model.connectors.feat_adapt.kernel_size'
    assert e.value.expected == 'an odd int (the spatial size is kept)'
    assert e.value.found == '2'


@pytest.mark.parametrize('side', ['student', 'teacher'])
def test_loss_without_a_tap(cfg, side):
    """A loss without teacher= failed at the first step with "forward()
    missing ..."."""
    model_cfg = copy.deepcopy(cfg.model)
    del model_cfg.distill_losses.hint[side]
    with pytest.raises(ConfigValueError) as e:
        build(model_cfg)
    assert e.value.key == f'model.distill_losses.hint.{side}'
    assert e.value.expected == (
        f"the name of a {side} tap, one of ['feat'] (model.{side}_taps)")
    assert e.value.found == 'nothing'


def test_routing_keys_of_the_wrong_type(cfg):
    with pytest.raises(ConfigValueError) as e:
        build(with_hint(cfg, student=['feat']))
    assert e.value.key == 'model.distill_losses.hint.student'
    assert e.value.found == "['feat'] (list)"
    with pytest.raises(ConfigValueError) as e:
        build(with_hint(cfg, extra_inputs='inputs'))
    assert e.value.key == 'model.distill_losses.hint.extra_inputs'
    assert e.value.expected.startswith('a dict')
    assert e.value.found == "'inputs' (str)"


def test_extra_inputs_the_loss_does_not_take(cfg):
    with pytest.raises(ConfigValueError) as e:
        build(with_hint(cfg, extra_inputs=dict(weight='inputs')))
    assert e.value.key == 'model.distill_losses.hint.extra_inputs.weight'
    assert 'FeatureMSELoss(student, teacher)' in e.value.expected
    assert e.value.found == "'weight'"
    # the teacher input comes from teacher=, not from extra_inputs
    with pytest.raises(ConfigValueError) as e:
        build(with_hint(cfg, extra_inputs=dict(teacher='teacher.feat')))
    assert e.value.key == 'model.distill_losses.hint.extra_inputs.teacher'


def test_loss_input_that_nothing_routes(cfg):
    with pytest.raises(ConfigValueError) as e:
        build(with_hint(cfg, type='mmkd.ImitationLoss'))
    assert e.value.key == 'model.distill_losses.hint.extra_inputs'
    assert ('ImitationLoss(student_feats, teacher_feats, masks)'
            in e.value.expected)
    assert e.value.found == "nothing for ['masks']"


def test_module_that_takes_no_student_and_teacher(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.distill_losses.hint = dict(
        type='mmkd.ConvConnector', in_channels=32, out_channels=32,
        student='feat', connector='feat_adapt', teacher='feat')
    with pytest.raises(ConfigValueError) as e:
        build(model_cfg)
    assert e.value.key == 'model.distill_losses.hint.type'
    assert e.value.expected == ('a loss whose forward takes the student tap '
                                'and the teacher tap')
    assert e.value.found.startswith('ConvConnector(x), which takes 1')


@pytest.mark.parametrize('loss_type, cls', [
    ('mmseg.CrossEntropyLoss', r'mmseg\.models\..*\.CrossEntropyLoss'),
    ('mmdet.L1Loss', r'mmdet\.models\..*\.L1Loss')])
def test_task_loss_is_refused(cfg, loss_type, cls):
    """mmseg.CrossEntropyLoss took the teacher's features as labels without
    a word."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.distill_losses.hint = dict(
        type=loss_type, student='feat', connector='feat_adapt',
        teacher='feat')
    with pytest.raises(ConfigValueError) as e:
        build(model_cfg)
    assert e.value.key == 'model.distill_losses.hint.type'
    assert e.value.expected.startswith("one of mmkd's distillation losses")
    assert re.match(f"'{loss_type}' \\(str\\), a {cls}$", e.value.found)


def test_foreign_loss_with_explicit_opt_in(cfg):
    """mmdet's MSELoss as a feature hint, declared with foreign_loss=True:
    the same value as FeatureMSELoss, and its loss_weight checked too."""
    model_cfg = copy.deepcopy(cfg.model)
    hint = dict(type='mmdet.MSELoss', loss_weight=2.0, student='feat',
                connector='feat_adapt', teacher='feat', foreign_loss=True)
    model_cfg.distill_losses.hint = hint
    torch.manual_seed(0)
    model = build(model_cfg).train()
    data = batch(model)
    losses = model(**data, mode='loss')
    with torch.no_grad():
        t_feat = model.teacher.decode_head._forward_feature(
            model.teacher.extract_feat(data['inputs']))
        s_feat = model.student.decode_head._forward_feature(
            model.student.extract_feat(data['inputs']))
        expected = 2.0 * F.mse_loss(model.connectors.feat_adapt(s_feat),
                                    t_feat)
    torch.testing.assert_close(losses['distill.loss_hint'].detach(), expected)
    model_cfg.distill_losses.hint = dict(hint, loss_weight=-2.0)
    with pytest.raises(ConfigValueError) as e:
        build(model_cfg)
    assert e.value.key == 'model.distill_losses.hint.loss_weight'
    assert e.value.expected == 'a finite number >= 0'
    assert e.value.found == '-2.0'
    model_cfg.distill_losses.hint = dict(hint, foreign_loss='yes')
    with pytest.raises(ConfigValueError) as e:
        build(model_cfg)
    assert e.value.key == 'model.distill_losses.hint.foreign_loss'
    assert e.value.expected == 'True or False'
    assert e.value.found == "'yes' (str)"


def test_holistic_term_needs_a_discriminator(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.student_taps = dict(logits='decode_head.conv_seg')
    model_cfg.teacher_taps = dict(logits='decode_head.conv_seg')
    model_cfg.connectors = {}
    model_cfg.distill_losses = dict(holistic=dict(
        type='mmkd.HolisticLoss', student='logits', teacher='logits'))
    with pytest.raises(ConfigValueError) as error:
        build(model_cfg)
    assert error.value.key == 'model.discriminator'
    assert error.value.found == 'nothing'
    assert 'model.distill_losses.holistic' in error.value.expected


def test_loss_with_an_unknown_argument(cfg):
    """An unknown argument failed with a TypeError that named no key."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.distill_losses.hint.weight = 1.0  # loss_weight is meant
    with pytest.raises(ConfigValueError) as e:
        build(model_cfg)
    assert e.value.key == 'model.distill_losses.hint'
    assert e.value.expected == 'arguments its class accepts'
    assert "unexpected keyword argument 'weight'" in e.value.found


@pytest.mark.parametrize('typo, closest', [
    ('teacher_ckpt', 'teacher_checkpoint'),
    ('student_tap', 'student_taps'),
    ('distil_losses', 'distill_losses')])
def test_a_misspelt_key_names_the_closest_keys(cfg, typo, closest):
    """mmengine's build gave a bare TypeError (unexpected keyword)."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg[typo] = 'x'
    with pytest.raises(ConfigKeyError) as error:
        build(model_cfg)
    assert error.value.key == f'model.{typo}'
    assert closest in error.value.expected
    assert error.value.found == repr(typo)


def test_an_unknown_key_with_nothing_close_lists_the_keys(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.zzz = 1
    with pytest.raises(ConfigKeyError) as error:
        build(model_cfg)
    assert error.value.expected == 'a key of mmkd.SingleTeacherDistiller'
    assert "'teacher_checkpoint'" in str(error.value)


@pytest.mark.parametrize('earlier', ['SegmentationDistiller',
                                     'CriticDistiller'])
def test_an_earlier_name_builds_the_distiller_and_warns_once(
        cfg, earlier, monkeypatch):
    from mmkd.models.distillers import earlier_names
    monkeypatch.setattr(earlier_names, '_warned', set())
    logged = []
    monkeypatch.setattr(
        earlier_names, 'print_log',
        lambda msg, logger=None, level=None: logged.append(msg))
    for _ in range(2):
        model = build(dict(cfg.model, type=f'mmkd.{earlier}'))
        assert type(model).__name__ == 'SingleTeacherDistiller'
    assert len(logged) == 1
    assert f"'mmkd.{earlier}'" in logged[0]
    assert "type='mmkd.SingleTeacherDistiller'" in logged[0]
