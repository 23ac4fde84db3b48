"""The study's variants serve the teacher's outputs from the views they kept
(configs/study/teacher_output_cache.py): a step whose views were all seen
computes, bit for bit, the losses of a step with the live teacher; the
default run's variants run the teacher in every step."""
import os.path as osp
import sys

import pytest
import torch

from mmkd.engine.hooks import TeacherOutputCacheHook
from mmkd.taps import tensor_leaves
from mmkd.testing import REPO_ROOT as REPO
from mmkd.testing.benchmark import build_distiller
from mmkd.testing.demo_inputs import demo_det_inputs, demo_seg_inputs
from mmkd.testing.toy_distiller import hook_runner

sys.path.insert(0, osp.join(REPO, 'projects', 'shapes_demo'))
from shapes_demo.study import STUDY_TASKS  # noqa: E402
from shapes_demo.tasks import CONFIGS, TASKS  # noqa: E402

HOOK = 'mmkd.TeacherOutputCacheHook'


def hooks_of(config):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    return [h['type'] for h in cfg.get('custom_hooks', [])]


def test_study_variants_keep_the_teachers_outputs_default_ones_do_not():
    for study, default in zip(STUDY_TASKS, TASKS):
        assert set(study.variants) == set(default.variants)
        for name in study.variants:
            assert hooks_of(study.variants[name]) == [HOOK], name
            assert HOOK not in hooks_of(default.variants[name]), name


def batch(task):
    if task == 'seg':
        return demo_seg_inputs(batch_size=3, size=96, num_classes=5)
    boxes = [[[10, 20, 40, 60]], [[100, 30, 150, 90], [5, 5, 30, 30]],
             [[200, 40, 260, 80]]]
    return demo_det_inputs(boxes, [(96, 288)] * 3, num_classes=4)


@pytest.mark.parametrize('task,variant', [('seg', 'all'),
                                          ('det', 'imitation')])
def test_a_step_served_from_kept_outputs_is_the_live_step(task, variant):
    config = next(t for t in STUDY_TASKS if t.name == task).variants[variant]
    _, live, _ = build_distiller(osp.join(CONFIGS, config))
    _, model, _ = build_distiller(osp.join(CONFIGS, config))
    hook = TeacherOutputCacheHook(max_gb=1)
    hook.before_train(hook_runner(model))
    data = live.data_preprocessor(batch(task), True)
    for step in range(2):  # the first keeps the views, the second reads
        torch.manual_seed(step)
        want = live.loss(data['inputs'], data['data_samples'])
        torch.manual_seed(step)
        got = model.loss(data['inputs'], data['data_samples'])
        assert got.keys() == want.keys()
        for key in want:  # a tensor, or a list of them per level
            pairs = zip(tensor_leaves(got[key]), tensor_leaves(want[key]))
            assert all(torch.equal(a, b) for a, b in pairs), (step, key)
    assert hook.cached.counts == dict(samples=6, hits=3, teacher_runs=1)
