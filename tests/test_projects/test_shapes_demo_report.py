"""The demo's results table: mean ± sample std over seeds, gain over the
baseline student's mean (hand-computed values)."""
import os.path as osp
import sys

import pytest

from conftest import REPO

sys.path.insert(0, osp.join(REPO, 'projects', 'shapes_demo'))
from shapes_demo.report import _not_better, _summary, _table  # noqa: E402
from shapes_demo.stages import TASKS, StageResult  # noqa: E402


def _runs(role, values):
    return [StageResult('seg', role, seed, value, 1.0, '', '')
            for seed, value in enumerate(values)]


def test_summary_over_seeds():
    seg = next(t for t in TASKS if t.name == 'seg')
    results = (_runs('teacher', [30.0]) + _runs('student', [20, 22, 24]) +
               _runs('pixel', [25, 25, 28]) + _runs('pair', [21, 21, 21]))
    rows = {r['model']: r for r in _summary(results, [seg])}
    # variants without runs are left out, the order is the task's
    assert list(rows) == ['teacher', 'student', 'pixel', 'pair']
    assert rows['teacher']['std'] == 0.0 and rows['teacher']['gain'] is None
    assert rows['student']['mean'] == 22.0
    assert rows['student']['std'] == pytest.approx(2.0)  # ddof=1
    assert rows['pixel']['mean'] == 26.0
    assert rows['pixel']['std'] == pytest.approx(3**0.5)
    assert rows['pixel']['gain'] == pytest.approx(4.0)
    assert rows['pair']['gain'] == pytest.approx(-1.0)
    table = _table(list(rows.values()))
    assert '| seg | pixel | mIoU | 26.00 ± 1.73 | 3 | +4.00 |' in table
    assert '| seg | pair | mIoU | 21.00 ± 0.00 | 3 | -1.00 |' in table
    # the report names the variants that do not beat the baseline
    assert _not_better(list(rows.values())).startswith(
        'Not better than the baseline student: seg pair (-1.00).')
    assert _not_better([rows['pixel']]) == ''
