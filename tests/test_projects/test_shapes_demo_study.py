"""The study regime's pieces: plainer backgrounds, the presence classifier
that pretrains the students' backbones, the concentration measurement
(hand-computed cases) and the preconditions' job graph."""
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmkd.testing import REPO_ROOT as REPO
from mmkd.testing import draw_scene, make_shapes_dataset

sys.path.insert(0, osp.join(REPO, 'projects', 'shapes_demo'))
from shapes_demo.concentration import least_squares_residual  # noqa: E402
from shapes_demo.concentration import region_shares
from shapes_demo.study import STUDY_TASKS  # noqa: E402
from shapes_demo.tasks import CONFIGS, scenes_dir  # noqa: E402


def test_background_contrast_scales_only_the_background():
    full = draw_scene(np.random.default_rng(3), (64, 64))
    plain = draw_scene(np.random.default_rng(3), (64, 64),
                       background_contrast=0.25)
    # the same objects, labels and boxes: the draws do not change
    assert (full[1] == plain[1]).all() and full[2] == plain[2]
    background = full[1] == 0
    assert background.any()
    spread = [img[background].astype(float).std(axis=0).mean()
              for img in (full[0], plain[0])]
    assert spread[1] < 0.5 * spread[0]
    # the objects' surfaces are drawn as before (up to uint8 clipping)
    assert (full[0][~background] == plain[0][~background]).all()


def test_background_contrast_is_part_of_the_generated_data(tmp_path):
    a = make_shapes_dataset(str(tmp_path / 'a'), 2, 1, 1, size=(32, 32))
    b = make_shapes_dataset(str(tmp_path / 'b'), 2, 1, 1, size=(32, 32),
                            background_contrast=0.5)
    image = 'img_dir/train/00000.png'
    first = open(osp.join(a['seg'], image), 'rb').read()
    assert first != open(osp.join(b['seg'], image), 'rb').read()
    # regenerating the same folder with another contrast rewrites it
    make_shapes_dataset(str(tmp_path / 'b'), 2, 1, 1, size=(32, 32))
    assert first == open(osp.join(b['seg'], image), 'rb').read()


def test_study_scenes_have_their_own_folders(tmp_path):
    seg, det = STUDY_TASKS
    assert scenes_dir(str(tmp_path), seg) == str(tmp_path / 'data')
    # the wide detection scenes; the pool keeps the 96 x 96 ones
    assert scenes_dir(str(tmp_path), det) == str(
        tmp_path / 'data_background_contrast0.25_size96x288')
    assert scenes_dir(str(tmp_path), det, 'pool') == str(
        tmp_path / 'pool_background_contrast0.25')


def test_wide_scenes_stay_at_their_size_through_the_pipelines():
    """The detection configs' resize keeps both the default run's 96 x 96
    scenes and the study's 96 x 288 ones at their size."""
    from mmdet.datasets.transforms import Resize
    cfg = Config.fromfile(osp.join(
        CONFIGS, 'study/det/faster_rcnn_r18_fpn_shapes_student.py'))
    steps = [cfg.test_pipeline,
             cfg.train_dataloader.dataset.pipeline]
    for pipeline in steps:
        (step, ) = [s for s in pipeline if s['type'] == 'Resize']
        resize = Resize(**{k: v for k, v in step.items() if k != 'type'})
        for size in ((96, 96), (96, 288)):
            out = resize(dict(img=np.zeros(size + (3, ), np.uint8)))
            assert out['img'].shape[:2] == size
            assert out['scale_factor'] == (1.0, 1.0)


def test_least_squares_residual_of_an_affine_map_is_zero():
    g = torch.Generator().manual_seed(0)
    student = torch.randn(2, 3, 4, 5, generator=g)
    weight = torch.randn(6, 3, generator=g)
    teacher = torch.einsum('oc,nchw->nohw', weight, student) + 0.5
    valid = torch.ones(2, 4, 5, dtype=torch.bool)
    residual = least_squares_residual(student, teacher, valid)
    assert residual.shape == (2, 4, 5)
    assert residual.abs().max() < 1e-8
    # one location off the map: the fit on the others leaves it alone
    teacher[1, :, 2, 3] += 2.0
    valid[1, 2, 3] = False
    residual = least_squares_residual(student, teacher, valid)
    assert residual[valid].abs().max() < 1e-8
    assert residual[1, 2, 3] == 0  # outside valid: not counted


