"""Why doesn't distillation help my model? Measure, during training, what
each distillation term sends to the student."""
import logging
from typing import Any, Dict, List, Optional

from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmkd.engine.diagnostics import (DiagnosticsHistory, StepCapture,
                                     measure_step, preserved_state, scalars)
from mmkd.engine.diagnostics.verdict import percent
from mmkd.registry import HOOKS
from mmkd.utils.config_checks import (ConfigValueError, check_positive_int,
                                      describe)

from .runner_distiller import runner_distiller

OWNER = 'DistillDiagnosticsHook'
#: The message-hub runtime-info key of the end-of-training summary.
SUMMARY_KEY = 'distill_diagnostics_summary'


@HOOKS.register_module()
class DistillDiagnosticsHook(Hook):
    """Measure, every ``interval`` training iterations, the gradient each
    distillation term sends to the student against the task's; at the end
    of training, say per term whether it reached the student.

    Turned on in any distillation config by one line::

        custom_hooks = [dict(type='mmkd.DistillDiagnosticsHook',
                             interval=50)]

    On a measured iteration (``runner.iter`` 0, ``interval``,
    ``2·interval``, ...), during the step's own forward and before its
    backward (:class:`~mmkd.engine.diagnostics.StepCapture`):

    - per distillation term, at the output of its student tap (per level
      for a multi-level tap, and over all levels): ``‖g_term‖ / ‖g_task‖``
      and ``cos(g_term, g_task)``, ``g_task`` the gradient of the student's
      task losses (summed as mmengine sums them) and ``g_term`` that of
      ``distill.loss_<name>`` as the step weighted it;
    - the weight norm of each connector (and of each per-level layer);
    - for a region loss (one with ``diagnostic_regions``: FGFI's imitation
      region I or G, FGD's foreground), the share of the locations the
      region covers and of the teacher–student difference ``Σ_c (s − t)²``
      inside it.

    The figures go to mmengine's message hub (``distill_diag/...``) and the
    visualizer backends (TensorBoard, ``vis_data/scalars.json``) as
    scalars (:func:`~mmkd.engine.diagnostics.scalars` lists the keys), and
    a line per term to the log. After training the log gets a summary
    (:mod:`mmkd.engine.diagnostics.verdict` states the rule and how a
    weight is suggested), also kept in the message hub's runtime info
    ``'distill_diagnostics_summary'``.

    What it costs: on a measured iteration, one backward pass
    (``torch.autograd.grad``) per term and one per student tap, from the
    step's losses back to the tap, in the step's own graph: no extra
    forward pass. Other iterations run no code of the hook but an interval
    check (figures: ``docs/benchmarks.md``).

    It changes nothing the training computes. ``torch.autograd.grad``
    fills no ``.grad`` and runs no DDP gradient hook; the probe reads the
    losses as the step computed them (under its autocast; with a loss
    scaler, the probe's losses are multiplied by its scale and the
    gradients divided by it, so fp16 gradients neither underflow nor reach
    the figures scaled); the model's buffers and the random states of
    python, numpy and torch (CPU, CUDA) are put back after the probe, in
    case a backward recomputes a gradient-checkpointed block.

    Distributed training: every rank runs the probe on its own batch (the
    same backward passes in the same order, decided by the iteration
    alone, so a backward collective such as SyncBatchNorm's all-reduce is
    met on every rank and no rank waits on another); rank 0's figures are
    published and summed up. No rank runs an extra forward, so no DDP
    forward or SyncBatchNorm forward runs on one rank only.

    Args:
        interval (int): Measure every ``interval`` iterations (the first
            one included). Defaults to 50.
    """

    priority = 'NORMAL'

    def __init__(self, interval: int = 50) -> None:
        self.interval = check_positive_int(
            interval, 'interval', owner=OWNER,
            hint='Measure every `interval` training iterations, e.g. 50.')
        self.history = DiagnosticsHistory()
        self._capture: Optional[StepCapture] = None
        self._measurement: Optional[Dict[str, Any]] = None
        self._runner = None

    # ------------------------------------------------------------ setup
    def before_train(self, runner) -> None:
        runner_distiller(runner, OWNER)
        self.history = DiagnosticsHistory()

    def measured(self, iteration: int) -> bool:
        """Whether iteration ``iteration`` (from 0) is measured."""
        return iteration % self.interval == 0

    # ------------------------------------------------------ each step
    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        if not self.measured(runner.iter):
            return
        self._runner = runner
        self._capture = StepCapture(runner_distiller(runner, OWNER),
                                    self._measure).open()

    def _measure(self, capture: StepCapture) -> None:
        """Called at the end of the distiller's forward, before the
        backward pass."""
        with preserved_state(capture.distiller):
            self._measurement = self.measure(
                capture, loss_scale(self._runner.optim_wrapper))

    def measure(self, capture: StepCapture, scale: float) -> Dict[str, Any]:
        """Measure a caught step, before its backward pass (buffers and
        random states are restored after it). A subclass that measures more
        extends the result; its scalars come from :func:`scalars`.

        Args:
            capture (StepCapture): The step (its tap edges, loss inputs,
                losses, batch).
            scale (float): The loss scaler's scale (1 without one).

        Returns:
            dict: :func:`~mmkd.engine.diagnostics.measure_step`'s result.
        """
        return measure_step(capture, capture.distiller, scale)

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        if self._capture is None:
            return
        self._capture.close()
        self._capture, self._runner = None, None
        measurement, self._measurement = self._measurement, None
        if measurement is None:
            raise RuntimeError(
                f'{OWNER}: iteration {runner.iter} was to be measured, but '
                "the distiller's forward(mode='loss') did not run in it: a "
                "train_step of a model wrapper or distiller that bypasses "
                'the forward is not supported.')
        self.history.add(measurement)
        if not is_main_process():
            return
        values = scalars(measurement)
        for key, value in values.items():
            runner.message_hub.update_scalar(key, value)
        runner.visualizer.add_scalars(values, step=runner.iter + 1)
        print_log(f'{OWNER} iter {runner.iter + 1}: ' + step_line(
            measurement), logger='current')

    # ---------------------------------------------------------- the end
    def after_train(self, runner) -> None:
        lines = self.history.summary()
        runner.message_hub.update_info(SUMMARY_KEY, '\n'.join(lines))
        if is_main_process() and lines:
            world = get_world_size()
            where = f' (rank 0 of {world})' if world > 1 else ''
            print_log(f'{OWNER} summary{where}, gradient at each student '
                      "tap against the task's:\n  " + '\n  '.join(lines),
                      logger='current', level=logging.INFO)


