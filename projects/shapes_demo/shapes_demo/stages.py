"""The demo's stages: the data, the cached teacher and pretraining
stages, and a student's stage."""
import functools
import hashlib
import json
import os
import os.path as osp
import time
from dataclasses import asdict
from typing import Callable, Dict, List, Optional, Tuple

from mmengine.config import Config

from mmkd.testing.shapes import make_shapes_dataset

from .stage_run import (StageResult, evaluate_checkpoint, run_stage,
                        scaled_schedule, setting_line)
from .tasks import (CONFIGS, POOL_SEED, TASKS, Budget, Task, scenes_dir,
                    stage_iters)


class Progress:
    """One numbered console line per finished stage.

    Args:
        total: Number of stages of the whole demo.
        start: ``time.time()`` when the demo started.
    """

    def __init__(self, total: int, start: float) -> None:
        self.total = total
        self.start = start
        self.count = 0

    def __call__(self, text: str) -> None:
        self.count += 1
        print(f'[shapes demo {self.count}/{self.total} '
              f'{time.time() - self.start:6.0f}s] {text}', flush=True)


def prepare_run(work: str, budget: Budget, stages: int,
                tasks: Optional[List[Task]] = None
                ) -> Tuple[Progress, Dict[str, str]]:
    """Start a demo command: its progress printer (``stages`` lines in all,
    the generation of the splits the first) and the generated splits of
    each task's scenes (:func:`scenes_dir`).

    Returns:
        tuple: The :class:`Progress` and task name -> dataset root.
    """
    progress = Progress(stages, time.time())
    # the command's workers inherit it (cached_stage)
    os.environ[STARTED_ENV] = repr(progress.start)
    data = {}
    for task in tasks or TASKS:
        data[task.name] = make_shapes_dataset(
            scenes_dir(work, task), budget.num_train, budget.num_val,
            budget.num_test, **task.scenes)[task.name]
        if task.pretrain or task.teacher_pretrain:
            # here, not in the pretraining stages: two of them (the
            # student's and the teacher's) would write it at once
            generate_pool(task, budget, work)
    if budget.iters:
        # not a progress line: it counts no stage
        print('shortened schedules, not the configs\': ' + ', '.join(
            f'{kind} {iters} iterations'
            for kind, iters in budget.iters.items()), flush=True)
    folders = sorted({osp.dirname(root) for root in data.values()})
    progress(f'data: {budget.num_train} train / {budget.num_val} val / '
             f'{budget.num_test} test scenes in {", ".join(folders)}')
    return progress, data


#: When the running demo command started (``time.time()``; set by
#: :func:`prepare_run`, read by :func:`cached_stage` in its workers).
STARTED_ENV = 'SHAPES_DEMO_COMMAND_STARTED'


def refuse_newer_stage(stamp_file: str) -> None:
    """Refuse to train again a stage whose finished ``stamp_file`` (with
    another stamp than this command's) was written after this command
    started: another command, started from other code or configs, wrote it
    (e.g. a stamp carried over a config change), and this one would
    replace it with a run of its own older code.

    Raises:
        RuntimeError: Naming the stage and what to do.
    """
    started = os.environ.get(STARTED_ENV)
    written = osp.getmtime(stamp_file)
    if started is None or written <= float(started):
        return
    raise RuntimeError(
        f'{stamp_file} was written at {time.ctime(written)}, after this '
        f'command started ({time.ctime(float(started))}), with another '
        'stamp than this command gives the stage: another command or a '
        'config change wrote it, and this command, with the code and '
        'configs it started with, would train the stage again. Restart '
        'this command from the current code.')


# config keys only the selection reads: changing them keeps cached stages
SELECTION_KEYS = ('lr_grid', 'distill_lr_scales', 'weight_grid',
                  'paper_loss_weights')


def file_digest(path: str) -> str:
    """The SHA-256 of the file ``path`` (hex)."""
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def checkpoint_digests(cfg: Config, *paths: Optional[str]
                       ) -> Dict[str, str]:
    """The SHA-256 of each checkpoint a stage starts from: every ``.pth``
    file the config names (a pretrained backbone; also in the student's
    config file when ``model.student`` names one, as the study's variants
    do) and ``paths`` (a teacher), by path. A stage whose inputs were
    trained again has other digests, so it trains again too."""
    from mmkd.utils.model_loading import load_model_config
    found = []

    def walk(value) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value.endswith('.pth'):
            found.append(value)

    walk(cfg.to_dict())
    student = cfg.model.get('student')
    if isinstance(student, str):
        walk(load_model_config(student, 'model.student').to_dict())
    digests = {}
    for path in found + [p for p in paths if p is not None]:
        if osp.isfile(path):
            digests[path] = file_digest(path)
    return digests