def test_region_shares_hand_computed():
    valid = [torch.tensor([[[True, True, True, False]]])]
    region = [torch.tensor([[[True, False, False, True]]])]
    diff = [torch.tensor([[[3.0, 1.0, 0.0, 100.0]]])]
    (row, ) = region_shares(region, valid, diff)
    # 1 of 3 valid locations, 3 of the 4 units of difference inside them
    assert row['locations'] == pytest.approx(100 / 3)
    assert row['difference'] == pytest.approx(75.0)
    assert row['concentration'] == pytest.approx(2.25)
    (everything, ) = region_shares(valid, valid, diff)
    assert everything['locations'] == everything['difference'] == 100.0
    (empty, ) = region_shares([torch.zeros_like(valid[0])], valid, diff)
    assert empty['locations'] == 0 and empty['concentration'] is None


@pytest.mark.parametrize('task', STUDY_TASKS, ids=lambda t: t.name)
def test_classifier_backbone_is_the_students(task):
    """The object classifier's ``backbone.`` weights are exactly what the
    study student's backbone loads (names and shapes), and its loss sends
    a gradient to every trainable backbone weight."""
    from mmengine.registry import MODELS, init_default_scope

    import mmkd  # noqa: F401
    import shapes_demo.classifier  # noqa: F401  (registers the classes)
    classifier_cfg = Config.fromfile(osp.join(CONFIGS, task.pretrain))
    student_cfg = Config.fromfile(osp.join(CONFIGS, task.student))
    assert student_cfg.model.backbone.init_cfg.prefix == 'backbone.'
    init_default_scope(classifier_cfg.default_scope)
    classifier = MODELS.build(classifier_cfg.model)
    student_cfg.model.backbone.init_cfg = None
    student_cfg.model.pop('init_cfg', None)
    student = MODELS.build(student_cfg.model)
    ours = {k[len('backbone.'):]: v.shape
            for k, v in classifier.state_dict().items()
            if k.startswith('backbone.')}
    theirs = {k: v.shape for k, v in student.backbone.state_dict().items()}
    assert ours == theirs
    inputs = torch.randint(0, 255, (2, 3, 48, 48), dtype=torch.uint8)
    data = classifier.data_preprocessor(
        dict(inputs=inputs, data_samples=torch.tensor([0, 3])), True)
    loss = classifier(**data, mode='loss')['loss_cls']
    loss.backward()
    assert torch.isfinite(loss)
    trained = [p for p in classifier.backbone.parameters()
               if p.requires_grad]
    assert trained and all(p.grad is not None for p in trained)


def test_object_crops_and_accuracy(tmp_path):
    """One crop per annotated object, its class the box's; the accuracy
    counts per class (hand-made predictions)."""
    import json

    from shapes_demo.classifier import ShapesObjectDataset, class_accuracy
    roots = make_shapes_dataset(str(tmp_path), 3, 1, 1, size=(48, 48))
    dataset = ShapesObjectDataset(roots['det'], 'train', size=24)
    with open(osp.join(roots['det'], 'train.json')) as f:
        annotations = json.load(f)['annotations']
    assert len(dataset) == len(annotations) > 0
    for item, ann in zip(dataset, annotations):
        assert item['inputs'].shape == (3, 24, 24)
        assert int(item['data_samples']) == ann['category_id']

    class Always:
        """Predicts class 1 for everything."""
        data_preprocessor = staticmethod(lambda data: data)

        def eval(self):
            pass

        def __call__(self, inputs, mode):
            return [torch.tensor(1)] * len(inputs)

    per_class = class_accuracy(Always(), dataset)
    labels = [a['category_id'] for a in annotations]
    for k in range(4):
        assert per_class[k] == (
            None if k not in labels else 100.0 if k == 1 else 0.0)
    with pytest.raises(FileNotFoundError, match='make_shapes_dataset'):
        ShapesObjectDataset(str(tmp_path / 'nothing'), 'train')


