"""End to end through the tools: train a distillation config that inherits a
stock mmseg/mmdet config, then test its student checkpoint with the stock
test script (``mim test``), export students, resume exactly."""
import os.path as osp
import sys

import pytest
import torch

from mmkd.testing import TINY_CONFIGS as TINY
from mmkd.testing import load_plain_checkpoint as load
from mmkd.testing import load_training_checkpoint as load_full
from mmkd.testing import run_tool as run
from mmkd.testing import train_with_tool as train

SEG_HINT = osp.join(TINY, 'hint_pspnet_r50_r18_tiny_shapes.py')
DET_HINT = osp.join(TINY, 'hint_faster_rcnn_r50_r18_tiny_shapes.py')


@pytest.mark.parametrize('config,package,metric', [
    (SEG_HINT, 'mmseg', 'mIoU'),
    (DET_HINT, 'mmdet', 'coco/bbox_mAP'),
])
def test_train_then_stock_test_of_student(tiny_data, tmp_path, config,
                                          package, metric):
    work = tmp_path / 'work'
    train(config, work)
    full = work / 'iter_2.pth'
    student = work / 'iter_2_student.pth'
    student_cfg = work / 'student_config.py'
    assert full.is_file() and student.is_file() and student_cfg.is_file()
    # plain types only: loads with weights_only and no allow-list
    ckpt = load(student)
    assert not any(k.startswith(('student.', 'teacher', 'connectors'))
                   for k in ckpt['state_dict'])
    assert not any(k.startswith('teacher')
                   for k in load_full(full)['state_dict'])
    # the plain student model loads it strictly
    from mmengine.config import Config
    from mmengine.registry import MODELS
    cfg = Config.fromfile(str(student_cfg))
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.default_scope)
    plain = MODELS.build(cfg.model)
    plain.load_state_dict(ckpt['state_dict'], strict=True)
    # the stock test script of the package, through mim
    out = run([sys.executable, '-m', 'mim', 'test', package,
               str(student_cfg), '--checkpoint', str(student),
               '--work-dir', str(tmp_path / 'test')])
    assert metric in out
    assert 'missing keys' not in out and 'unexpected key' not in out


def metric(log, name):
    import re
    return float(re.findall(rf'{name}: ([\d.]+)', log)[-1])


def test_mim_train_export_and_test_give_the_same_student(tiny_data, tmp_path):
    """``mim train mmkd``; ``tools/export_student.py``; ``mim test mmkd`` on
    the distillation checkpoint and ``mim test mmseg`` on the exported
    student agree; the plain student predicts what the distiller's does."""
    work = tmp_path / 'work'
    run([sys.executable, '-m', 'mim', 'train', 'mmkd', SEG_HINT,
         '--work-dir', str(work)])
    out = tmp_path / 'export'
    run([sys.executable, 'tools/export_student.py', SEG_HINT,
         str(work / 'iter_2.pth'), '--out-dir', str(out)])
    exported = load(out / 'iter_2_student.pth')['state_dict']
    hooked = load(work / 'iter_2_student.pth')['state_dict']
    assert exported.keys() == hooked.keys()
    for key in exported:
        torch.testing.assert_close(exported[key], hooked[key])

    distill_log = run([sys.executable, '-m', 'mim', 'test', 'mmkd',
                       SEG_HINT, '--checkpoint', str(work / 'iter_2.pth'),
                       '--work-dir', str(tmp_path / 't1')])
    plain_log = run([sys.executable, '-m', 'mim', 'test', 'mmseg',
                     str(out / 'student_config.py'), '--checkpoint',
                     str(out / 'iter_2_student.pth'), '--work-dir',
                     str(tmp_path / 't2')])
    assert metric(distill_log, 'mIoU') == metric(plain_log, 'mIoU')

    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmkd.registry import MODELS
    init_default_scope('mmseg')
    distiller = MODELS.build(Config.fromfile(SEG_HINT).model).eval()
    distiller.load_state_dict(load_full(work / 'iter_2.pth')['state_dict'],
                              strict=True)
    from mmengine.registry import MODELS as ROOT
    plain = ROOT.build(Config.fromfile(str(out / 'student_config.py')).model)
    plain.load_state_dict(exported, strict=True)
    plain.eval()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(distiller(x, mode='tensor'),
                               plain(x, mode='tensor'), rtol=0, atol=0)


def test_resume_is_exact(tiny_data, tmp_path):
    """4 iterations, stop, resume for 4 more == 8 uninterrupted."""
    opts = ['--cfg-options', 'train_cfg.max_iters=8',
            'default_hooks.checkpoint.interval=4']
    straight = tmp_path / 'straight'
    train(SEG_HINT, straight, *opts)
    split = tmp_path / 'split'
    train(SEG_HINT, split, '--cfg-options', 'train_cfg.max_iters=4',
          'default_hooks.checkpoint.interval=4')
    # the resumed run is told the full schedule, as a user would
    out = train(SEG_HINT, split, '--resume', *opts)
    assert 'resumed' in out.lower()
    a = load_full(straight / 'iter_8.pth')
    b = load_full(split / 'iter_8.pth')
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key in a['state_dict']:
        torch.testing.assert_close(a['state_dict'][key], b['state_dict'][key],
                                   rtol=0, atol=0, msg=key)
    for group_a, group_b in zip(a['optimizer']['state'].values(),
                                b['optimizer']['state'].values()):
        torch.testing.assert_close(group_a['momentum_buffer'],
                                   group_b['momentum_buffer'])