def stage_stamp(task: Task, config: str, iters: int, data_root: str,
                seed: int = 0, inputs: Optional[dict] = None) -> dict:
    """What a cached stage was trained from (:func:`cached_stage`): the
    config's text (less :data:`SELECTION_KEYS`), the iterations, the
    generated data's record, the seed and ``inputs``."""
    os.environ[task.data_env] = data_root  # the config reads it
    with open(osp.join(osp.dirname(data_root), 'generated.json')) as f:
        data = json.load(f)
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    for key in SELECTION_KEYS:  # what the selection reads, not training
        cfg.pop(key, None)
    stamp = dict(config=cfg.pretty_text, iters=iters, data=data)
    if seed:  # the stamps of seed 0 (teachers, pretraining) stay as they were
        stamp['seed'] = seed
    if inputs is not None:
        # a JSON round trip: what is compared later is what was written
        stamp['inputs'] = json.loads(json.dumps(inputs))
    return stamp


def cached_stage(task: Task, role: str, config: str, iters: int,
                 work_dir: str, data_root: str, split: str,
                 train: Optional[Callable[..., StageResult]] = None,
                 seed: int = 0, metric: Optional[str] = None,
                 inputs: Optional[dict] = None,
                 name: Optional[Callable[[StageResult], str]] = None
                 ) -> Tuple[StageResult, str]:
    """Train ``config`` with ``seed`` in ``work_dir`` with ``train``
    (default :func:`run_stage`; the same arguments), or reuse the run there
    when it was trained from the same config, iterations, seed, generated
    data and ``inputs`` (what else ``train`` is given; its ``stage.json``):
    an interrupted command resumes where it stopped, an interrupted stage
    from its newest checkpoint when it was started with the same stamp
    (``stage.partial.json``; ``train`` is given ``resume``). ``metric``
    names what ``train`` scores (default: the task's metric); ``name``
    gives the stage's name in its console line from its result (default:
    the task, the role and a seed other than 0).

    Returns:
        tuple: The result and its console line.
    """
    stamp = stage_stamp(task, config, iters, data_root, seed, inputs)
    stamp_file = osp.join(work_dir, 'stage.json')

    def line(result: StageResult, how: str) -> str:
        stage = name(result) if name else (
            f'{task.name} {role}' + (f' (seed {seed})' if seed else ''))
        return (f'{stage}: {split} {metric or task.metric} '
                f'{result.metric:.2f} ({how})')

    if osp.exists(stamp_file):
        with open(stamp_file) as f:
            cached = json.load(f)
        result = StageResult(**cached['result'])
        if cached['stamp'] == stamp and osp.exists(result.checkpoint):
            return result, line(result, 'trained earlier, reused')
        refuse_newer_stage(stamp_file)
    partial = osp.join(work_dir, 'stage.partial.json')
    resume = False
    if osp.exists(partial):
        with open(partial) as f:
            resume = json.load(f) == stamp
    if not resume and osp.exists(osp.join(work_dir, 'last_checkpoint')):
        # another stage's checkpoints: never resumed from
        os.remove(osp.join(work_dir, 'last_checkpoint'))
    os.makedirs(work_dir, exist_ok=True)
    with open(partial, 'w') as f:
        json.dump(stamp, f)
    result = (train or run_stage)(task, role, config, iters, seed,
                                  work_dir, split=split, resume=resume)
    with open(stamp_file, 'w') as f:
        json.dump(dict(stamp=stamp, result=asdict(result)), f)
    os.remove(partial)
    how = f'{result.seconds:.0f}s' + (', resumed' if resume else '')
    return result, line(result, how)


def train_teacher(task: Task, budget: Budget, work: str, data_root: str
                  ) -> Tuple[StageResult, str]:
    """Train the task's teacher (seed 0, evaluated on the test split) in
    :func:`teacher_dir`, or reuse the one there (see :func:`cached_stage`).
    With ``task.teacher_from_preconditions``, a teacher that
    ``preconditions.py`` trained with the same stamp (its own schedule,
    scored on val) is scored on test instead of trained again: the same
    config, iterations, seed and data train the same weights."""
    from .precondition_jobs import precondition_dir, run_key
    iters = stage_iters(budget, 'teacher', task.teacher)
    train = None
    source = osp.join(precondition_dir(work, run_key(task, 'teacher', iters)),
                      'stage.json')
    if task.teacher_from_preconditions and osp.exists(source):
        with open(source) as f:
            trained = json.load(f)
        if trained['stamp'] == stage_stamp(task, task.teacher, iters,
                                           data_root):
            train = functools.partial(
                _score_trained, checkpoint=trained['result']['checkpoint'])

    def scored_name(result: StageResult) -> str:
        return f"{task.name} teacher (preconditions.py's, scored)"

    return cached_stage(task, 'teacher', task.teacher, iters,
                        teacher_dir(work, task), data_root, 'test',
                        train=train, name=scored_name if train else None)


