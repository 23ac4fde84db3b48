"""Run the frozen teacher once per view of a fixed-view training pipeline."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmkd.models.distillers.teacher_output_cache import CachedTeacherRun
from mmkd.registry import HOOKS
from mmkd.utils.config_checks import check_number, check_positive_int

from .runner_distiller import runner_distiller

OWNER = 'TeacherOutputCacheHook'


@HOOKS.register_module()
class TeacherOutputCacheHook(Hook):
    """Keep the teacher's tapped outputs per view during training and serve
    them when the view comes back, instead of running the teacher again
    (:class:`~mmkd.models.distillers.teacher_output_cache.CachedTeacherRun`).

    For training pipelines with a finite set of views: fixed images, with
    or without a random flip, at a fixed size. Each view then runs the
    teacher once or, once ``max_gb`` is reached, every time, and the
    student's step costs what its own forward and backward cost plus the
    losses. Pipelines with random crops, resizes or colour changes make
    every view new: every sample runs the teacher and the hook only adds
    the cost of hashing the batch (its log says the hit rate). A view is
    recognised by its content (the preprocessed image and its meta
    information), never by its file name, so a pipeline that changes an
    image is never served another image's outputs.

    What the student is taught is unchanged: the kept outputs are what the
    frozen teacher computed for the same view, which it computes again up
    to the floating-point rounding of a batch of another composition (on a
    CPU, up to about 1e-6 in features of order 1).

    Turned on in a distillation config by one line::

        custom_hooks = [dict(type='mmkd.TeacherOutputCacheHook', max_gb=4)]

    Every ``interval`` iterations, and at the end of training, the log says
    how many samples were served from the kept outputs and how much memory
    they take. After training the distiller runs its teacher as before and
    the kept outputs are freed. A resumed run starts with none kept.

    Args:
        max_gb (float): The most memory the kept outputs may take, in GiB
            (on the device the teacher runs on). Defaults to 4.
        interval (int): Log the hit rate every ``interval`` iterations.
            Defaults to 500.
    """

    priority = 'NORMAL'

    def __init__(self, max_gb: float = 4.0, interval: int = 500) -> None:
        self.max_bytes = int(check_number(
            max_gb, 'max_gb', low=0, low_open=True, owner=OWNER,
            hint='The most memory, in GiB, the kept teacher outputs may '
            'take, e.g. 4.') * 2**30)
        self.interval = check_positive_int(
            interval, 'interval', owner=OWNER,
            hint='Log the hit rate every `interval` iterations, e.g. 500.')
        self.cached: Optional[CachedTeacherRun] = None

    def before_train(self, runner) -> None:
        distiller = runner_distiller(runner, OWNER)
        run = distiller.teacher_run
        if isinstance(run, CachedTeacherRun):
            run = run.run
        self.cached = CachedTeacherRun(run, distiller.teacher_taps,
                                       self.max_bytes)
        distiller.teacher_run = self.cached

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval):
            self._log()

    def after_train(self, runner) -> None:
        self._log()
        runner_distiller(runner, OWNER).teacher_run = self.cached.run
        self.cached = None

    def _log(self) -> None:
        cached = self.cached
        samples, hits = cached.counts['samples'], cached.counts['hits']
        print_log(
            f'Teacher output cache: {hits} of {samples} samples '
            f'({100 * hits / max(samples, 1):.1f} %) served from kept '
            f'outputs, {cached.counts["teacher_runs"]} batches ran the '
            f'teacher; {len(cached.kept)} views kept '
            f'({cached.kept_bytes / 2**20:.1f} MiB).', logger='current')