def test_precondition_jobs(tmp_path):
    """The teachers after their backbone's pretraining, at their schedule
    and twice it, each scored on the training scenes after it; the students
    after theirs, at their schedule and 1.5 times it, per seed."""
    from shapes_demo.precondition_jobs import student_jobs, teacher_jobs
    from shapes_demo.tasks import BUDGETS
    seg = STUDY_TASKS[0]
    budget = BUDGETS['quick']
    jobs, keys = teacher_jobs(seg, budget, str(tmp_path), '/data/seg')
    assert keys == {24: ['seg_teacher_24it'], 48: ['seg_teacher_48it']}
    assert [j.key for j in jobs] == [
        'seg_teacher_pretrain', 'seg_teacher_24it',
        'seg_teacher_24it_train_scenes', 'seg_teacher_48it',
        'seg_teacher_48it_train_scenes']
    assert jobs[0].kwargs['whose'] == 'teacher'
    assert [j.kwargs['iters'] for j in jobs[1:]] == [24, 24, 48, 48]
    for job in jobs[1:]:
        assert job.kwargs['data_root'] == '/data/seg'
        assert job.env['SHAPES_SEG_TEACHER_CLASSIFIER'] == osp.join(
            str(tmp_path), 'seg_teacher_pretrain', 'iter_12.pth')
    for run, scoring in (jobs[1:3], jobs[3:5]):
        assert run.after == ('seg_teacher_pretrain', )
        assert scoring.after == (run.key, )
        assert scoring.kwargs['run_dir'] == run.kwargs['work_dir']
        assert scoring.kwargs['work_dir'] != run.kwargs['work_dir']
    jobs, keys = student_jobs(seg, budget, [1000, 1001], str(tmp_path),
                              '/data/seg')
    assert keys == {12: ['seg_student_12it_seed1000',
                         'seg_student_12it_seed1001'],
                    18: ['seg_student_18it_seed1000',
                         'seg_student_18it_seed1001']}
    by_key = {j.key: j for j in jobs}
    assert 'seg_teacher_pretrain' not in by_key
    assert by_key['seg_pretrain'].kwargs['whose'] == 'student'
    assert by_key['seg_student_18it_seed1001'].after == ('seg_pretrain', )
    assert by_key['seg_student_18it_seed1001'].env[
        'SHAPES_SEG_CLASSIFIER'] == osp.join(str(tmp_path), 'seg_pretrain',
                                             'iter_12.pth')


def test_pretrain_seed_reaches_the_pretraining_stages(tmp_path,
                                                      monkeypatch):
    """``pretrain_seed`` trains both backbones' pretraining stages with that
    seed (their stamps hold it); the stages after them are unchanged."""
    from shapes_demo import stages
    from shapes_demo.precondition_jobs import student_jobs, teacher_jobs
    from shapes_demo.tasks import BUDGETS
    seg = STUDY_TASKS[0]
    budget = BUDGETS['quick']
    seen = []
    monkeypatch.setenv('SHAPES_POOL_DET', 'unset')  # the stage sets it
    monkeypatch.setattr(stages, 'make_shapes_dataset',
                        lambda *a, **k: {'seg': '/pool/seg', 'det': 'p'})
    monkeypatch.setattr(stages, 'cached_stage',
                        lambda *a, **k: seen.append((a[1], k['seed'])))
    for seed in (0, 7):
        jobs = (teacher_jobs(seg, budget, str(tmp_path), '/data/seg',
                             pretrain_seed=seed)[0]
                + student_jobs(seg, budget, [1000], str(tmp_path),
                               '/data/seg', pretrain_seed=seed)[0])
        for job in jobs:
            if job.fn is stages.pretrain_backbone:
                job.fn(**job.kwargs)
            else:
                assert job.kwargs.get('seed', 0) in (0, 1000)
    assert seen == [('teacher pretraining', 0), ('pretraining', 0),
                    ('teacher pretraining', 7), ('pretraining', 7)]


