"""Mixed precision with the distillers, on CPU where torch's autocast runs
bf16: ``--amp`` (AmpOptimWrapper, one loss scaler per optimizer) and the
teacher's own precision (``teacher_precision``). The GPU check
(tools/gpu_check.sh) covers fp16 on CUDA.

mmengine 0.10.7's AmpOptimWrapper refuses to be built without an
accelerator and takes its loss scaler from ``torch.cuda.amp``; the fixture
``cpu_amp`` (tests/conftest.py) lets it build on CPU with torch's CPU
``GradScaler`` (a real scaler: losses are multiplied, gradients unscaled
before the step)."""
import copy

import pytest
import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper, build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope

from mmkd.models.losses import HolisticLoss
from mmkd.testing import demo_det_inputs, demo_seg_inputs, tiny_config
from mmkd.utils.config_checks import ConfigValueError, describe
from mmkd.engine.runner_config import prepare_config

SCALE = 1024.0


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """Tiny inputs gain nothing from intra-op threads; on a shared machine
    threads waiting for each other cost most of the time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(name, amp=False, **overrides):
    """The tiny config's distiller and its optim wrapper(s), as
    ``tools/train.py --amp`` prepares them, with bf16 autocast (CPU) and a
    static loss scale."""
    cfg = tiny_config(name)
    cfg.model.update(overrides)
    prepare_config(cfg, amp=amp)
    if amp:
        wrappers = cfg.optim_wrapper
        for w in ([wrappers[k] for k in ('student', 'discriminator')
                   if k in wrappers] if wrappers.get('constructor')
                  else [wrappers]):
            assert w.type == 'AmpOptimWrapper'
            w.update(dtype='bfloat16', loss_scale=SCALE)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model).train()
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, optim_wrapper


def record_dtype(module):
    """Record the dtype of ``module``'s outputs."""
    seen = []
    module.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    return seen


def spy_on_scaler(wrapper):
    """Record each loss the wrapper's scaler multiplies."""
    scaled, scale = [], wrapper.loss_scaler.scale

    def spy(loss):
        scaled.append(loss.detach().clone())
        return scale(loss)

    wrapper.loss_scaler.scale = spy
    return scaled


def test_skd_amp_step_each_optimizer_under_its_own_scaler(cpu_amp):
    model, optim_wrapper = build('skd_pspnet_r50_r18_tiny_shapes', amp=True)
    student, critic = optim_wrapper['student'], optim_wrapper['discriminator']
    assert isinstance(student, AmpOptimWrapper)
    assert isinstance(critic, AmpOptimWrapper)
    assert student.loss_scaler is not critic.loss_scaler
    logits = record_dtype(model.student.decode_head.conv_seg)
    scaled = {'student': spy_on_scaler(student),
              'discriminator': spy_on_scaler(critic)}
    critic_before = [p.detach().clone()
                     for p in model.discriminator.parameters()]
    log_vars = model.train_step(demo_seg_inputs(size=64), optim_wrapper)
    assert logits == [torch.bfloat16]  # the student ran under autocast
    assert all(torch.isfinite(torch.as_tensor(v)) for v in log_vars.values())
    # one scaled backward each: the student's total loss, the critic's loss
    assert len(scaled['student']) == 1 and len(scaled['discriminator']) == 1
    assert scaled['discriminator'][0].item() == pytest.approx(
        log_vars['disc.loss'])
    assert student.loss_scaler.get_scale() == SCALE
    assert any(not torch.equal(a, p) for a, p in zip(
        critic_before, model.discriminator.parameters()))


def test_gradient_penalty_and_critic_step_do_not_see_the_loss_scale(cpu_amp):
    """The same critic step (same inputs, weights and alphas) under an
    AmpOptimWrapper with loss scale 1024 and under a plain fp32 wrapper:
    same penalty, same updated weights. A penalty taken on scaled gradients
    would be ~1024² times larger."""
    model, _ = build('skd_pspnet_r50_r18_tiny_shapes')
    holistic = model.distill_losses['holistic']
    assert isinstance(holistic, HolisticLoss)
    g = torch.Generator().manual_seed(1)
    student = torch.randn(2, 3, 8, 8, generator=g)
    teacher = torch.randn(2, 3, 8, 8, generator=g)
    image = torch.randn(2, 3, 64, 64, generator=g)
    alpha = torch.tensor([0.3, 0.8])
    results = {}
    for kind in ('fp32', 'amp'):
        critic = copy.deepcopy(model.discriminator)
        optimizer = torch.optim.SGD(critic.parameters(), lr=0.1)
        wrapper = (OptimWrapper(optimizer) if kind == 'fp32' else
                   AmpOptimWrapper(loss_scale=SCALE, dtype='bfloat16',
                                   optimizer=optimizer))
        with wrapper.optim_context(critic):
            out = holistic.discriminator_loss(critic, student, teacher,
                                              image, alpha=alpha)
        wrapper.update_params(out['loss_d'])
        results[kind] = (out, [p.detach() for p in critic.parameters()])
    (fp32, fp32_params), (amp, amp_params) = results['fp32'], results['amp']
    assert amp['gradient_penalty'].item() == pytest.approx(
        fp32['gradient_penalty'].item(), rel=1e-6)
    assert amp['loss_d'].dtype == torch.float32
    for a, b in zip(amp_params, fp32_params):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_single_teacher_amp_step(cpu_amp):
    model, optim_wrapper = build('hint_pspnet_r50_r18_tiny_shapes', amp=True)
    assert isinstance(optim_wrapper, AmpOptimWrapper)
    feats = record_dtype(model.student.decode_head.conv_seg)
    teacher = record_dtype(model.teacher.decode_head.conv_seg)
    scaled = spy_on_scaler(optim_wrapper)
    before = [p.detach().clone() for p in model.connectors.parameters()]
    log_vars = model.train_step(demo_seg_inputs(size=64), optim_wrapper)
    # student and teacher ('auto') ran under the step's autocast
    assert feats == teacher == [torch.bfloat16]
    assert len(scaled) == 1 and torch.isfinite(scaled[0])
    assert all(torch.isfinite(torch.as_tensor(v)) for v in log_vars.values())
    assert any(not torch.equal(a, p)
               for a, p in zip(before, model.connectors.parameters()))


