"""The demo's protocol: seeds, grids, the paired table (hand-computed
values) and the generated splits."""
import os
import os.path as osp
import sys

import pytest
from mmengine.config import Config

from mmkd.testing import REPO_ROOT as REPO
from mmkd.testing import make_shapes_dataset
from mmkd.utils.config_checks import ConfigKeyError, ConfigValueError

sys.path.insert(0, osp.join(REPO, 'projects', 'shapes_demo'))
from shapes_demo.protocol import (best_candidate, paper_scale,  # noqa: E402
                                  report_seeds, variant_candidates,
                                  weight_grid)
from shapes_demo.report import _not_better  # noqa: E402
from shapes_demo.stage_run import (StageResult, _class_ious,  # noqa: E402
                                   stage_setting)
from shapes_demo.tables import (class_rows, class_table,  # noqa: E402
                                convergence_rows, convergence_table,
                                paired_rows, paired_table, part_noise,
                                selection_rows, selection_table, verdict)
from shapes_demo.tasks import CONFIGS, TASKS  # noqa: E402

SEG = next(t for t in TASKS if t.name == 'seg')


def _runs(role, values, parts=None, setting=None, candidate=None,
          split='test'):
    return [StageResult('seg', role, seed, value, split,
                        parts[seed] if parts else [value] * 4,
                        setting or dict(lr=0.2), 1.0, '', '',
                        candidate=candidate)
            for seed, value in enumerate(values)]


def test_paired_rows_and_table():
    results = (
        _runs('teacher', [30.0]) +
        _runs('student', [20, 22, 24],
              parts=[[20, 20, 20, 20], [22] * 4, [24] * 4]) +
        _runs('pixel', [25, 25, 28],
              parts=[[24, 26, 24, 26], [24, 26, 24, 26], [27, 29, 27, 29]],
              setting=dict(lr=0.1, pixel=3.0)) +
        _runs('pair', [21, 21, 21], setting=dict(lr=0.2, pair=0.1)) +
        _runs('cwd', [18, 20, 22], setting=dict(lr=0.2, cwd=5.0)))
    rows = {r['model']: r for r in paired_rows(results, [SEG])}
    # variants without runs are left out, the order is the task's
    assert list(rows) == ['teacher', 'student', 'pixel', 'pair', 'cwd']
    assert rows['teacher']['std'] is None and 'diffs' not in rows['teacher']
    assert rows['student']['mean'] == 22.0
    assert rows['student']['std'] == pytest.approx(2.0)  # ddof=1
    assert rows['student']['noise'] == 0.0
    pixel = rows['pixel']
    assert pixel['diffs'] == [5, 3, 4]
    assert pixel['diff_mean'] == pytest.approx(4.0)
    assert pixel['diff_std'] == pytest.approx(1.0)
    # parts differ by [4, 6, 4, 6] in every seed: std 2/sqrt(3), / sqrt(4)
    assert pixel['diff_noise'] == pytest.approx(3**-0.5)
    assert pixel['noise'] == pytest.approx(3**-0.5)
    assert pixel['verdict'] == 'better'
    # diffs 1, -1, -3: mean -1 within its std 2
    assert rows['pair']['diff_std'] == pytest.approx(2.0)
    assert rows['pair']['verdict'] == 'within noise'
    assert rows['cwd']['diffs'] == [-2, -2, -2]
    assert rows['cwd']['verdict'] == 'worse'
    table = paired_table(list(rows.values()))
    assert ('| seg | pixel | pixel 3 at lr 0.1 | mIoU | 26.00 ± 1.73 | '
            '+4.00 ± 1.00 | '
            '± 0.58 | better |') in table
    assert ('| seg | student | lr 0.2 | mIoU | 22.00 ± 2.00 |  |  |  |'
            in table)
    assert '| seg | teacher |  | mIoU | 30.00 |' in table
    assert _not_better(list(rows.values())).startswith(
        'Not better than the baseline student by more than the std of the '
        'paired differences and their evaluation noise: seg pair (within '
        'noise, -1.00), seg cwd '
        '(worse, -2.00).')
    assert _not_better([rows['student'], pixel]) == ''


