"""The main job until the end-to-end demo lands: a short distillation run on
generated data, for segmentation and detection, through the same tools a
user runs, then the stock mmseg/mmdet test of each exported student.

    python tools/smoke_distill.py [--work-dir work_dirs/smoke] [--iters 4]
"""
import argparse
import os
import os.path as osp
import re
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
RUNS = [
    # (task, distillation config, package whose test script checks it)
    ('segmentation', 'configs/tiny/hint_pspnet_r50_r18_tiny_shapes.py',
     'mmseg', r'mIoU: ([\d.]+)'),
    ('detection', 'configs/tiny/hint_faster_rcnn_r50_r18_tiny_shapes.py',
     'mmdet', r'coco/bbox_mAP: ([\d.-]+)'),
]


def run(args, env):
    print('$ ' + ' '.join(args), flush=True)
    proc = subprocess.run(args, cwd=REPO, env=env, text=True,
                          capture_output=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f'failed: {" ".join(args)}')
    return proc.stdout + proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/smoke')
    parser.add_argument('--iters', type=int, default=4)
    args = parser.parse_args()
    work = osp.abspath(args.work_dir)
    from mmkd.testing import make_tiny_det_dataset, make_tiny_seg_dataset
    env = dict(os.environ,
               MMKD_TINY_SEG=make_tiny_seg_dataset(osp.join(work, 'data_seg')),
               MMKD_TINY_DET=make_tiny_det_dataset(osp.join(work, 'data_det')))
    rows = []
    for task, config, package, pattern in RUNS:
        out_dir = osp.join(work, task)
        log = run([sys.executable, 'tools/train.py', config, '--work-dir',
                   out_dir, '--cfg-options',
                   f'train_cfg.max_iters={args.iters}',
                   f'default_hooks.checkpoint.interval={args.iters}'], env)
        losses = re.findall(r'distill\.\w+: ([\d.e+-]+)', log)
        student = osp.join(out_dir, f'iter_{args.iters}_student.pth')
        test_log = run([sys.executable, '-m', 'mim', 'test', package,
                        osp.join(out_dir, 'student_config.py'),
                        '--checkpoint', student, '--work-dir',
                        osp.join(out_dir, 'stock_test')], env)
        metric = re.search(pattern, test_log)
        rows.append((task, losses[0] if losses else '-',
                     losses[-1] if losses else '-',
                     metric.group(1) if metric else '?', student))
    print('\n| task | distill loss (first iter) | (last iter) | stock test '
          'metric of the student | student checkpoint |')
    print('|---|---|---|---|---|')
    for row in rows:
        print('| ' + ' | '.join(row) + ' |')


if __name__ == '__main__':
    main()
