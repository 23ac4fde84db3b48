"""A student's stage is reused from its work dir only when it would train
the same way from the same checkpoints; a distilled student trains with its
baseline's learning-rate schedule."""
import hashlib
import json
import os
import os.path as osp
import sys

import pytest

from mmkd.testing import REPO_ROOT as REPO

sys.path.insert(0, osp.join(REPO, 'projects', 'shapes_demo'))
from shapes_demo import stages  # noqa: E402
from shapes_demo.stage_run import StageResult, scaled_schedule  # noqa: E402
from shapes_demo.study import STUDY_TASKS  # noqa: E402
from shapes_demo.tasks import TASKS  # noqa: E402

STUDY_DET_STUDENT = 'study/det/faster_rcnn_r18_fpn_shapes_student.py'


def test_scaled_schedule_hand_computed():
    """The study's detection student: a fixed 240-iteration warm-up and the
    lr × 0.1 step at three quarters, at its own 3600 iterations, at 2400
    and at a quick 12 (the warm-up then lasts at most a tenth: 1)."""
    warm, step = scaled_schedule(STUDY_DET_STUDENT, 3600)
    assert (warm['type'], warm['end']) == ('LinearLR', 240)
    assert (step['end'], step['milestones']) == (3600, [2700])
    warm, step = scaled_schedule(STUDY_DET_STUDENT, 2400)
    assert (warm['end'], step['end'], step['milestones']) == (240, 2400,
                                                              [1800])
    warm, step = scaled_schedule(STUDY_DET_STUDENT, 12)
    assert (warm['end'], step['end'], step['milestones']) == (1, 12, [9])
    # what the distilled variant's own schedule would be: the default run's
    # 40-iteration warm-up, not its baseline's 240
    warm, _ = scaled_schedule('study/det/fgfi_imitation_shapes.py', 3600)
    assert warm['end'] == 40


@pytest.mark.parametrize('tasks', [TASKS, STUDY_TASKS],
                         ids=['default', 'study'])
def test_distilled_students_take_the_baselines_schedule(tmp_path, tasks):
    from shapes_demo.plans import report_jobs, selection_jobs
    from shapes_demo.tasks import BUDGETS
    for plan in (report_jobs, selection_jobs):
        for task in tasks:
            jobs, _ = plan(task, BUDGETS['quick'], [0], str(tmp_path),
                           str(tmp_path / 'data'))
            students = [j for j in jobs if j.fn is stages.train_student]
            roles = {j.kwargs['role'] for j in students}
            assert roles == {'student'} | set(task.variants)
            for job in students:
                expected = (None if job.kwargs['role'] == 'student'
                            else task.student)
                assert job.kwargs.get('schedule_from') == expected


@pytest.fixture
def student_stage(tmp_path, monkeypatch):
    """train_student of the default segmentation student with a fake
    run_stage that counts its calls and writes a checkpoint, the generated
    data's record, a pretrained backbone and a teacher checkpoint."""
    task = TASKS[0]
    data_root = tmp_path / 'data' / 'seg'
    data_root.mkdir(parents=True)
    (tmp_path / 'data' / 'generated.json').write_text(json.dumps(
        dict(train=4, val=2, test=2)))
    monkeypatch.setenv(task.data_env, str(data_root))
    backbone = tmp_path / 'pretrain.pth'
    backbone.write_bytes(b'backbone')
    monkeypatch.setenv(task.pretrained_env, str(backbone))
    teacher = tmp_path / 'teacher.pth'
    teacher.write_bytes(b'teacher')
    calls = []

    def fake_run_stage(task, role, config, iters, seed, work_dir, **kwargs):
        calls.append(kwargs)
        checkpoint = osp.join(work_dir, f'iter_{iters}.pth')
        with open(checkpoint, 'wb') as f:
            f.write(b'student')
        return StageResult(task.name, role, seed, 50.0 + len(calls),
                           kwargs['split'], [50.0], dict(lr=0.1), 3.0,
                           work_dir, checkpoint, None, kwargs['candidate'])

    monkeypatch.setattr(stages, 'run_stage', fake_run_stage)
    monkeypatch.delenv(stages.STARTED_ENV, raising=False)
    work_dir = tmp_path / 'stage'
    work_dir.mkdir()

    def train(**changes):
        kwargs = dict(task=task, role='skd_pixel',
                      config='seg/skd_pixel_shapes.py', iters=12, seed=1000,
                      work_dir=str(work_dir), split='val',
                      teacher_checkpoint=str(teacher), lr=0.1,
                      schedule_from=task.student)
        kwargs.update(changes)
        return stages.train_student(**kwargs)

    return train, calls, backbone, teacher


