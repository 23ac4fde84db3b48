"""Two processes with ``--launcher pytorch`` on CPU (gloo): both ranks end
with identical parameters; a holistic SKD run (critic, connector) on 2 ranks
with batch b each equals one process with batch 2b."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

from mmkd.testing import REPO_ROOT as REPO
from mmkd.testing import TINY_CONFIGS as TINY

# torchrun with two ranks: long; -m "not end_to_end" leaves it out
pytestmark = pytest.mark.end_to_end


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_train(config, work_dir, *args, ranks=2):
    """``tools/train.py`` on ``ranks`` processes (torchrun, gloo), or in one
    plain process for ``ranks=1``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [osp.join(REPO, 'tests', 'data'), os.environ.get('PYTHONPATH', '')]),
        OMP_NUM_THREADS='1')
    launch = ([sys.executable, '-m', 'torch.distributed.run',
               '--nproc_per_node', str(ranks), '--master_port',
               str(free_port()), 'tools/train.py']
              if ranks > 1 else [sys.executable, 'tools/train.py'])
    extra = ['--launcher', 'pytorch'] if ranks > 1 else []
    proc = subprocess.run(
        launch + [str(config), *extra, '--work-dir', str(work_dir), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]


def rank_params(work_dir, rank):
    return torch.load(osp.join(work_dir, f'rank{rank}_params.pth'),
                      weights_only=True)


def test_two_ranks_end_identical(tiny_data, tmp_path):
    config = tmp_path / 'dist_hint.py'
    config.write_text(
        f"_base_ = '{osp.join(TINY, 'hint_pspnet_r50_r18_tiny_shapes.py')}'\n"
        "custom_imports = dict(imports=['rank_weights_hook'])\n"
        "custom_hooks = [dict(type='RankWeightsHook')]\n"
        "train_cfg = dict(max_iters=3)\n")
    run_train(config, tmp_path / 'work')
    rank0 = torch.load(tmp_path / 'work' / 'rank0_student.pth',
                       weights_only=True)
    rank1 = torch.load(tmp_path / 'work' / 'rank1_student.pth',
                       weights_only=True)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], msg=key)
    # rank 0 wrote the student checkpoint, with those weights
    saved = torch.load(tmp_path / 'work' / 'iter_3_student.pth',
                       weights_only=True)['state_dict']
    for key in rank0:
        torch.testing.assert_close(saved[key], rank0[key], msg=key)


# The tiny SKD config (pixel, pair and holistic terms) without batch
# statistics: GroupNorm in the student (BatchNorm would normalise over b or
# 2b samples), the teacher's BatchNorm in eval mode, a critic without norm
# layers. A learnable connector on the pair-wise term. mmengine's samplers
# deal the shuffled samples to the ranks in turn, so iteration i of 2 ranks
# with batch b sees the same 2b samples as one process with batch 2b.
SKD_DDP = """_base_ = '{base}'
gn = dict(type='GN', num_groups=4, requires_grad=True)
model = dict(
    student=dict(backbone=dict(norm_cfg=gn), decode_head=dict(norm_cfg=gn),
                 auxiliary_head=dict(norm_cfg=gn)),
    teacher_checkpoint='{teacher}',
    connectors=dict(feat=dict(type='mmkd.ConvConnector', in_channels=16,
                              out_channels=32, init_std=0.1)),
    distill_losses=dict(pair=dict(connector='feat')))
data_preprocessor = dict(size=(64, 64))
custom_imports = dict(imports=['rank_weights_hook'])
custom_hooks = [dict(type='RankWeightsHook')]
train_cfg = dict(max_iters=2)
train_dataloader = dict(batch_size=2, sampler=dict(seed=0))
load_from = '{start}'
"""


@pytest.fixture(scope='module')
def skd_runs(tiny_data, tmp_path_factory):
    """The same start (student, connector, critic from ``load_from``, the
    teacher from its checkpoint: a random model would differ per process)
    trained 2 iterations on 2 ranks with batch 2 and in one process with
    batch 4. No ``model_wrapper_cfg``: tools/train.py chooses it."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope
    root = tmp_path_factory.mktemp('skd_ddp')
    config = root / 'skd_ddp.py'
    config.write_text(SKD_DDP.format(
        base=osp.join(TINY, 'skd_pspnet_r50_r18_tiny_shapes.py'),
        teacher=root / 'teacher.pth', start=root / 'start.pth'))
    cfg = Config.fromfile(str(config), import_custom_modules=False)
    assert 'model_wrapper_cfg' not in cfg
    cfg.model.teacher_checkpoint = None
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict()}, root / 'start.pth')
    torch.save({'state_dict': model.teacher.state_dict()},
               root / 'teacher.pth')
    run_train(config, root / 'two', ranks=2)
    run_train(config, root / 'one', '--cfg-options',
              'train_dataloader.batch_size=4', ranks=1)
    return root


def test_holistic_ranks_end_identical(skd_runs):
    rank0 = rank_params(skd_runs / 'two', 0)
    rank1 = rank_params(skd_runs / 'two', 1)
    assert rank0.keys() == rank1.keys()
    parts = {key.split('.')[0] for key in rank0}
    assert parts == {'student', 'connectors', 'discriminator'}
    start = torch.load(skd_runs / 'start.pth',
                       weights_only=True)['state_dict']
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0,
                                   msg=key)
    # every part trained (the critic under its own optimizer)
    for part in parts:
        assert any(not torch.equal(rank0[k], start[k])
                   for k in rank0 if k.startswith(part + '.')), part


def test_two_ranks_equal_one_process_with_both_batches(skd_runs):
    """Per iteration, the mean over the ranks of each logged loss (each a
    mean over its b samples) equals the one-process value over the 2b
    samples, gradient penalty included (its interpolation weights are drawn
    for the global batch); the parameters end equal."""
    logs = [json.loads((skd_runs / 'two' / f'rank{r}_log.json').read_text())
            for r in (0, 1)]
    single = json.loads((skd_runs / 'one' / 'rank0_log.json').read_text())
    assert len(single) == len(logs[0]) == len(logs[1]) == 2
    keys = [k for k in single[0] if 'loss' in k or k.startswith(
        ('distill.', 'disc.'))]
    assert {'distill.loss_holistic', 'disc.gradient_penalty',
            'disc.wasserstein', 'distill.loss_pair'} <= set(keys)
    for it in range(2):
        for key in keys:
            mean = (logs[0][it][key] + logs[1][it][key]) / 2
            assert mean == pytest.approx(single[it][key], rel=1e-5,
                                         abs=1e-7), (it, key)
    one = rank_params(skd_runs / 'one', 0)
    two = rank_params(skd_runs / 'two', 0)
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6,
                                   msg=key)
