"""Train a distillation config (or any mmseg/mmdet config) with mmengine's
Runner. ``mim train mmkd <config>`` runs this script.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
    torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import mmkd  # noqa: F401  (registries, safe checkpoint loading)
from mmkd.utils.runner_config import prepare_config, setup_cpu_distributed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train with mmkd')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or without a value from the '
        'latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision')
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
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    prepare_config(cfg, amp=args.amp)
    setup_cpu_distributed(cfg)
    Runner.from_cfg(cfg).train()


if __name__ == '__main__':
    main()
