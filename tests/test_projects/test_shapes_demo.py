"""The end-to-end demo in --quick mode: every stage leaves its checkpoint,
students load in plain mmseg/mmdet, the report is complete."""
import glob
import json
import os.path as osp
import subprocess
import sys

import torch
from PIL import Image

from conftest import REPO

DEMO = osp.join(REPO, 'projects', 'shapes_demo', 'run_demo.py')


def test_quick_demo_end_to_end(tmp_path):
    work = tmp_path / 'demo'
    proc = subprocess.run(
        [sys.executable, DEMO, '--quick', '--work-dir', str(work)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    # one progress line per stage
    assert proc.stdout.count('[shapes demo') == 1 + (1 + 1 + 5) + (1 + 1 + 3)

    results = json.loads((work / 'report' / 'results.json').read_text())
    runs = results['runs']
    roles = {(r['task'], r['role']) for r in runs}
    assert roles == {('seg', m) for m in ('teacher', 'student', 'pixel',
                                          'pair', 'holistic', 'all',
                                          'cwd')} | {
        ('det', m) for m in ('teacher', 'student', 'imitation', 'full', 'gt')}
    for run in runs:
        assert osp.isfile(run['checkpoint']), run
        # each stage logs its own scalars (the curves chart reads them)
        work_dir = osp.dirname(run['checkpoint'])
        scalars = glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json'))
        assert len(scalars) == 1, work_dir
        with open(scalars[0]) as f:
            keys = {k for line in f for k in json.loads(line)}
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
    assert len(results['rows']) == 7 + 5
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


def test_quick_demo_in_one_process_with_seeds(tmp_path):
    """``--jobs 1`` runs the tasks in this process; ``--seeds 2`` repeats
    the students (the teacher trains once) and the table counts the runs."""
    work = tmp_path / 'demo'
    proc = subprocess.run(
        [sys.executable, DEMO, '--quick', '--tasks', 'seg', '--jobs', '1',
         '--seeds', '2', '--work-dir', str(work)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count('[shapes demo') == 1 + 1 + 6 * 2
    results = json.loads((work / 'report' / 'results.json').read_text())
    runs = {(r['role'], r['seed']) for r in results['runs']}
    assert runs == {('teacher', 0)} | {
        (role, seed) for seed in (0, 1)
        for role in ('student', 'pixel', 'pair', 'holistic', 'all', 'cwd')}
    assert [(r['model'], r['runs']) for r in results['rows']] == [
        ('teacher', 1), ('student', 2), ('pixel', 2), ('pair', 2),
        ('holistic', 2), ('all', 2), ('cwd', 2)]
    assert (work / 'seg_pixel_seed1' / 'iter_12_student.pth').is_file()