def _score_trained(task: Task, role: str, config: str, iters: int,
                   seed: int, work_dir: str, split: str, resume: bool,
                   checkpoint: str) -> StageResult:
    """A ``train`` of :func:`cached_stage` that scores ``checkpoint``, a
    stage trained elsewhere with the same stamp, on ``split`` (``resume``:
    an interrupted scoring starts again)."""
    return evaluate_checkpoint(task, role, config, checkpoint, work_dir,
                               split)


def generate_pool(task: Task, budget: Budget, work: str) -> Dict[str, str]:
    """The task's pretraining pool (:func:`scenes_dir` ``'pool'``,
    generator seed :data:`POOL_SEED`, none of its scenes in the three
    splits), generated once.

    Returns:
        dict: ``seg`` and ``det`` roots of the pool's scenes.
    """
    return make_shapes_dataset(scenes_dir(work, task, 'pool'),
                               budget.num_pool, 50, 0, seed=POOL_SEED,
                               **task.scene_args('pool'))


def pretrain_backbone(task: Task, budget: Budget, work: str,
                      whose: str = 'student',
                      seed: int = 0) -> Tuple[StageResult, str]:
    """Pretrain the backbone of the student (``task.pretrain``, of kind
    ``task.pretrain_kind``) or of the teacher (``whose='teacher'``:
    ``task.teacher_pretrain``, an object classifier) on a separate
    generated pool (seed :data:`POOL_SEED`, :func:`scenes_dir`), once: the
    run in :func:`pretrain_dir` is reused while its config, iterations and
    pool are unchanged. The student's (teacher's) config reads the
    checkpoint from ``task.pretrained_env`` (``task.teacher_pretrained_env``).
    ``seed`` is the training seed of the stage (its initialisation and the
    order of its batches).
    """
    pools = generate_pool(task, budget, work)
    config = task.teacher_pretrain if whose == 'teacher' else task.pretrain
    train, metric = None, None
    if whose == 'teacher' or task.pretrain_kind == 'classify':
        from .classifier import train_classifier
        os.environ['SHAPES_POOL_DET'] = pools['det']  # the config reads it
        train, metric = train_classifier, 'object class accuracy'
    role = 'teacher pretraining' if whose == 'teacher' else 'pretraining'
    return cached_stage(task, role, config,
                        stage_iters(budget, 'pretraining', config),
                        pretrain_dir(work, task, whose), pools[task.name],
                        'val', train, seed=seed, metric=metric)


def train_student(task: Task, role: str, config: str, iters: int,
                  seed: int, work_dir: str, split: str = 'test',
                  teacher_checkpoint: Optional[str] = None,
                  overrides: Optional[dict] = None,
                  lr: Optional[float] = None,
                  candidate: Optional[int] = None,
                  schedule_from: Optional[str] = None
                  ) -> Tuple[StageResult, str]:
    """:func:`run_stage` for a student or distilled student (the same
    arguments), with its console line (the setting too for a grid
    candidate); reused from ``work_dir`` when it was trained with the same
    arguments from the same checkpoints (:func:`cached_stage`,
    :func:`checkpoint_digests`)."""
    data_root = os.environ[task.data_env]  # the job's environment
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    inputs = dict(split=split, overrides=overrides, lr=lr,
                  schedule=None if schedule_from is None else
                  scaled_schedule(schedule_from, iters),
                  checkpoints=checkpoint_digests(cfg, teacher_checkpoint))
    train = functools.partial(run_stage, teacher_checkpoint=teacher_checkpoint,
                              overrides=overrides, lr=lr, candidate=candidate,
                              schedule_from=schedule_from)

    def name(result: StageResult) -> str:
        setting = '' if candidate is None else f' {setting_line(result)}'
        return f'{task.name} {role}{setting} (seed {seed})'

    return cached_stage(task, role, config, iters, work_dir, data_root, split,
                        train=train, seed=seed, inputs=inputs, name=name)


def teacher_dir(work: str, task: Task) -> str:
    """Where the task's teacher trains (``teacher.pth`` in it)."""
    return osp.join(work, f'{task.name}_teacher')


def pretrain_dir(work: str, task: Task, whose: str = 'student') -> str:
    """Where the task's pretraining stage of the student's (``whose``:
    ``'student'``) or the teacher's (``'teacher'``) backbone trains."""
    if whose == 'teacher':
        return osp.join(work, f'{task.name}_teacher_pretrain')
    return osp.join(work, f'{task.name}_pretrain')