def test_teacher_precision_fp32_keeps_the_teacher_out_of_autocast(cpu_amp):
    model, optim_wrapper = build('hint_pspnet_r50_r18_tiny_shapes', amp=True,
                                 teacher_precision='fp32')
    teacher = record_dtype(model.teacher.decode_head.conv_seg)
    student = record_dtype(model.student.decode_head.conv_seg)
    model.train_step(demo_seg_inputs(size=64), optim_wrapper)
    assert teacher == [torch.float32] and student == [torch.bfloat16]


# Teacher in bf16 (8 bits of mantissa: a relative rounding of 2^-9 per
# operation) against fp32, on the random tiny teachers: the distillation
# losses stay within 2% of the fp32 ones (measured on these configs, torch
# 2.13 CPU: pixel 2e-4, pair 2e-4, hint 8e-4, imitation 2e-3 relative).
BF16_RTOL = 0.02


def seg_losses(model, precision):
    model.teacher_run.precision = precision
    data = model.data_preprocessor(demo_seg_inputs(size=64), True)
    with torch.no_grad():
        return model(**data, mode='loss')


@pytest.mark.parametrize('name', ['skd_pspnet_r50_r18_tiny_shapes',
                                  'hint_pspnet_r50_r18_tiny_shapes'])
def test_bf16_teacher_losses_close_to_fp32(name):
    model, _ = build(name)
    teacher = record_dtype(model.teacher.decode_head.conv_seg)
    fp32, bf16 = seg_losses(model, 'fp32'), seg_losses(model, 'bf16')
    assert teacher == [torch.float32, torch.bfloat16]
    terms = [k for k in fp32 if k.startswith('distill.')]
    assert terms
    for key in terms:
        assert bf16[key].dtype == torch.float32
        assert bf16[key].item() == pytest.approx(fp32[key].item(),
                                                 rel=BF16_RTOL), key
    # the student's own losses do not depend on the teacher's precision
    torch.testing.assert_close(bf16['decode.loss_ce'], fp32['decode.loss_ce'])


def test_bf16_teacher_detection_losses_close_to_fp32():
    model, _ = build('fgfi_faster_rcnn_r50_r18_tiny_shapes')
    batch = demo_det_inputs([[[4, 4, 30, 30]], [[10, 20, 50, 60]]],
                            [(64, 64), (64, 64)])
    losses = {}
    for precision in ('fp32', 'bf16'):
        model.teacher_run.precision = precision
        data = model.data_preprocessor(copy.deepcopy(batch), True)
        with torch.no_grad():
            losses[precision] = model(**data, mode='loss')
    terms = [k for k in losses['fp32'] if k.startswith('distill.')]
    assert terms
    for key in terms:
        assert losses['bf16'][key].item() == pytest.approx(
            losses['fp32'][key].item(), rel=BF16_RTOL), key


@pytest.mark.parametrize('value', ['half', None])
def test_bad_teacher_precision(value):
    with pytest.raises(ConfigValueError) as e:
        build('hint_pspnet_r50_r18_tiny_shapes', teacher_precision=value)
    assert e.value.key == 'model.teacher_precision'
    assert e.value.expected == "one of ['auto', 'fp32', 'bf16', 'fp16']"
    assert e.value.found == describe(value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('name', ['skd_pspnet_r50_r18_tiny_shapes',
                                  'hint_pspnet_r50_r18_tiny_shapes',
                                  'fgfi_faster_rcnn_r50_r18_tiny_shapes'])
def test_amp_fp16_steps_on_cuda(name):
    """``--amp`` as tools/train.py sets it (fp16, dynamic loss scale) for
    each distiller, on the GPU: finite losses, the student's weights move."""
    cfg = tiny_config(name)
    prepare_config(cfg, amp=True)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model).cuda().train()
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    data = (demo_det_inputs([[[4, 4, 30, 30]], [[10, 20, 50, 60]]],
                            [(64, 64), (64, 64)]) if 'fgfi' in name else
            demo_seg_inputs(size=64))
    before = [p.detach().clone() for p in model.student.parameters()]
    for _ in range(3):  # a dynamic scaler may skip a first step
        log_vars = model.train_step(copy.deepcopy(data), optim_wrapper)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in log_vars.values())
    assert any(not torch.equal(a, p)
               for a, p in zip(before, model.student.parameters()))
