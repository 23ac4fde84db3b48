"""The gradient each distillation term sends to the student, against the
task losses' gradient, at the student tap the term reads."""
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from torch import Tensor
from torch.autograd.graph import GradientEdge

from .step_capture import StepCapture

#: The prefix of the distillation entries of a distiller's loss dict.
TERM_PREFIX = 'distill.loss_'


def task_loss(losses: Mapping[str, Any]) -> Optional[Tensor]:
    """The student's task loss of a distiller's loss dict: every entry
    whose key contains ``'loss'`` and that is not a distillation entry,
    summed as mmengine's ``BaseModel.parse_losses`` sums them (the mean of
    a tensor, the sum of the means of a list)."""
    total = None
    for key, value in losses.items():
        if key.startswith('distill') or 'loss' not in key:
            continue
        values = [value] if isinstance(value, Tensor) else list(value)
        for item in values:
            total = item.mean() if total is None else total + item.mean()
    return total


def gradients(value: Optional[Tensor],
              edges: Sequence[Optional[GradientEdge]],
              scale: float = 1.0) -> List[Optional[Tensor]]:
    """``d value / d edge`` for each edge, without touching any ``.grad``
    (``torch.autograd.grad``, graph retained for the step's own backward).

    Args:
        value (Tensor, optional): A scalar loss.
        edges (Sequence[GradientEdge | None]): Where to take the gradient
            (None: a tensor without gradient).
        scale (float): ``value`` is multiplied by it before the backward
            and the gradients divided by it after (a loss scaler's scale:
            fp16 gradients that would underflow do not).

    Returns:
        list[Tensor | None]: One gradient per edge (None where ``value``
        does not depend on it).
    """
    wanted = [i for i, edge in enumerate(edges) if edge is not None]
    found: List[Optional[Tensor]] = [None] * len(edges)
    if value is None or not value.requires_grad or not wanted:
        return found
    grads = torch.autograd.grad(value * scale, [edges[i] for i in wanted],
                                retain_graph=True, allow_unused=True)
    for i, grad in zip(wanted, grads):
        found[i] = None if grad is None else grad.detach().float() / scale
    return found


def compare(term: Sequence[Optional[Tensor]],
            task: Sequence[Optional[Tensor]]) -> Dict[str, List[float]]:
    """Norms and cosine of two gradients per level and over all levels.

    Args:
        term (Sequence[Tensor | None]): The term's gradient per level
            (None: zero).
        task (Sequence[Tensor | None]): The task's, same levels.

    Returns:
        dict: ``norm``, ``task_norm``, ``cos`` (lists: one value per level,
        then one over all levels together). A zero gradient has cosine 0.
    """
    norms, task_norms, dots = [], [], []
    for g_term, g_task in zip(term, task):
        n_term = 0.0 if g_term is None else g_term.norm().item()
        n_task = 0.0 if g_task is None else g_task.norm().item()
        dot = (0.0 if g_term is None or g_task is None else
               (g_term * g_task).sum().item())
        norms.append(n_term)
        task_norms.append(n_task)
        dots.append(dot)
    norms.append(math.sqrt(sum(n * n for n in norms)))
    task_norms.append(math.sqrt(sum(n * n for n in task_norms)))
    dots.append(sum(dots))
    cos = [d / (a * b) if a > 0 and b > 0 else 0.0
           for d, a, b in zip(dots, norms, task_norms)]
    return dict(norm=norms, task_norm=task_norms, cos=cos)


def probe_gradients(capture: StepCapture, routes: Mapping[str, Mapping],
                    scale: float = 1.0) -> Dict[str, Dict[str, Any]]:
    """Per distillation term, its gradient at its student tap against the
    task's (one backward pass per term and one per tap, all with
    ``torch.autograd.grad``).

    The gradient is taken at the output of the tapped module itself (not
    after the term's connector): the place where the term and the task
    meet in the student. A level the term does not reach (a level left
    unpaired by stride) reads a zero gradient.

    Args:
        capture (StepCapture): The step, before its backward pass.
        routes (Mapping): The distiller's ``loss_routes``.
        scale (float): The loss scaler's scale (1 without one); the
            figures are unscaled.

    Returns:
        dict: Term name -> ``dict(tap=<tap name>, norm=[...],
        task_norm=[...], cos=[...])`` (per level, then all levels).
    """
    task = task_loss(capture.losses)
    task_grads: Dict[str, List[Optional[Tensor]]] = {}
    result = {}
    for name, route in routes.items():
        key = TERM_PREFIX + name
        if key not in capture.losses:
            continue
        tap = route['student']
        edges = capture.tap_edges.get(tap, [])
        if tap not in task_grads:
            task_grads[tap] = gradients(task, edges, scale)
        term = gradients(capture.losses[key], edges, scale)
        result[name] = dict(tap=tap, **compare(term, task_grads[tap]))
    return result