def test_pretrain_seed_needs_a_work_dir_of_its_own(tmp_path):
    """Another pretraining seed in a work dir whose pretraining stage has
    one would replace the backbone its cached runs started from: refused,
    naming the stage and the option to give; the same seed, or no stage
    yet, goes on."""
    import json

    from shapes_demo.precondition_jobs import check_pretrain_seed
    seg = STUDY_TASKS[0]
    work = str(tmp_path / 'study')
    check_pretrain_seed(seg, work, 3)  # nothing there yet
    stage = tmp_path / 'study' / 'seg_teacher_pretrain'
    stage.mkdir(parents=True)
    (stage / 'stage.json').write_text(json.dumps(dict(stamp=dict(iters=12))))
    check_pretrain_seed(seg, work, 0)
    with pytest.raises(SystemExit) as error:
        check_pretrain_seed(seg, work, 1)
    assert str(error.value).endswith(
        f'--work-dir of its own, e.g. {work}_pretrain1')
    assert str(stage / 'stage.json') in str(error.value)
    (stage / 'stage.json').write_text(
        json.dumps(dict(stamp=dict(iters=12, seed=1))))
    check_pretrain_seed(seg, work, 1)
    with pytest.raises(SystemExit):
        check_pretrain_seed(seg, work, 0)


@pytest.mark.parametrize('mode', ['report', 'select'])
def test_the_study_shows_no_pretraining_stage(tmp_path, mode):
    """The report and the selection show the teacher and the students, not
    the backbones' pretraining stages (the study pretrains the teacher's
    too)."""
    from shapes_demo.plans import report_jobs, selection_jobs
    from shapes_demo.tasks import BUDGETS
    plan = dict(report=report_jobs, select=selection_jobs)[mode]
    for task in STUDY_TASKS:
        jobs, shown = plan(task, BUDGETS['quick'], [0], str(tmp_path),
                           str(tmp_path / 'data'))
        pretraining = {j.key for j in jobs} - set(shown)
        assert pretraining == {f'{task.name}_pretrain',
                               f'{task.name}_teacher_pretrain'}
        assert f'{task.name}_teacher' in shown


def test_trained_models_of_the_study_and_of_the_default_run(tmp_path):
    """The diagnostic scripts' models: the study's teacher and baseline
    students are the preconditions' runs at their own schedules; the
    default run's teacher is the report's; a missing one names the command
    that trains it."""
    from shapes_demo.tasks import BUDGETS
    from shapes_demo.trained_models import MissingRun, trained_models
    work = str(tmp_path)
    quick = BUDGETS['quick']
    with pytest.raises(MissingRun) as missing:
        trained_models(work, 'det', True, quick)
    teacher = tmp_path / 'preconditions' / 'det_teacher_24it' / 'teacher.pth'
    assert missing.value.path == str(teacher)
    assert missing.value.command == (
        f'preconditions.py --tasks det --parts teachers --work-dir {work} '
        '--quick')
    teacher.parent.mkdir(parents=True)
    teacher.write_bytes(b'')
    models = trained_models(work, 'det', True, quick)
    assert models.task is STUDY_TASKS[1] and models.iters == 12
    assert models.teacher == str(teacher)
    assert models.data_root == osp.join(
        work, 'data_background_contrast0.25_size96x288', 'det')
    assert models.env == {
        'SHAPES_DET': models.data_root, 'SHAPES_DET_TEACHER': str(teacher),
        'SHAPES_DET_CLASSIFIER': osp.join(work, 'det_pretrain',
                                          'iter_12.pth'),
        'SHAPES_DET_TEACHER_CLASSIFIER': osp.join(
            work, 'det_teacher_pretrain', 'iter_12.pth')}
    student = (tmp_path / 'preconditions' / 'det_student_12it_seed1001' /
               'iter_12.pth')
    with pytest.raises(MissingRun) as missing:
        models.baseline_student(1001)
    assert (missing.value.path, missing.value.command) == (
        str(student),
        f'preconditions.py --tasks det --parts students --work-dir {work}')
    student.parent.mkdir()
    student.write_bytes(b'')
    assert models.baseline_student(1001) == str(student)

    teacher = tmp_path / 'seg_teacher' / 'teacher.pth'
    with pytest.raises(MissingRun) as missing:
        trained_models(work, 'seg', False, BUDGETS['default'])
    assert missing.value.command == (
        f'run_demo.py --tasks seg --work-dir {work}')
    teacher.parent.mkdir()
    teacher.write_bytes(b'')
    models = trained_models(work, 'seg', False, BUDGETS['default'])
    assert models.teacher == str(teacher) and models.iters == 400
    assert models.data_root == osp.join(work, 'data', 'seg')
    assert models.env['SHAPES_SEG_PRETRAINED'] == osp.join(
        work, 'seg_pretrain', 'iter_1500.pth')


