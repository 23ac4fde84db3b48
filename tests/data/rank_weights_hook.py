"""Test helper: each rank saves its final student parameters, so a test can
compare the ranks of a distributed run."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankWeightsHook(Hook):

    def after_train(self, runner) -> None:
        model = runner.model
        model = getattr(model, 'module', model)
        # parameters: BatchNorm running statistics are per-rank without
        # SyncBN (which needs GPUs), so they are left out
        state = {k: v.detach().cpu().clone()
                 for k, v in model.student.named_parameters()}
        torch.save(state, osp.join(runner.work_dir,
                                   f'rank{get_rank()}_student.pth'))
