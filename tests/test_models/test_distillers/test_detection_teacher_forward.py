"""A two-stage teacher whose taps end at its RPN head (FGFI's D and ID
variants: output distillation on the RPN classifier) stops there: the same
taps and losses as its whole ``_forward``, without the RPN's proposals and
the RoI head. On the tiny FGFI config, rewritten as the D and ID variants of
configs/fgfi."""
import copy
import time

import pytest
import torch
from mmengine.registry import MODELS, DefaultScope

from mmkd.testing import demo_det_inputs, tiny_config

KD = dict(type='mmkd.KDLoss', tau=2.0, use_sigmoid=True, loss_weight=1.0,
          student='rpn_cls', teacher='rpn_cls')


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(variant, **overrides):
    """``'d'``: the RPN KD term alone; ``'id'``: imitation plus RPN KD."""
    cfg = tiny_config('fgfi_faster_rcnn_r50_r18_tiny_shapes')
    model = cfg.model
    model.teacher_forward = 'tensor'
    model.student_taps.rpn_cls = 'rpn_head.rpn_cls'
    if variant == 'd':
        model.teacher_taps = dict(rpn_cls='rpn_head.rpn_cls')
        model.connectors = {}
        model.distill_losses = dict(kd=KD)
        model.loss_schedules = {}
    else:
        model.teacher_taps.rpn_cls = 'rpn_head.rpn_cls'
        model.distill_losses.kd = KD
    model.update(overrides)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return MODELS.build(model).train()


def batch():
    return demo_det_inputs([[[4, 4, 30, 30], [30, 8, 60, 40]],
                            [[10, 20, 50, 60]]], [(64, 64), (64, 48)])


def count_calls(module):
    calls = []
    module.register_forward_hook(lambda *args: calls.append(1))
    return calls


def losses(model, data):
    torch.manual_seed(0)  # the student's RPN and RoI samplers draw
    with torch.no_grad():
        return model(**copy.deepcopy(data), mode='loss')


@pytest.mark.parametrize('variant', ['d', 'id'])
def test_rpn_taps_stop_the_teacher_after_its_rpn_head(variant):
    model = build(variant)
    assert model.teacher_run.stop == 'rpn_head'
    data = model.data_preprocessor(batch(), True)
    roi = count_calls(model.teacher.roi_head.bbox_head)
    rpn = count_calls(model.teacher.rpn_head.rpn_cls)
    short = losses(model, data)
    assert roi == [] and len(rpn) == 5  # one call per FPN level
    model.teacher_run.stop = None  # today's whole _forward
    full = losses(model, data)
    assert roi == [1]
    assert short.keys() == full.keys()
    assert any(k.startswith('distill.') for k in short)
    for key in short:
        torch.testing.assert_close(short[key], full[key], rtol=0, atol=0,
                                   msg=key)


def test_teacher_time_saved():
    """Prints the teacher's time per step, whole ``_forward`` against the
    stop after the RPN head (run with ``-s`` to see it); asserts nothing
    about time."""
    model = build('d')
    data = model.data_preprocessor(batch(), True)
    timings = {}
    for stop in ('rpn_head', None, 'rpn_head', None):
        model.teacher_run.stop = stop
        inputs, samples = data['inputs'], data['data_samples']
        start = time.perf_counter()
        for _ in range(3):
            with model.teacher_taps.recording(), torch.no_grad():
                model.run_teacher(inputs, samples)
        timings[stop] = (time.perf_counter() - start) / 3
    print(f"\nteacher per step (tiny FGFI-D, CPU): whole _forward "
          f"{timings[None] * 1e3:.1f} ms, up to rpn_head "
          f"{timings['rpn_head'] * 1e3:.1f} ms")


def test_roi_taps_keep_the_whole_forward():
    model = build('d', teacher_taps=dict(
        rpn_cls='rpn_head.rpn_cls', roi_cls='roi_head.bbox_head.fc_cls'))
    assert model.teacher_run.stop is None


def test_extract_feat_still_refuses_rpn_taps():
    """The mode chosen in the config stays the contract: an RPN tap with
    ``teacher_forward='extract_feat'`` is never reached, a clear error."""
    model = build('d', teacher_forward='extract_feat')
    assert model.teacher_run.stop is None
    data = model.data_preprocessor(batch(), True)
    with pytest.raises(RuntimeError, match=r"model\.teacher_taps\.rpn_cls:.*"
                       'did not run'):
        losses(model, data)