def test_pass_cost_is_the_median_after_warmup(monkeypatch):
    """memory_format_costs.py's figure: the median CPU time of the passes
    after the warm-up (a clock with known steps), each pass reaching the
    parameters through its backward."""
    import memory_format_costs

    class Features(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 1)

        def extract_feat(self, inputs):
            out = self.conv(inputs)
            return out, out[..., ::2, ::2]

    # pass k takes k + 1 seconds: passes 1..5 after a warm-up of 2 take
    # 3, 4, 5 seconds, median 4
    ticks = iter([0, 1, 1, 3, 3, 6, 6, 10, 10, 15])
    monkeypatch.setattr(memory_format_costs.time, 'process_time',
                        lambda: next(ticks))
    model = Features()
    cost = memory_format_costs.pass_cost(model, torch.randn(2, 3, 4, 4),
                                         iters=5, warmup=2)
    assert cost == 4
    assert model.conv.weight.grad is not None
    assert model.conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('task', STUDY_TASKS, ids=lambda t: t.name)
def test_training_scenes_read_with_the_val_pipeline(tmp_path, monkeypatch,
                                                    task):
    """What the train-against-val gap is scored on: every training scene
    of the generated layout, through the val loader's pipeline (no
    augmentation), with an evaluator of the training split."""
    from mmengine.registry import DATASETS, init_default_scope

    from shapes_demo.tasks import train_scenes_scoring
    roots = make_shapes_dataset(str(tmp_path), 6, 2, 2, **task.scenes)
    monkeypatch.setenv(task.data_env, roots[task.name])  # the config reads it
    cfg = Config.fromfile(osp.join(CONFIGS, task.teacher))
    loader, evaluator = train_scenes_scoring(cfg)
    assert loader.dataset.pipeline == cfg.val_dataloader.dataset.pipeline
    init_default_scope('mmdet' if task.name == 'det' else 'mmseg')
    dataset = DATASETS.build(loader.dataset)
    assert len(dataset) == 6
    assert all(f'{osp.sep}train{osp.sep}' in dataset[i]['data_samples']
               .img_path for i in range(6))
    if task.name == 'det':
        assert evaluator.ann_file == osp.join(roots['det'], 'train.json')
    assert cfg.val_dataloader.dataset.data_prefix != loader.dataset.data_prefix


def test_teacher_scored_on_training_scenes_once(tmp_path, monkeypatch):
    """The teacher run's checkpoint (as its stage.json names it) is scored
    on the 'train' split in a folder of its own, and the score is reused
    while the checkpoint's bytes are the same."""
    import json
    import os

    from shapes_demo import precondition_jobs
    from shapes_demo.stage_run import StageResult
    seg = STUDY_TASKS[0]
    run_dir, work_dir = tmp_path / 'run', tmp_path / 'scored'
    run_dir.mkdir()
    checkpoint = run_dir / 'teacher.pth'
    checkpoint.write_bytes(b'weights')
    (run_dir / 'stage.json').write_text(
        json.dumps(dict(result=dict(checkpoint=str(checkpoint)))))
    calls = []

    def evaluate(task, role, config, path, out, split):
        calls.append((path, split))
        copy = osp.join(out, 'teacher.pth')
        os.makedirs(out, exist_ok=True)
        open(copy, 'wb').close()
        return StageResult('seg', role, 0, 80.0, split, [80.0] * 4, {},
                           1.0, out, copy, None, None, None)

    monkeypatch.setattr(precondition_jobs, 'evaluate_checkpoint', evaluate)
    data_root = make_shapes_dataset(str(tmp_path / 'data'), 2, 2, 2,
                                    **seg.scenes)['seg']
    args = dict(task=seg, config=seg.teacher, iters=24, run_dir=str(run_dir),
                work_dir=str(work_dir), data_root=data_root)
    result, line = precondition_jobs.scored_on_train_scenes(**args)
    assert calls == [(str(checkpoint), 'train')]
    assert result.split == 'train' and line.startswith('seg teacher: train')
    precondition_jobs.scored_on_train_scenes(**args)
    assert len(calls) == 1  # reused
    checkpoint.write_bytes(b'other weights')
    precondition_jobs.scored_on_train_scenes(**args)
    assert len(calls) == 2


