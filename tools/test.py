"""Test a model with mmengine's Runner. On a distillation config the student
alone is evaluated (``mim test mmkd <config> --checkpoint <ckpt>``); a
student config and checkpoint written by mmkd work with the stock mmseg/mmdet
test scripts as well.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
"""
import argparse

from mmengine.runner import Runner

import mmkd  # noqa: F401  (registries, safe checkpoint loading)
from mmkd.engine.runner_config import setup_cpu_distributed
from runner_args import add_runner_arguments, load_runner_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test with mmkd')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    add_runner_arguments(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_runner_config(args)
    cfg.load_from = args.checkpoint
    setup_cpu_distributed(cfg)
    Runner.from_cfg(cfg).test()


if __name__ == '__main__':
    main()