def test_convergence_rows_pair_schedules_by_seed():
    """A longer schedule's difference is paired by seed: seeds 0 and 1 gain
    5 and 6 (mean 5.5, std 0.707); the eval noise is the RMS over seeds of
    std(part differences) / 2: seed 0's parts differ by 4, 6, 5, 5 (std
    sqrt(2/3)), seed 1's by 6 everywhere, so sqrt((2/3 / 4 + 0) / 2)."""
    runs = {400: _runs('student', [20, 22],
                       parts=[[20] * 4, [22] * 4]),
            1200: _runs('student', [25, 28],
                        parts=[[24, 26, 25, 25], [28] * 4])}
    reference, longer = convergence_rows(runs)
    assert reference['iters'] == 400 and reference['seeds'] == [0, 1]
    assert reference['mean'] == 21 and 'diffs' not in reference
    assert longer['diffs'] == [5, 6]
    assert longer['diff_mean'] == pytest.approx(5.5)
    assert longer['diff_std'] == pytest.approx(0.5 ** 0.5)
    assert longer['diff_noise'] == pytest.approx(((2 / 3) / 4 / 2) ** 0.5)
    assert longer['verdict'] == 'better'
    table = convergence_table([reference, longer])
    assert '| 1200 | 25.00 / 28.00 | 26.50 ± 2.12 | +5.50 ± 0.71 | ± 0.29 |' \
        ' better | 1 |' in table.splitlines()
    # a schedule whose seeds differ from the reference's cannot be paired
    runs[1200] = runs[1200][::-1]
    with pytest.raises(ValueError, match='same seeds in the same order'):
        convergence_rows(runs)


def test_pairs_only_same_seeds():
    results = (_runs('student', [20, 22]) +
               [StageResult('seg', 'pixel', 1, 25.0, 'test', [25.0] * 4,
                            dict(lr=0.2, pixel=1.0), 1.0, '', '')])
    pixel = paired_rows(results, [SEG])[-1]
    assert pixel['diff_seeds'] == [1] and pixel['diffs'] == [3.0]
    assert pixel['diff_std'] is None and pixel['verdict'] == 'one seed'


def test_class_rows_and_table():
    def run(role, seed, disc, square):
        return StageResult('seg', role, seed, 0.0, 'test', [0.0] * 4,
                           dict(lr=0.2, pixel=1.0), 1.0, '', '',
                           classes=dict(disc=disc, square=square))

    results = [run('student', 0, 40.0, 10.0), run('student', 1, 42.0, 30.0),
               run('pixel', 0, 43.0, 20.0), run('pixel', 1, 44.0, None),
               # a run without per-class IoU (an older cache) is left out
               StageResult('seg', 'cwd', 0, 1.0, 'test', [1.0] * 4,
                           dict(lr=0.2), 1.0, '', '')]
    rows = {(r['model'], r['class']): r for r in class_rows(results, [SEG])}
    # pixel's square has no IoU on seed 1: the class is left out for pixel
    assert sorted(rows) == [('pixel', 'disc'), ('student', 'disc'),
                            ('student', 'square')]
    assert rows['student', 'square']['mean'] == 20.0
    disc = rows['pixel', 'disc']
    assert disc['diffs'] == [3.0, 2.0] and disc['diff_mean'] == 2.5
    assert disc['diff_std'] == pytest.approx(0.5**0.5)
    table = class_table(list(rows.values()))
    assert table.splitlines()[0] == '| task | model | disc | square |'
    assert '| seg | student | 41.00 | 20.00 |' in table
    assert '| seg | pixel | 43.50 (+2.50 ± 0.71) |  |' in table
    assert class_table([]) == ''


def test_class_ious_are_the_metric_tables():
    import torch
    from mmseg.evaluation.metrics import IoUMetric

    metric = IoUMetric()
    metric.dataset_meta = dict(classes=('background', 'disc', 'ring'))
    scenes = [(torch.tensor([8., 1., 0.]), torch.tensor([10., 4., 0.]),
               None, None),
              (torch.tensor([6., 2., 0.]), torch.tensor([10., 4., 0.]),
               None, None)]
    # sums over scenes: 14 / 20, 3 / 8, ring absent from labels and
    # predictions
    assert _class_ious(metric, scenes) == dict(
        background=70.0, disc=37.5, ring=None)


def test_verdict_and_noise():
    assert verdict(1.0, 0.5) == 'better'
    assert verdict(0.5, 0.5) == 'within noise'
    assert verdict(-0.6, 0.5) == 'worse'
    assert verdict(2.0, None) == 'one seed'
    # the evaluation noise is a bar too: above the seeds' std, inside it
    assert verdict(1.0, 0.5, 1.2) == 'within noise'
    assert verdict(-1.3, 0.5, 1.2) == 'worse'
    assert verdict(1.0, 0.5, 0.9) == 'better'
    assert part_noise([1, 3, 1, 3]) == pytest.approx(
        (4 / 3)**0.5 / 2)


