"""Test helper: each rank saves its final parameters and its logged values
per iteration, so a test can compare the ranks of a distributed run (and a
distributed run with a one-process run)."""
import json
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _unwrap(module):
    return getattr(module, 'module', module)


@HOOKS.register_module()
class RankWeightsHook(Hook):
    """Writes ``rank<r>_student.pth`` (student parameters),
    ``rank<r>_params.pth`` (every trainable parameter of the distiller, the
    DDP wrappers of its parts unwrapped: ``student.*``, ``connectors.*``,
    ``discriminator.*``) and ``rank<r>_log.json`` (the values the step
    returned, per iteration)."""

    def before_train(self, runner) -> None:
        self.log = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.log.append({k: float(v) for k, v in (outputs or {}).items()})

    def after_train(self, runner) -> None:
        model = _unwrap(runner.model)
        rank = get_rank()
        # parameters: BatchNorm running statistics are per-rank without
        # SyncBN (which needs GPUs), so they are left out
        state = {k: v.detach().cpu().clone()
                 for k, v in _unwrap(model.student).named_parameters()}
        torch.save(state, osp.join(runner.work_dir,
                                   f'rank{rank}_student.pth'))
        params = {f'{name}.{k}': v.detach().cpu().clone()
                  for name, child in model.named_children()
                  for k, v in _unwrap(child).named_parameters()
                  if v.requires_grad}
        torch.save(params, osp.join(runner.work_dir, f'rank{rank}_params.pth'))
        with open(osp.join(runner.work_dir, f'rank{rank}_log.json'),
                  'w') as f:
            json.dump(self.log, f)
