"""The trained models of a demo work dir, for the diagnostic scripts."""
import json
import os
import os.path as osp
import sys
from typing import List, Sequence

from .tasks import CONFIGS, TASKS


def report_runs(work: str, task: str, roles: Sequence[str]) -> List[dict]:
    """The report's runs (``report/results.json``) of ``task`` whose role is
    in ``roles``, by role (in the order given), then seed; exits with a
    message naming what to run when there is no report or no such run."""
    path = osp.join(work, 'report', 'results.json')
    if not osp.exists(path):
        sys.exit(f'{path} not found: run run_demo.py --tasks {task} with '
                 f'--work-dir {work} first')
    with open(path) as f:
        runs = [r for r in json.load(f)['runs'] if r['task'] == task]
    found = sorted((r for r in runs if r['role'] in roles),
                   key=lambda r: (list(roles).index(r['role']), r['seed']))
    missing = set(roles) - {r['role'] for r in found}
    if missing:
        sys.exit(f'{path} has no {task} run of {sorted(missing)}: run '
                 f'run_demo.py with these variants first')
    return found


def seg_runner(work: str, out_name: str):
    """A runner of the seg student config whose datasets are the work
    dir's generated splits, working in ``<work>/<out_name>``; the models
    are built and loaded with :func:`load_model`."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    task = next(t for t in TASKS if t.name == 'seg')
    os.environ[task.data_env] = osp.join(work, 'data', 'seg')
    os.environ[task.pretrained_env] = 'unused.pth'  # weights loaded later
    cfg = Config.fromfile(osp.join(CONFIGS, task.student))
    cfg.model.backbone.init_cfg = None
    cfg.work_dir = osp.join(work, out_name)
    return Runner.from_cfg(cfg)


def load_model(runner, config: str, checkpoint: str):
    """Build the model of demo config ``config`` (its plain model; for a
    distiller config, its student) and load ``checkpoint`` into it."""
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint
    if not osp.exists(checkpoint):
        sys.exit(f'{checkpoint} not found: run run_demo.py first')
    model_cfg = Config.fromfile(osp.join(CONFIGS, config)).model
    if 'student' in model_cfg:
        model_cfg = model_cfg.student
    model_cfg.backbone.init_cfg = None
    model = runner.build_model(model_cfg)
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    return model
