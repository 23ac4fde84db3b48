"""The trained models of a demo work dir, for the diagnostic scripts."""
import json
import os
import os.path as osp
import sys
from dataclasses import dataclass
from typing import Dict, List, Sequence

from .tasks import (BUDGETS, CONFIGS, TASKS, Budget, Task, scenes_dir,
                    stage_iters)


class MissingRun(SystemExit):
    """A trained model a diagnostic script needs is missing: the script
    exits with a message naming the command that trains it.

    Args:
        path: The missing checkpoint.
        command: What trains it (a demo command with its arguments).
    """

    def __init__(self, path: str, command: str) -> None:
        super().__init__(f'{path} not found: run {command} first')
        self.path = path
        self.command = command


@dataclass
class TrainedModels:
    """Where a demo work dir keeps one task's trained models and data.

    Args:
        task: The task (the default run's or the study's).
        work: The work dir.
        data_root: The task's generated dataset root.
        teacher: The trained teacher's checkpoint.
        env: What the task's configs read (data root, teacher, pretrained
            backbones); :meth:`apply` sets it.
        budget: The budget they were trained with.
    """
    task: Task
    work: str
    data_root: str
    teacher: str
    env: Dict[str, str]
    budget: Budget

    @property
    def iters(self) -> int:
        """The students' schedule."""
        return stage_iters(self.budget, 'student', self.task.student)

    def apply(self) -> None:
        """Set :attr:`env` in this process's environment."""
        os.environ.update(self.env)

    def baseline_student(self, seed: int = 1000) -> str:
        """The study's baseline student of a selection ``seed`` at its own
        schedule (the preconditions' run); exits naming the command to run
        when it is missing."""
        from .precondition_jobs import own_schedule_checkpoint
        path = own_schedule_checkpoint(self.task, self.budget, self.work,
                                       'student', seed)
        if not osp.exists(path):
            raise MissingRun(path, f'preconditions.py --tasks '
                             f'{self.task.name} --parts students '
                             f'--work-dir {self.work}')
        return path


def trained_models(work: str, task_name: str, study: bool,
                   budget: Budget) -> TrainedModels:
    """The trained models of ``task_name`` in ``work`` (trained with
    ``budget``): the default run's teacher (``run_demo.py``), or with
    ``study`` the preconditions' teacher at its own schedule
    (``preconditions.py``). Exits naming the command to run when the
    teacher is missing."""
    from .plans import pretraining_jobs
    from .precondition_jobs import own_schedule_checkpoint
    from .stages import teacher_dir
    from .study import STUDY_TASKS
    task = next(t for t in (STUDY_TASKS if study else TASKS)
                if t.name == task_name)
    work = osp.abspath(work)
    quick = budget is BUDGETS['quick']
    if study:
        teacher = own_schedule_checkpoint(task, budget, work, 'teacher')
        command = f'preconditions.py --tasks {task_name} --parts teachers'
    else:
        teacher = osp.join(teacher_dir(work, task), 'teacher.pth')
        command = f'run_demo.py --tasks {task_name}'
    if not osp.exists(teacher):
        raise MissingRun(teacher, f'{command} --work-dir {work}' +
                         (' --quick' if quick else ''))
    data_root = osp.join(scenes_dir(work, task), task.name)
    env = {task.data_env: data_root, task.teacher_env: teacher}
    pretraining_jobs(task, budget, work, env)  # the backbones' checkpoints
    return TrainedModels(task, work, data_root, teacher, env, budget)


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


def seg_runner(models: TrainedModels, out_name: str):
    """A runner of the segmentation student config of ``models`` whose
    datasets are their generated splits, working in
    ``<work>/<out_name>``; the models are built and loaded with
    :func:`load_model`."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    models.apply()
    os.environ[models.task.pretrained_env] = 'unused.pth'  # loaded later
    cfg = Config.fromfile(osp.join(CONFIGS, models.task.student))
    cfg.model.backbone.init_cfg = None
    cfg.work_dir = osp.join(models.work, out_name)
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
