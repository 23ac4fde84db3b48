"""Export the student of a saved distillation checkpoint: a checkpoint with
exactly the plain student's state-dict keys, and the plain student config.

    python tools/export_student.py CONFIG CHECKPOINT [--out-dir DIR]

Then: ``python -m mim test mmseg DIR/student_config.py --checkpoint
DIR/<name>_student.pth`` (or mmdet's tools/test.py).
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config

import mmkd  # noqa: F401  (registries, safe checkpoint loading)
from mmkd.checkpoint import safe_torch_load
from mmkd.utils.student_export import (dump_student_config,
                                       save_student_checkpoint,
                                       student_checkpoint_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the distillation config')
    parser.add_argument('checkpoint', help='a distillation checkpoint')
    parser.add_argument('--out-dir', help='defaults to the checkpoint folder')
    args = parser.parse_args()
    out_dir = args.out_dir or osp.dirname(osp.abspath(args.checkpoint))
    os.makedirs(out_dir, exist_ok=True)
    checkpoint = safe_torch_load(
        args.checkpoint, what='checkpoint (export_student.py CHECKPOINT)')
    if not isinstance(checkpoint, dict) or \
            not isinstance(checkpoint.get('state_dict'), dict):
        raise SystemExit(
            f'export_student.py CHECKPOINT: {args.checkpoint} holds no '
            "'state_dict': give a checkpoint saved by an mmkd training run.")
    meta = checkpoint.get('meta')
    meta = meta if isinstance(meta, dict) else {}
    out = save_student_checkpoint(
        checkpoint['state_dict'],
        osp.join(out_dir, osp.basename(
            student_checkpoint_path(args.checkpoint))),
        meta=dict(source_checkpoint=osp.basename(args.checkpoint),
                  epoch=meta.get('epoch'), iter=meta.get('iter'),
                  dataset_meta=meta.get('dataset_meta')))
    config_out = osp.join(out_dir, 'student_config.py')
    dump_student_config(Config.fromfile(args.config), config_out)
    print(f'student checkpoint: {out}\nstudent config: {config_out}')


if __name__ == '__main__':
    main()
