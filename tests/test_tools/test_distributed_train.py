"""Two processes with ``--launcher pytorch`` on CPU (gloo): both ranks end
with identical student parameters."""
import os
import os.path as osp
import socket
import subprocess
import sys

import torch

from conftest import REPO, TINY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_ranks_end_identical(tiny_data, tmp_path):
    config = tmp_path / 'dist_hint.py'
    config.write_text(
        f"_base_ = '{osp.join(TINY, 'hint_pspnet_r50_r18_tiny_shapes.py')}'\n"
        "custom_imports = dict(imports=['rank_weights_hook'])\n"
        "custom_hooks = [dict(type='RankWeightsHook')]\n"
        "train_cfg = dict(max_iters=3)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [osp.join(REPO, 'tests', 'data'), os.environ.get('PYTHONPATH', '')]),
        OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
         '2', '--master_port', str(free_port()), 'tools/train.py',
         str(config), '--launcher', 'pytorch', '--work-dir',
         str(tmp_path / 'work')],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
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
