"""TeacherOutputCacheHook: each view runs the teacher once; the taps of a
batch hold, per sample, what the teacher output for that view (known by
hand: the toy teacher outputs 0.5·inputs per level); new content is never
served kept outputs; memory is bounded; the step's losses are those of the
live teacher."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel

from mmkd.engine.hooks import TeacherOutputCacheHook
from mmkd.models.distillers import TeacherRun
from mmkd.models.distillers.teacher_output_cache import (CachedTeacherRun,
                                                         view_key)
from mmkd.taps import FeatureTaps
from mmkd.testing.toy_distiller import hook_runner, toy_distiller
from mmkd.utils.config_checks import ConfigValueError

K = 0.5  # the toy teacher's scale: its tap holds 0.5 · inputs per level


def images(*values):
    """A batch ``(N, 2, 4, 4)``: sample i is a ramp plus ``values[i]``."""
    ramp = torch.arange(32, dtype=torch.float32).reshape(2, 4, 4)
    return torch.stack([ramp + v for v in values])


def expected(x, levels=2):
    """The toy teacher's tap, per level: ``K · x`` subsampled by 2^level."""
    return [K * x[..., ::2**i, ::2**i] for i in range(levels)]


def distiller_with_counter(levels=2):
    model = toy_distiller({'mse': 1.0}, teacher_scale=K, levels=levels)
    ran = []
    model.teacher.register_forward_hook(
        lambda module, args, out: ran.append(len(args[0])))
    return model, ran


def served(model, cached, x, samples=None):
    """The teacher tap ``feat`` (per call) after the cached run on ``x``."""
    with model.teacher_taps.recording():
        cached(x, samples, model.data_preprocessor)
        return [t.clone() for t in model.teacher_taps.outputs('feat')]


def test_each_view_runs_the_teacher_once_and_taps_hold_its_outputs():
    model, ran = distiller_with_counter()
    cached = CachedTeacherRun(model.teacher_run, model.teacher_taps, 2**30)
    a = images(0, 100)
    for out, want in zip(served(model, cached, a), expected(a)):
        assert torch.equal(out, want)
    assert ran == [2]
    # one view seen, one new: the teacher runs on the new one alone
    b = images(100, 7)
    for out, want in zip(served(model, cached, b), expected(b)):
        assert torch.equal(out, want)
    assert ran == [2, 1]
    # all seen, in another order: the teacher does not run
    c = images(7, 0, 100)
    for out, want in zip(served(model, cached, c), expected(c)):
        assert torch.equal(out, want)
    assert ran == [2, 1]
    assert cached.counts == dict(samples=7, hits=4, teacher_runs=2)
    assert len(cached.kept) == 3
    # 2 levels of 2 channels: 4·4 + 2·2 elements of 4 bytes per view
    assert cached.kept_bytes == 3 * (2 * 16 + 2 * 4) * 4


def test_a_view_repeated_in_one_batch_runs_the_teacher_once():
    model, ran = distiller_with_counter()
    cached = CachedTeacherRun(model.teacher_run, model.teacher_taps, 2**30)
    x = images(3, 5, 3)
    for out, want in zip(served(model, cached, x), expected(x)):
        assert torch.equal(out, want)
    assert ran == [2]


def test_other_content_or_meta_information_is_another_view():
    model, ran = distiller_with_counter()
    cached = CachedTeacherRun(model.teacher_run, model.teacher_taps, 2**30)
    meta = [SimpleNamespace(metainfo=dict(img_path='a.png', flip=False))]
    served(model, cached, images(0), meta)
    # the same file name and flip with another image (a random pipeline)
    changed = images(0)
    changed[0, 1, 2, 3] += 1e-3
    out = served(model, cached, changed, meta)
    assert torch.equal(out[0], expected(changed)[0])
    # the same image with another flip flag
    flipped = [SimpleNamespace(metainfo=dict(img_path='a.png', flip=True))]
    served(model, cached, images(0), flipped)
    assert ran == [1, 1, 1]
    assert cached.counts['hits'] == 0
    assert view_key(images(0)[0], meta[0]) == view_key(images(0)[0],
                                                       meta[0])


def test_view_keys_read_every_byte_of_images_and_meta_information():
    big = np.zeros((40, 40))
    changed = big.copy()
    changed[20, 20] = 1  # in the middle numpy's repr elides
    assert repr(big) == repr(changed)
    keys = {view_key(images(0)[0], SimpleNamespace(metainfo=meta))
            for meta in (dict(m=big), dict(m=changed), dict(m=[big]),
                         dict(m=torch.from_numpy(big)),
                         dict(m=np.array([big, 'x'], dtype=object)),
                         dict(m=np.array([changed, 'x'], dtype=object)))}
    assert len(keys) == 6
    image = images(0)[0]
    assert view_key(image, None) != view_key(image.to(torch.bfloat16), None)
    assert view_key(image, None) == view_key(image.clone(), None)
    assert view_key(image, None) != view_key(image.reshape(4, 4, 2), None)


