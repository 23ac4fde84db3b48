"""Which files of ``mmkd/`` one training step runs through, and how long
they are: how much a reader follows to trace a step.

    python tools/analysis_tools/step_files.py [--method fgfi skd-pixel]

Builds the distiller of a tiny test config (random weights, generated
batch), takes one training step (the first step's one-off checks run
there), then records with :func:`sys.setprofile` every function of
``mmkd/`` the second step's ``model.loss`` calls, and prints per file the
functions called and the file's lines. The step is the distiller's
``loss``: the teacher's forward, the student's losses and the distillation
terms (the optimizer update is mmengine's).
"""
import argparse
import os.path as osp
import sys
from collections import defaultdict
from typing import Callable, Dict, List, Set

import torch

from mmkd.testing import REPO_ROOT, demo_det_inputs, demo_seg_inputs
from mmkd.testing import benchmark
from mmkd.testing.tiny_configs import tiny_config_path

PACKAGE = osp.join(REPO_ROOT, 'mmkd') + osp.sep

#: method -> (tiny config, the distillation terms kept, the batch's task)
METHODS = {
    'fgfi': ('fgfi_faster_rcnn_r50_r18_tiny_shapes', ('imitation', ),
             'det'),
    'skd-pixel': ('skd_pspnet_r50_r18_tiny_shapes', ('pixel', ), 'seg'),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--method', nargs='+', default=list(METHODS),
                        choices=list(METHODS))
    return parser.parse_args()


def keep_terms(terms) -> Callable[[dict], None]:
    """A model-config edit keeping only the distillation terms ``terms``
    (and no critic without the holistic term)."""

    def edit(model_cfg) -> None:
        model_cfg.distill_losses = {
            k: v for k, v in model_cfg.distill_losses.items() if k in terms}
        if 'holistic' not in terms:
            model_cfg.pop('discriminator', None)
    return edit


def traced_step(method: str) -> Dict[str, Set[str]]:
    """File (relative to the repository) -> the functions of it that the
    second training step of ``method`` calls."""
    config, terms, task = METHODS[method]
    _, model, optim_wrapper = benchmark.build_distiller(
        tiny_config_path(config), edit=keep_terms(terms),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)))
    if task == 'det':
        batch = demo_det_inputs([[[4, 4, 20, 24], [30, 8, 60, 40]]] * 2,
                                [(64, 64)] * 2)
    else:
        batch = demo_seg_inputs(batch_size=2, size=32)
    model.train_step(batch, optim_wrapper)  # the first step's checks
    data = model.data_preprocessor(batch, True)
    calls: Dict[str, Set[str]] = defaultdict(set)

    def profile(frame, event, arg) -> None:
        path = frame.f_code.co_filename
        if event == 'call' and path.startswith(PACKAGE):
            calls[osp.relpath(path, REPO_ROOT)].add(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        model.loss(data['inputs'], data['data_samples'])
    finally:
        sys.setprofile(None)
    return calls


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    for method in args.method:
        calls = traced_step(method)
        rows: List[List[str]] = []
        total = 0
        for path in sorted(calls):
            with open(osp.join(REPO_ROOT, path)) as f:
                lines = len(f.readlines())
            total += lines
            rows.append([path, str(lines), ', '.join(sorted(calls[path]))])
        print(f'\n{method}: {len(rows)} files of mmkd/, {total} lines')
        print(benchmark.format_table(['file', 'lines', 'functions'], rows))


if __name__ == '__main__':
    main()
