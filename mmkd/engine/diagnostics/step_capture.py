"""What one training step of a distiller computed, caught before its
backward pass: the student taps' places in the autograd graph, the inputs
of each distillation loss and the step's losses."""
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch.nn as nn
from torch import Tensor
from torch.autograd.graph import GradientEdge, get_gradient_edge

from mmkd.taps import find_module, tensor_leaves

#: The positional and keyword arguments of one call of a loss.
LossCall = Tuple[tuple, Dict[str, Any]]


class StepCapture:
    """Catch one training step (``forward(..., mode='loss')``) of a
    distiller with forward hooks on its modules, and hand it to
    ``on_step`` when the forward ends, before any backward pass.

    Nothing the model computes changes: the hooks only keep references.
    They are installed by :meth:`open` and removed by :meth:`close` (a
    step outside that window costs nothing).

    What ``on_step`` finds on the capture:

    - :attr:`tap_edges`: per student tap used by a loss, the autograd
      :class:`~torch.autograd.graph.GradientEdge` of each tensor the tapped
      module output (in call order; the levels of a multi-level tap), taken
      when the module ran, so that the gradient at the module's output is
      found even when the output is changed in place later in the forward
      (a tap in ``'copy'`` mode, see :class:`~mmkd.taps.FeatureTaps`);
    - :attr:`tap_shapes`: their shapes;
    - :attr:`loss_calls`: per distillation loss, the arguments its
      ``forward`` received (student map(s) after the connector, teacher
      map(s), extra inputs); absent for a loss the distiller calls through
      another method (the holistic term);
    - :attr:`losses`: the step's loss dict (the student's task losses,
      ``distill.loss_<name>``, ``distill_factor.<name>``);
    - :attr:`inputs`: the ``(N, 3, H, W)`` batch, and :attr:`data_samples`
      its data samples.

    Args:
        distiller (nn.Module): An unwrapped mmkd distiller
            (``student``, ``student_taps``, ``loss_routes``,
            ``distill_losses``).
        on_step (Callable[[StepCapture], None]): Called at the end of the
            distiller's loss forward.
    """

    def __init__(self, distiller: nn.Module,
                 on_step: Callable[['StepCapture'], None]) -> None:
        self.distiller = distiller
        self.on_step = on_step
        self.tap_edges: Dict[str, List[Optional[GradientEdge]]] = {}
        self.tap_shapes: Dict[str, List[Tuple[int, ...]]] = {}
        self.loss_calls: Dict[str, LossCall] = {}
        self.losses: Dict[str, Any] = {}
        self.inputs: Optional[Tensor] = None
        self.data_samples: Optional[list] = None
        self._handles: list = []
        self._in_step = False

    # ------------------------------------------------------ the window
    def open(self) -> 'StepCapture':
        """Install the hooks (for the next training step)."""
        distiller = self.distiller
        taps = sorted({route['student']
                       for route in distiller.loss_routes.values()})
        for tap in taps:
            module = find_module(distiller.student,
                                 distiller.student_taps.paths[tap],
                                 f'model.student_taps.{tap}')
            self._handles.append(
                module.register_forward_hook(self._tap_hook(tap)))
        for name, loss in distiller.distill_losses.items():
            self._handles.append(loss.register_forward_pre_hook(
                self._loss_hook(name), with_kwargs=True))
        self._handles.append(distiller.register_forward_pre_hook(
            self._step_begins, with_kwargs=True))
        self._handles.append(distiller.register_forward_hook(
            self._step_ends, with_kwargs=True))
        return self

    def close(self) -> None:
        """Remove the hooks and drop every reference to the step."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.clear()

    def clear(self) -> None:
        """Forget the caught step (its graph can be freed)."""
        self.tap_edges, self.tap_shapes, self.loss_calls = {}, {}, {}
        self.losses, self.inputs, self.data_samples = {}, None, None
        self._in_step = False

    # ------------------------------------------------------- the hooks
    @staticmethod
    def _is_loss_step(args: tuple, kwargs: dict) -> bool:
        mode = kwargs.get('mode', args[2] if len(args) > 2 else 'tensor')
        return mode == 'loss'

    def _step_begins(self, module: nn.Module, args: tuple,
                     kwargs: dict) -> None:
        if self._is_loss_step(args, kwargs):
            self.clear()
            self._in_step = True
            self.inputs = kwargs.get('inputs', args[0] if args else None)
            self.data_samples = kwargs.get(
                'data_samples', args[1] if len(args) > 1 else None)

    def _step_ends(self, module: nn.Module, args: tuple, kwargs: dict,
                   output: Any) -> None:
        if not (self._in_step and self._is_loss_step(args, kwargs)):
            return
        self._in_step = False
        self.losses = dict(output)
        try:
            self.on_step(self)
        finally:
            self.clear()

    def _tap_hook(self, tap: str):

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not self._in_step:
                return
            for tensor in tensor_leaves(output):
                self.tap_edges.setdefault(tap, []).append(
                    get_gradient_edge(tensor) if tensor.requires_grad
                    else None)
                self.tap_shapes.setdefault(tap, []).append(
                    tuple(tensor.shape))

        return hook

    def _loss_hook(self, name: str):

        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            if self._in_step:
                self.loss_calls[name] = (args, dict(kwargs))

        return hook
