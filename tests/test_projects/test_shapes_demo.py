"""The end-to-end demo in --quick mode: every stage leaves its checkpoint,
students load in plain mmseg/mmdet, the report is complete; the selection
command chooses on val and lands in the report."""
import glob
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from PIL import Image

from mmkd.testing import REPO_ROOT as REPO

DEMO = osp.join(REPO, 'projects', 'shapes_demo', 'run_demo.py')
SELECT = osp.join(REPO, 'projects', 'shapes_demo', 'select_settings.py')
DIAGNOSE = osp.join(REPO, 'projects', 'shapes_demo',
                    'diagnose_pixel_wise.py')
DIAGNOSE_PAIR = osp.join(REPO, 'projects', 'shapes_demo',
                         'diagnose_pair_wise.py')
CONVERGENCE = osp.join(REPO, 'projects', 'shapes_demo',
                       'baseline_convergence.py')


@pytest.mark.end_to_end
def test_quick_demo_end_to_end(tmp_path):
    work = tmp_path / 'demo'
    proc = subprocess.run(
        [sys.executable, DEMO, '--quick', '--variants', 'all', '--work-dir',
         str(work)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    # one progress line per stage
    # data, then per task its pretraining, teacher and students (seg 6, det
    # 9: every variant, the default run's and the others)
    assert proc.stdout.count('[shapes demo') == 1 + (2 + 1 + 5) + (2 + 1 + 8)

    results = json.loads((work / 'report' / 'results.json').read_text())
    runs = results['runs']
    roles = {(r['task'], r['role']) for r in runs}
    assert roles == {('seg', m) for m in ('teacher', 'student', 'pixel',
                                          'pair', 'holistic', 'all',
                                          'cwd')} | {
        ('det', m) for m in ('teacher', 'student', 'imitation', 'full', 'gt',
                             'd', 'id', 'fgd', 'pkd', 'mgd')}
    for run in runs:
        assert run['split'] == 'test' and run['seed'] == 0, run
        assert len(run['parts']) == 4, run
        assert osp.isfile(run['checkpoint']), run
        if run['task'] == 'seg':
            # per-class IoU: the classes of the metric's own mIoU
            ious = [v for v in run['classes'].values() if v is not None]
            assert list(run['classes']) == [
                'background', 'disc', 'square', 'triangle', 'ring'], run
            assert sum(ious) / len(ious) == pytest.approx(
                run['metric'], abs=0.01), run
        else:
            assert run['classes'] is None, run
        # each stage logs its own scalars (the curves chart reads them)
        work_dir = osp.dirname(run['checkpoint'])
        scalars = glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json'))
        assert len(scalars) == 1, work_dir
        with open(scalars[0]) as f:
            keys = {k for line in f for k in json.loads(line)}
        if run['task'] == 'seg' and run['role'] != 'teacher':
            # seg students start from the pretraining stage's backbone
            # and decode head
            log = glob.glob(osp.join(work_dir, '*', '*.log'))[0]
            with open(log) as f:
                text = f.read()
            for part in ('backbone.', 'decode_head.'):
                assert (f'load {part} in model from: ' +
                        str(work / 'seg_pretrain' / 'iter_12.pth')) in text
        if run['task'] == 'det' and run['role'] != 'teacher':
            # det students start from the whole pretrained network
            log = glob.glob(osp.join(work_dir, '*', '*.log'))[0]
            with open(log) as f:
                assert 'load model from: ' + str(
                    work / 'det_pretrain' / 'iter_12.pth') in f.read()
        if run['role'] not in ('teacher', 'student'):
            assert osp.isfile(run['student_checkpoint']), run
            assert any(k.startswith('distill.') for k in keys), keys
        else:
            assert not any(k.startswith('distill.') for k in keys), keys

    # distilled students load, strictly, in the plain packages
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    for task in ('seg', 'det'):
        run = next(r for r in runs if r['task'] == task
                   and r['student_checkpoint'])
        cfg = Config.fromfile(osp.join(osp.dirname(run['checkpoint']),
                                       'student_config.py'))
        init_default_scope(cfg.default_scope)
        model = MODELS.build(cfg.model)
        state = torch.load(run['student_checkpoint'], weights_only=True)
        model.load_state_dict(state['state_dict'], strict=True)

    table = (work / 'report' / 'results.md').read_text()
    for row in results['rows']:
        assert f"| {row['task']} | {row['model']} |" in table
    assert len(results['rows']) == 7 + 10
    # per class: every seg model, a paired difference for each variant
    class_rows = results['class_rows']
    assert {r['model'] for r in class_rows} == {
        'teacher', 'student', 'pixel', 'pair', 'holistic', 'all', 'cwd'}
    assert {r['model'] for r in class_rows if 'diff_mean' in r} == {
        'pixel', 'pair', 'holistic', 'all', 'cwd'}
    assert '| task | model | background | disc |' in table
    pngs = ['metric_per_variant.png', 'distill_curves.png',
            'predictions_seg.png', 'predictions_det.png',
            'imitation_masks.png']
    for name in pngs:
        with Image.open(work / 'report' / name) as image:
            image.verify()
        with Image.open(work / 'report' / name) as image:
            assert image.size[0] > 200 and image.size[1] > 150
        assert f'({name})' in table
    assert len(list((work / 'report' / 'logs').glob('*.log'))) == len(runs)


@pytest.mark.end_to_end
def test_quick_selection_then_report_with_seed_base(tmp_path):
    """``select_settings.py`` trains the baseline's lr grid and a variant's
    weight grid with the selection seeds on val and writes the selection;
    ``run_demo.py --jobs 1 --seeds 2 --seed-base 7`` in the same work dir
    (the baseline and two variants: every variant's report is the quick
    demo's test) reuses the teacher, repeats the students with seeds 7 and
    8 on test and puts the selection in its report."""
    work = tmp_path / 'demo'
    proc = subprocess.run(
        [sys.executable, SELECT, '--quick', '--tasks', 'seg', '--jobs', '1',
         '--variants', 'pixel', '--work-dir', str(work)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count('[shapes demo') == 1 + 2 + 6 + 6
    selection = json.loads((work / 'report' / 'selection.json').read_text())
    assert selection['seeds'] == {'seg': [1000]}  # per task
    runs = {(r['role'], r['candidate'], r['seed'], r['split'])
            for r in selection['runs'] if r['role'] != 'teacher'}
    assert runs == {(role, c, 1000, 'val') for role in ('student', 'pixel')
                    for c in range(6)}
    lrs = [r['setting']['lr'] for r in selection['runs']
           if r['role'] == 'student']
    assert lrs == [0.05, 0.075, 0.1, 0.15, 0.2, 0.3]
    # the variant trains each weight of its grid at the chosen lr and at
    # half of it
    chosen_lr = selection['rows'][0]['settings'][
        selection['rows'][0]['chosen']]['lr']
    tried = [(r['setting']['lr'], r['setting']['pixel'])
             for r in selection['runs'] if r['role'] == 'pixel']
    expected = [(chosen_lr * scale, w) for scale in (1.0, 0.5)
                for w in (0.5, 2.0, 10.0)]
    # numbers, not nested structures, go to approx (pytest >= 9.1 refuses
    # a list of tuples)
    assert [lr for lr, _ in tried] == pytest.approx(
        [lr for lr, _ in expected])
    assert [w for _, w in tried] == [w for _, w in expected]
    with Image.open(work / 'report' / 'weight_selection.png') as image:
        image.verify()

    proc = subprocess.run(
        [sys.executable, DEMO, '--quick', '--tasks', 'seg', '--jobs', '1',
         '--seeds', '2', '--seed-base', '7', '--variants', 'pixel', 'pair',
         '--work-dir', str(work)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count('[shapes demo') == 1 + 2 + 3 * 2
    # the pretraining stage and the teacher are reused
    assert proc.stdout.count('(trained earlier, reused)') == 2
    results = json.loads((work / 'report' / 'results.json').read_text())
    runs = {(r['role'], r['seed']) for r in results['runs']}
    assert runs == {('teacher', 0)} | {
        (role, seed) for seed in (7, 8)
        for role in ('student', 'pixel', 'pair')}
    rows = results['rows']
    assert [(r['model'], r['seeds']) for r in rows] == [
        ('teacher', [0])] + [(m, [7, 8]) for m in ('student', 'pixel',
                                                  'pair')]
    for row in rows[2:]:
        assert row['diff_seeds'] == [7, 8] and len(row['diffs']) == 2
    assert (work / 'seg_pixel_seed8' / 'iter_12_student.pth').is_file()
    report = (work / 'report' / 'results.md').read_text()
    assert '## How the settings were chosen' in report
    assert '(weight_selection.png)' in report

    # the pixel-wise gradient diagnostic runs on the report's baseline
    proc = subprocess.run(
        [sys.executable, DIAGNOSE, '--work-dir', str(work), '--batches', '2',
         '--quick'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    table = [line.split('|')[1:-1] for line in proc.stdout.splitlines()
             if line.startswith('| ') and line[2].isdigit()]
    assert len(table) == 2
    for row in table:
        ratio, cos_teacher, cos_oracle = (float(v) for v in row[4:])
        assert ratio > 0 and -1 <= cos_teacher <= 1 and -1 <= cos_oracle <= 1

    # the pair-wise graph diagnostic reads the report's students of each seed
    proc = subprocess.run(
        [sys.executable, DIAGNOSE_PAIR, '--work-dir', str(work), '--roles',
         'student', 'pair', '--batches', '1'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    header = next(line for line in proc.stdout.splitlines()
                  if line.startswith('| classes |'))
    assert header.split('|')[3:-1] == [
        ' teacher ', ' student s7 ', ' student s8 ', ' pair s7 ',
        ' pair s8 ']
    edges = [line for line in proc.stdout.splitlines()
             if line.startswith('| background-background |')]
    assert len(edges) == 1
    cosines = [float(v) for v in edges[0].split('|')[3:-1]]
    assert all(-1 <= c <= 1 for c in cosines), edges

    # the convergence check trains the baseline for two schedule lengths
    # with the selection seed on val, reusing the teacher and pretraining
    proc = subprocess.run(
        [sys.executable, CONVERGENCE, '--quick', '--tasks', 'seg', '--jobs',
         '1', '--iters', '12', '24', '--work-dir', str(work)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count('(trained earlier, reused)') == 2
    out = json.loads((work / 'report' / 'convergence.json').read_text())
    rows = out['tasks']['seg']['rows']
    assert [(r['iters'], r['seeds']) for r in rows] == [
        (12, [1000]), (24, [1000])]
    assert rows[1]['diffs'] == pytest.approx(
        [rows[1]['values'][0] - rows[0]['values'][0]])
    for iters in (12, 24):
        assert (work / 'convergence' / f'seg_student_{iters}it_seed1000' /
                f'iter_{iters}.pth').is_file()


def test_report_seeds_exclude_selection_seeds():
    proc = subprocess.run(
        [sys.executable, DEMO, '--quick', '--seed-base', '999', '--seeds',
         '2'], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert 'never reported' in proc.stderr
