"""Test a model with mmengine's Runner. On a distillation config the student
alone is evaluated (``mim test mmkd <config> --checkpoint <ckpt>``); a
student config and checkpoint written by mmkd work with the stock mmseg/mmdet
test scripts as well.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import mmkd  # noqa: F401  (registries, safe checkpoint loading)
from mmkd.utils.runner_config import setup_cpu_distributed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test with mmkd')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='folder for logs and metrics')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    setup_cpu_distributed(cfg)
    Runner.from_cfg(cfg).test()


if __name__ == '__main__':
    main()