def loss_scale(optim_wrapper: Any) -> float:
    """The scale of the student's loss scaler (``AmpOptimWrapper``), 1
    without one.

    Args:
        optim_wrapper: The runner's ``OptimWrapper`` or
            ``OptimWrapperDict`` (its ``'student'`` entry, or its only one).
    """
    if hasattr(optim_wrapper, 'keys'):
        keys = list(optim_wrapper.keys())
        if 'student' in keys:
            optim_wrapper = optim_wrapper['student']
        elif len(keys) == 1:
            optim_wrapper = optim_wrapper[keys[0]]
        else:
            raise ConfigValueError(
                'optim_wrapper', "a 'student' entry (the optimizer whose "
                f'loss scaler {OWNER} follows)', describe(keys),
                "Name the student's optimizer 'student' (mmkd."
                'DistillerOptimWrapperConstructor does).')
    scaler = getattr(optim_wrapper, 'loss_scaler', None)
    if scaler is None or not scaler.is_enabled():
        return 1.0
    return float(scaler.get_scale())


def step_line(measurement: Dict[str, Any]) -> str:
    """One log line of a measurement: each term's ratio and cosine."""
    parts: List[str] = []
    for name, term in measurement['terms'].items():
        task = term['task_norm'][-1]
        ratio = term['norm'][-1] / task if task > 0 else float('nan')
        parts.append(f"{name} {percent(ratio)} of the task's gradient at "
                     f"'{term['tap']}' (cos {term['cos'][-1]:+.2f})")
    return '; '.join(parts) or 'no distillation term in the step'