def test_train_gap_hand_computed():
    """Train minus val, and the noise of that difference of two independent
    splits: the quadrature sum of each split's standard error from its
    parts (train parts 79/81/79/81: 1/sqrt(3); val 70/70/72/68:
    sqrt(2/3); together exactly 1)."""
    from types import SimpleNamespace

    from shapes_demo.tables import train_gap_rows, train_gap_table
    val = SimpleNamespace(metric=70.0, parts=[70.0, 70.0, 72.0, 68.0])
    train = SimpleNamespace(metric=80.0, parts=[79.0, 81.0, 79.0, 81.0])
    rows = train_gap_rows({24: val}, {24: train})
    assert rows == [dict(iters=24, train=80.0, val=70.0, gap=10.0,
                         noise=pytest.approx(1.0))]
    assert train_gap_table(rows).splitlines()[-1] == (
        '| 24 | 80.00 | 70.00 | +10.00 | ± 1.00 |')


def test_prepare_run_generates_the_pretraining_pool(tmp_path):
    """The pool is written before any worker starts: the student's and the
    teacher's pretraining stages of a study task would otherwise both
    write it at once (one of them failed on an existing folder)."""
    from shapes_demo.stages import generate_pool, prepare_run
    from shapes_demo.tasks import BUDGETS
    seg = STUDY_TASKS[0]
    work = str(tmp_path)
    prepare_run(work, BUDGETS['quick'], 1, [seg])
    pool = scenes_dir(work, seg, 'pool')
    stamp = osp.join(pool, 'generated.json')
    assert osp.exists(stamp)
    written = osp.getmtime(stamp)
    # the pretraining stages find it generated with their arguments
    assert generate_pool(seg, BUDGETS['quick'], work)['seg'] == osp.join(
        pool, 'seg')
    assert osp.getmtime(stamp) == written


@pytest.mark.parametrize('argv,num_train,iters,work', [
    ([], 3000, {}, 'work_dirs/shapes_demo_study'),
    (['--num-train', '750', '--student-iters', '4000'], 750,
     dict(student=4000), 'work_dirs/shapes_demo_study_train750'),
    (['--num-train', '3000', '--teacher-iters', '8000'], 3000,
     dict(teacher=8000), 'work_dirs/shapes_demo_study'),
    (['--num-train', '750', '--work-dir', 'elsewhere'], 750, {},
     'elsewhere'),
])
def test_preconditions_budget_of_its_arguments(monkeypatch, argv, num_train,
                                               iters, work):
    """``--num-train`` changes only the training scenes and gets a work dir
    of its own; ``--teacher-iters``/``--student-iters`` replace only their
    kind's schedule."""
    import preconditions
    monkeypatch.setattr(sys, 'argv', ['preconditions.py'] + argv)
    args = preconditions.parse_args()
    budget = preconditions.budget_of(args)
    assert (budget.num_train, budget.num_val, budget.num_test,
            budget.num_pool) == (num_train, 200, 1000, 3000)
    assert budget.iters == iters
    assert preconditions.work_dir_of(args) == osp.abspath(work)


@pytest.mark.parametrize('argv,message', [
    (['--num-train', '0'], '--num-train must be at least 1, got 0'),
    (['--student-iters', '-5'], '--student-iters must be at least 1'),
    (['--quick', '--num-train', '10'], '--num-train is for the study'),
])
def test_preconditions_refuses_bad_sizes(monkeypatch, capsys, argv,
                                         message):
    import preconditions
    monkeypatch.setattr(sys, 'argv', ['preconditions.py'] + argv)
    with pytest.raises(SystemExit):
        preconditions.parse_args()
    assert message in capsys.readouterr().err