def captured_log(monkeypatch, module):
    """The messages ``module`` logs through ``print_log``, kept."""
    logged = []
    monkeypatch.setattr(f'{module}.print_log',
                        lambda msg, **kwargs: logged.append(msg))
    return logged


def test_no_view_is_kept_beyond_max_bytes(monkeypatch):
    logged = captured_log(monkeypatch,
                          'mmkd.models.distillers.teacher_output_cache')
    model, ran = distiller_with_counter()
    one_view = (2 * 16 + 2 * 4) * 4
    cached = CachedTeacherRun(model.teacher_run, model.teacher_taps,
                              one_view)
    x = images(0, 1)
    for out, want in zip(served(model, cached, x), expected(x)):
        assert torch.equal(out, want)
    served(model, cached, images(0, 1))
    assert ran == [2, 1]  # the second view runs the teacher every time
    assert len(cached.kept) == 1 and cached.full
    assert len(logged) == 1 and '1 views kept' in logged[0]


def test_the_steps_losses_and_gradients_are_the_live_teachers():
    live, _ = distiller_with_counter()
    model, ran = distiller_with_counter()
    model.load_state_dict(live.state_dict())
    model.teacher_run = CachedTeacherRun(model.teacher_run,
                                         model.teacher_taps, 2**30)
    for x in (images(0, 1), images(1, 2), images(2, 0)):
        want = live.loss(x, None)
        got = model.loss(x, None)
        assert got.keys() == want.keys()
        for key in want:
            assert torch.equal(got[key], want[key]), key
        grads = torch.autograd.grad(got['distill.loss_mse'],
                                    model.student.feat.weight)
        wants = torch.autograd.grad(want['distill.loss_mse'],
                                    live.student.feat.weight)
        assert torch.equal(grads[0], wants[0])
    assert ran == [2, 1]


class Summed(nn.Module):
    """A module whose output has no batch dimension."""

    def forward(self, x):
        return x.sum()


class BatchlessTap(BaseModel):
    """A model whose module ``feat`` outputs a scalar (no batch dim)."""

    def __init__(self):
        super().__init__()
        self.feat = Summed()

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.feat(inputs)


def test_an_output_without_batch_dimension_is_refused():
    teacher = BatchlessTap()
    taps = FeatureTaps(teacher, dict(feat='feat'), 'model.teacher_taps')
    run = TeacherRun(teacher, 'tensor', 'auto', ['feat'])
    cached = CachedTeacherRun(run, taps, 2**30)
    with taps.recording(), pytest.raises(
            RuntimeError, match='feat: a tensor of shape \\(\\) .*'
            'TeacherOutputCacheHook'):
        cached(images(0, 1), None, nn.Identity())


def test_hook_wraps_for_training_and_gives_the_live_run_back(monkeypatch):
    logged = captured_log(monkeypatch,
                          'mmkd.engine.hooks.teacher_output_cache_hook')
    model, ran = distiller_with_counter()
    live_run = model.teacher_run
    hook = TeacherOutputCacheHook(max_gb=1, interval=2)
    runner = hook_runner(model)
    hook.before_train(runner)
    assert isinstance(model.teacher_run, CachedTeacherRun)
    assert model.teacher_forward == 'tensor'  # read through the wrapper
    for it in range(3):
        runner.iter = it
        model.loss(images(0, 1), None)
        hook.after_train_iter(runner, it)
    assert ran == [2]
    assert logged == ['Teacher output cache: 2 of 4 samples (50.0 %) '
                      'served from kept outputs, 1 batches ran the '
                      'teacher; 2 views kept (0.0 MiB).']
    hook.after_train(runner)
    assert model.teacher_run is live_run
    assert logged[-1].startswith('Teacher output cache: 4 of 6 samples')


def test_hook_refuses_a_model_that_is_no_distiller_and_bad_arguments():
    with pytest.raises(ConfigValueError, match='TeacherOutputCacheHook'):
        TeacherOutputCacheHook().before_train(hook_runner(BatchlessTap()))
    with pytest.raises(ConfigValueError, match='max_gb'):
        TeacherOutputCacheHook(max_gb=0)
    with pytest.raises(ConfigValueError, match='interval'):
        TeacherOutputCacheHook(interval=0)
