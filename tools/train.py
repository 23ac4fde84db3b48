"""Train a distillation config (or any mmseg/mmdet config) with mmengine's
Runner. ``mim train mmkd <config>`` runs this script.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
    torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch
"""
import argparse

from mmengine.runner import Runner

import mmkd  # noqa: F401  (registries, safe checkpoint loading)
from mmkd.engine.runner_config import prepare_config, setup_cpu_distributed
from runner_args import add_runner_arguments, load_runner_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train with mmkd')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or without a value from the '
        'latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision')
    add_runner_arguments(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_runner_config(args)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    prepare_config(cfg, amp=args.amp)
    setup_cpu_distributed(cfg)
    Runner.from_cfg(cfg).train()


if __name__ == '__main__':
    main()