def test_report_seeds():
    assert report_seeds(0, 3) == [0, 1, 2]
    assert report_seeds(500, 2) == [500, 501]
    with pytest.raises(ConfigValueError) as e:
        report_seeds(998, 3)
    assert e.value.key == '--seed-base'
    assert e.value.expected == ('a seed base with which the 3 seeds '
                                '(--seeds) lie in 0..999')
    assert e.value.found == '998, giving the seeds 998..1000'
    assert 'never reported' in e.value.hint
    with pytest.raises(ConfigValueError) as e:
        report_seeds(-1, 1)
    assert e.value.expected == ('a seed base with which the 1 seeds '
                                '(--seeds) lie in 0..999')
    assert e.value.found == '-1, giving the seeds -1..-1'


def _variant(**kwargs):
    cfg = dict(lr_grid=[0.05, 0.1, 0.2, 0.3, 0.4, 0.5],
               distill_lr_scales=[1.0, 0.5],
               model=dict(distill_losses=dict(
                   pixel=dict(loss_weight=10.0),
                   pair=dict(loss_weight=1.0))),
               weight_grid=dict(pixel=[1.0, 3.0, 10.0],
                                pair=[0.1, 0.3, 1.0]),
               paper_loss_weights=dict(pixel=10.0, pair=1.0))
    cfg.update(kwargs)
    return Config(cfg)


def test_weight_grid():
    grid = weight_grid(_variant(), 'v.py')
    assert grid[1] == {'model.distill_losses.pixel.loss_weight': 3.0,
                       'model.distill_losses.pair.loss_weight': 0.3}
    assert len(grid) == 3
    assert paper_scale(dict(lr=0.2, pixel=3.0, pair=0.3),
                       dict(pixel=10.0, pair=1.0)) == pytest.approx(0.3)
    # 2 weights x 2 rates: 4 candidates against the baseline's 6
    with pytest.raises(ConfigValueError) as e:
        weight_grid(_variant(weight_grid=dict(pixel=[1.0, 10.0],
                                              pair=[0.1, 1.0])), 'v.py')
    assert (e.value.owner, e.value.key) == ('v.py', 'weight_grid.pixel')
    assert e.value.expected == ("6 / 2 = 3 weights (the lr_grid's 6 "
                                'candidates over the 2 distill_lr_scales)')
    assert e.value.found == '2 (4 candidates in all)'
    with pytest.raises(ConfigKeyError) as e:
        weight_grid(Config({k: v for k, v in _variant().items()
                            if k != 'distill_lr_scales'}), 'v.py')
    assert isinstance(e.value, KeyError)
    assert (e.value.owner, e.value.key) == ('v.py', 'distill_lr_scales')
    assert e.value.found == 'none'
    with pytest.raises(ConfigValueError) as e:
        weight_grid(_variant(weight_grid=dict(pixel=[1.0, 3.0, 5.0],
                                              pair=[0.1, 0.3, 1.0])), 'v.py')
    assert e.value.key == 'weight_grid.pixel'
    assert e.value.expected == ('weights that hold the published weight '
                                'paper_loss_weights.pixel = 10.0')
    assert e.value.found == '[1.0, 3.0, 5.0]'
    with pytest.raises(ConfigValueError) as e:
        weight_grid(_variant(weight_grid=dict(pixel=[1.0, 3.0, 10.0])),
                    'v.py')
    assert e.value.key == 'weight_grid'
    assert e.value.expected == ("one list of weights per distill loss "
                                "['pair', 'pixel']")
    assert e.value.found == "['pixel']"
    # different ratios: their geometric mean
    assert paper_scale(dict(pixel=3.0, pair=1.0),
                       dict(pixel=10.0, pair=1.0)) == pytest.approx(0.3**0.5)


def test_variant_candidates_cross_weights_and_rates():
    candidates = variant_candidates(_variant(), 'v.py', 0.2)
    assert len(candidates) == 6
    # the rate is the outer loop: the chosen rate's weights first
    assert [lr for _, lr in candidates] == pytest.approx(
        [0.2, 0.2, 0.2, 0.1, 0.1, 0.1])
    assert candidates[4][0] == {
        'model.distill_losses.pixel.loss_weight': 3.0,
        'model.distill_losses.pair.loss_weight': 0.3}


def test_demo_configs_hold_valid_grids():
    """Every variant's candidates (weights x rates) are as many as its
    task's learning-rate grid and hold the published weight; each config's
    weights and rate are one of its candidates."""
    for task in TASKS:
        base = Config.fromfile(osp.join(CONFIGS, task.student))
        for name in task.variants.values():
            cfg = Config.fromfile(osp.join(CONFIGS, name))
            candidates = variant_candidates(cfg, name,
                                            stage_setting(base)['lr'])
            # the baseline's budget, a grid of at least three
            assert len(candidates) == len(cfg.lr_grid) >= 3, name
            held = ({f'model.distill_losses.{k}.loss_weight': v.loss_weight
                     for k, v in cfg.model.distill_losses.items()},
                    stage_setting(cfg)['lr'])
            assert any(held[0] == o and held[1] == pytest.approx(lr)
                       for o, lr in candidates), name