def test_student_stage_reused_only_when_nothing_changed(student_stage):
    train, calls, backbone, teacher = student_stage
    result, line = train()
    assert len(calls) == 1 and line.endswith('val mIoU 51.00 (3s)')
    assert calls[0]['schedule_from'] == 'seg/pspnet_r18_shapes_student.py'
    assert calls[0]['teacher_checkpoint'] == str(teacher)
    result, line = train()
    assert len(calls) == 1 and result.metric == 51.0
    assert line == ('seg skd_pixel (seed 1000): val mIoU 51.00 '
                    '(trained earlier, reused)')
    teacher.write_bytes(b'teacher trained again')
    assert train()[0].metric == 52.0 and len(calls) == 2
    backbone.write_bytes(b'backbone trained again')
    assert train()[0].metric == 53.0 and len(calls) == 3
    for change in (dict(lr=0.05), dict(iters=24), dict(seed=1001),
                   dict(overrides={'model.distill_losses.pixel.loss_weight':
                                   1.0}),
                   dict(schedule_from=None), dict(split='test')):
        count = len(calls)
        train(**change)
        assert len(calls) == count + 1, change
    count = len(calls)
    train(split='test')  # the last one, reused
    assert len(calls) == count


def test_a_stage_written_after_the_command_started_is_not_replaced(
        student_stage, monkeypatch):
    """A finished stage whose stamp another command (or a config change)
    wrote after this command started is reused when its stamp is this
    command's, and refused, not trained again, when it is not."""
    import time
    train, calls, _, _ = student_stage
    monkeypatch.setenv(stages.STARTED_ENV, repr(time.time() - 100))
    train()
    assert train()[1].endswith('(trained earlier, reused)')
    with pytest.raises(RuntimeError, match='after this command started'):
        train(lr=0.05)
    assert len(calls) == 1
    # written before this command started: trained again, as any change
    monkeypatch.setenv(stages.STARTED_ENV, repr(time.time() + 1))
    train(lr=0.05)
    assert len(calls) == 2


def test_student_stage_line_names_a_candidates_setting(student_stage):
    train, calls, _, _ = student_stage
    _, line = train(candidate=2)
    assert line.startswith('seg skd_pixel lr 0.1 (seed 1000): val mIoU')
    assert calls[0]['candidate'] == 2