def test_selection_summary():
    results = (
        _runs('student', [20, 22], setting=dict(lr=0.1), candidate=0,
              split='val') +
        _runs('student', [23, 23], setting=dict(lr=0.2), candidate=1,
              split='val') +
        _runs('pixel', [24, 22], setting=dict(lr=0.2, pixel=1.0),
              candidate=0, split='val') +
        _runs('pixel', [23, 23], setting=dict(lr=0.1, pixel=10.0),
              candidate=1, split='val'))
    # a tie goes to the first candidate
    assert best_candidate([r for r in results if r.role == 'pixel']) == 0
    rows = selection_rows(results, [SEG])
    assert [(r['model'], r['means'], r['chosen']) for r in rows] == [
        ('student', [21.0, 23.0], 1), ('pixel', [23.0, 23.0], 0)]
    table = selection_table(rows)
    assert ('| seg | student | lr 0.1: 21.00; **lr 0.2: 23.00** | lr 0.2 |'
            in table)
    assert ('| seg | pixel | **pixel 1 at lr 0.2: 23.00**; pixel 10 at lr '
            '0.1: 23.00 | pixel 1 at lr 0.2 |') in table


def test_generated_splits_do_not_depend_on_each_other(tmp_path):
    small = make_shapes_dataset(str(tmp_path / 'a'), 2, 2, 3,
                                size=(32, 32))
    large = make_shapes_dataset(str(tmp_path / 'b'), 4, 2, 3,
                                size=(32, 32))
    for split, count in (('train', 2), ('val', 2), ('test', 3)):
        for i in range(count):
            name = osp.join('img_dir', split, f'{i:05d}.png')
            with open(osp.join(small['seg'], name), 'rb') as f, \
                    open(osp.join(large['seg'], name), 'rb') as g:
                assert f.read() == g.read(), name
    # regenerated smaller: no scene left from the larger split
    make_shapes_dataset(str(tmp_path / 'b'), 2, 2, 3, size=(32, 32))
    assert len(list((tmp_path / 'b' / 'seg' / 'img_dir' /
                     'train').iterdir())) == 2


def test_object_size_is_part_of_the_generated_data(tmp_path):
    """Scenes drawn with larger objects hold more object pixels, and a
    folder generated with other object settings is regenerated."""
    import json

    import numpy as np
    from PIL import Image

    def object_share(root):
        ann = osp.join(root, 'ann_dir', 'train')
        return np.mean([np.array(Image.open(osp.join(ann, f))) > 0
                        for f in sorted(os.listdir(ann))])

    small = make_shapes_dataset(str(tmp_path / 'a'), 20, 1, 1,
                                size=(48, 48))
    share_small = object_share(small['seg'])
    large = make_shapes_dataset(str(tmp_path / 'a'), 20, 1, 1,
                                size=(48, 48), num_objects=(3, 3),
                                radius=(0.3, 0.35))
    stamp = json.loads((tmp_path / 'a' / 'generated.json').read_text())
    assert stamp['radius'] == [0.3, 0.35] and stamp['num_objects'] == [3, 3]
    assert object_share(large['seg']) > share_small + 0.1


def test_only_variants():
    from shapes_demo.tasks import only_variants
    seg, det = only_variants(TASKS, ['pixel', 'imitation'])
    assert list(seg.variants) == ['pixel'] and list(det.variants) == [
        'imitation']
    assert seg.student == SEG.student and seg.pretrain == SEG.pretrain
    assert only_variants(TASKS, ['all']) == TASKS
    # without --variants: every segmentation variant, FGFI's three regions
    seg, det = only_variants(TASKS, None)
    assert seg == SEG
    assert list(det.variants) == ['imitation', 'full', 'gt']
    assert {'d', 'id', 'fgd', 'pkd', 'mgd'} <= set(TASKS[1].variants)
    with pytest.raises(ConfigKeyError) as e:
        only_variants(TASKS, ['pixle', 'pixel'])
    assert e.value.key == '--variants'
    assert e.value.found == "unknown ['pixle']"
    assert e.value.expected == (
        "names of variants: ['all', 'cwd', 'd', 'fgd', 'full', 'gt', "
        "'holistic', 'id', 'imitation', 'mgd', 'pair', 'pixel', 'pkd']")