def test_report_scores_the_preconditions_teacher(tmp_path, monkeypatch):
    """The study's report scores the teacher preconditions.py trained with
    the same stamp on test instead of training it again; a run with
    another stamp is not used."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from mmkd.testing import make_shapes_dataset
    from shapes_demo.precondition_jobs import precondition_dir, run_key
    from shapes_demo.tasks import BUDGETS, CONFIGS, scenes_dir, stage_iters
    task, budget, work = STUDY_TASKS[0], BUDGETS['quick'], str(tmp_path)
    data_root = make_shapes_dataset(scenes_dir(work, task), 4, 2, 4,
                                    **task.scenes)['seg']
    iters = stage_iters(budget, 'teacher', task.teacher)
    source = precondition_dir(work, run_key(task, 'teacher', iters))
    # the teacher preconditions.py "trained": built weights, saved as a
    # checkpoint, under the stamp the report's teacher stage has
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(CONFIGS, task.teacher))
    cfg.model.backbone.init_cfg = None
    checkpoint = osp.join(source, f'iter_{iters}.pth')
    os.makedirs(source)
    torch.manual_seed(0)
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()),
               checkpoint)
    stamp = stages.stage_stamp(task, task.teacher, iters, data_root)
    with open(osp.join(source, 'stage.json'), 'w') as f:
        json.dump(dict(stamp=stamp, result=dict(checkpoint=checkpoint)), f)

    class TrainedAgain(Exception):
        pass

    def no_training(*args, **kwargs):
        raise TrainedAgain

    monkeypatch.setattr(stages, 'run_stage', no_training)
    result, line = stages.train_teacher(task, budget, work, data_root)
    assert line.startswith("seg teacher (preconditions.py's, scored): test "
                           'mIoU')
    assert result.split == 'test' and len(result.parts) == 4
    assert set(result.classes) == {'background', 'disc', 'square',
                                   'triangle', 'ring'}
    teacher = osp.join(stages.teacher_dir(work, task), 'teacher.pth')
    with open(teacher, 'rb') as a, open(checkpoint, 'rb') as b:
        assert a.read() == b.read()
    _, line = stages.train_teacher(task, budget, work, data_root)
    assert line.endswith('(trained earlier, reused)')

    # a preconditions run of another schedule is not this teacher
    stamp['iters'] = iters * 2
    with open(osp.join(source, 'stage.json'), 'w') as f:
        json.dump(dict(stamp=stamp, result=dict(checkpoint=checkpoint)), f)
    os.remove(osp.join(stages.teacher_dir(work, task), 'stage.json'))
    with pytest.raises(TrainedAgain):
        stages.train_teacher(task, budget, work, data_root)


def test_checkpoint_digests_reach_a_students_config_file(tmp_path,
                                                         monkeypatch):
    """A study variant names its student's config file: the backbone
    checkpoint that file reads counts too."""
    from mmengine.config import Config

    from shapes_demo.tasks import CONFIGS
    task = STUDY_TASKS[1]
    backbone, teacher = tmp_path / 'classifier.pth', tmp_path / 'teacher.pth'
    backbone.write_bytes(b'classifier')
    teacher.write_bytes(b'teacher')
    monkeypatch.setenv(task.pretrained_env, str(backbone))
    monkeypatch.setenv(task.teacher_env, str(teacher))
    cfg = Config.fromfile(osp.join(CONFIGS, task.variants['imitation']))
    assert isinstance(cfg.model.student, str)
    digests = stages.checkpoint_digests(cfg, str(teacher), None)
    assert digests == {
        str(backbone): hashlib.sha256(b'classifier').hexdigest(),
        str(teacher): hashlib.sha256(b'teacher').hexdigest()}


def test_an_interrupted_stage_resumes_from_its_newest_checkpoint(
        tmp_path, monkeypatch):
    """A stage stopped after 7 of 12 iterations (checkpoints every 4)
    continues from iteration 4 when started again with the same stamp, and
    starts afresh under another stamp."""
    from mmengine.hooks import IterTimerHook

    from mmkd.testing import make_shapes_dataset
    from shapes_demo import stage_run
    task = TASKS[0]
    data_root = make_shapes_dataset(str(tmp_path / 'data'), 8, 4, 2)['seg']
    monkeypatch.setattr(stage_run, 'RESUME_INTERVAL', 4)
    work_dir = str(tmp_path / 'stage')

    class Interrupted(Exception):
        pass

    original = IterTimerHook.after_train_iter

    def interrupt(self, runner, batch_idx, *args, **kwargs):
        original(self, runner, batch_idx, *args, **kwargs)
        if runner.iter + 1 == 7:
            raise Interrupted

    def stage(iters=12):  # the student's pretraining: a small model
        return stages.cached_stage(task, 'pretraining', task.pretrain,
                                   iters, work_dir, data_root, 'val')

    monkeypatch.setattr(IterTimerHook, 'after_train_iter', interrupt)
    with pytest.raises(Interrupted):
        stage()
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read().endswith('iter_4.pth')
    monkeypatch.setattr(IterTimerHook, 'after_train_iter', original)
    _, line = stage()
    assert line.endswith(', resumed)')
    assert sorted(n for n in os.listdir(work_dir) if n.startswith('iter_')
                  ) == ['iter_12.pth']  # the newest only
    assert not osp.exists(osp.join(work_dir, 'stage.partial.json'))
    logs = [osp.join(root, n) for root, _, names in os.walk(work_dir)
            for n in names if n.endswith('.log') and n != 'console.log']
    text = ''.join(open(p).read() for p in logs)
    assert 'Advance dataloader 4 steps' in text  # mmengine's resume

    # the same work dir under another stamp (other iterations) starts
    # afresh
    os.remove(osp.join(work_dir, 'stage.json'))
    with open(osp.join(work_dir, 'stage.partial.json'), 'w') as f:
        f.write('{}')  # a stage interrupted under another stamp
    _, line = stage(8)
    assert not line.endswith(', resumed)')
