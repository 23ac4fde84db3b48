"""One measured training step: per distillation term its gradient against
the task's, its region, and the connectors' weight norms, as figures."""
import math
from typing import Any, Dict, List, Sequence, Tuple

import torch.nn as nn

from .connector_norms import connector_norms
from .gradient_probe import probe_gradients
from .regions import region_stats
from .step_capture import StepCapture

#: The prefix of every scalar the diagnostics publish.
SCALAR_PREFIX = 'distill_diag'


def level_labels(shapes: Sequence[Tuple[int, ...]],
                 input_size: Sequence[int]) -> List[str]:
    """Names of the levels of a tap: ``P<k>`` for the maps of a
    multi-level tap at stride ``2^k`` (the FPN convention), ``L<i>``
    otherwise, and ``['all']`` for a single map.

    Args:
        shapes (Sequence[tuple]): The shape of each level.
        input_size (Sequence[int]): ``(H, W)`` of the batch.
    """
    if len(shapes) <= 1:
        return ['all']
    labels = []
    for i, shape in enumerate(shapes):
        stride = (int(input_size[-1]) / shape[-1]
                  if len(shape) == 4 and shape[-1] else 0)
        k = math.log2(stride) if stride >= 1 else -1
        labels.append(f'P{round(k)}' if k >= 0 and abs(k - round(k)) < 0.1
                      and f'P{round(k)}' not in labels else f'L{i}')
    return labels


def measure_step(capture: StepCapture, distiller: nn.Module,
                 scale: float = 1.0) -> Dict[str, Any]:
    """Measure the step a :class:`StepCapture` caught (before its backward).

    Args:
        capture (StepCapture): The step.
        distiller (nn.Module): The unwrapped distiller.
        scale (float): The loss scaler's scale (1 without one).

    Returns:
        dict: ``terms``: name -> ``dict(tap, labels, norm, task_norm, cos,
        factor, weight, regions)`` (lists per level of the tap, then all
        levels; ``regions``: name -> ``dict(cover=[...], diff=[...])`` per
        level of the maps the loss compared, named in ``region_labels``)
        and ``connectors``: name -> weight norm.
    """
    input_size = tuple(capture.inputs.shape[-2:])
    terms = probe_gradients(capture, distiller.loss_routes, scale)
    for name, term in terms.items():
        loss = distiller.distill_losses[name]
        factor = capture.losses.get(f'distill_factor.{name}')
        term['factor'] = 1.0 if factor is None else float(factor)
        weight = getattr(loss, 'loss_weight', None)
        term['weight'] = None if weight is None else float(weight)
        term['labels'] = level_labels(
            capture.tap_shapes.get(term['tap'], []), input_size)
        term['regions'] = {}
        if hasattr(loss, 'diagnostic_regions') and name in capture.loss_calls:
            args, kwargs = capture.loss_calls[name]
            term['regions'] = region_stats(loss, args, kwargs)
            shapes = [tuple(m.shape) for m in _levels(args[0])]
            term['region_labels'] = level_labels(shapes, input_size)
    return dict(terms=terms, connectors=connector_norms(distiller.connectors))


def _levels(maps: Any) -> list:
    return [maps] if hasattr(maps, 'shape') else list(maps)


def scalars(measurement: Dict[str, Any]) -> Dict[str, float]:
    """The measurement as flat scalars for mmengine's message hub and
    visualizer backends (TensorBoard, ``vis_data/scalars.json``).

    Keys (``P`` a level label; per-level keys only for multi-level taps):
    ``distill_diag/<term>/grad_ratio[/P]`` (``‖g_term‖ / ‖g_task‖``),
    ``.../grad_cos[/P]``, ``.../grad_norm[/P]``, ``distill_diag/task/<tap>/
    grad_norm[/P]``, ``distill_diag/<term>/<region>_cover[/P]``,
    ``.../<region>_diff[/P]``, ``distill_diag/connector/<name>/
    weight_norm``.
    """
    out: Dict[str, float] = {}
    for name, term in measurement['terms'].items():
        base = f'{SCALAR_PREFIX}/{name}'
        ratios = ratio_list(term['norm'], term['task_norm'])
        _put(out, f'{base}/grad_ratio', term['labels'], ratios)
        _put(out, f'{base}/grad_cos', term['labels'], term['cos'])
        _put(out, f'{base}/grad_norm', term['labels'], term['norm'])
        _put(out, f"{SCALAR_PREFIX}/task/{term['tap']}/grad_norm",
             term['labels'], term['task_norm'])
        for region, stats in term['regions'].items():
            labels = term['region_labels']
            _put(out, f'{base}/{region}_cover', labels, stats['cover'])
            if stats['diff']:
                _put(out, f'{base}/{region}_diff', labels, stats['diff'])
    for name, norm in measurement['connectors'].items():
        out[f'{SCALAR_PREFIX}/connector/{name}/weight_norm'] = norm
    return out


def ratio_list(norms: Sequence[float],
               task_norms: Sequence[float]) -> List[float]:
    """``norm / task_norm`` element-wise (0 for a zero term gradient, inf
    for a term gradient where the task has none)."""
    return [n / t if t > 0 else (0.0 if n == 0 else math.inf)
            for n, t in zip(norms, task_norms)]


def _put(out: Dict[str, float], key: str, labels: Sequence[str],
         values: Sequence[float]) -> None:
    """``key`` -> the value over all levels; ``key/<label>`` per level for
    more than one level."""
    out[key] = values[-1]
    if len(labels) > 1:
        for label, value in zip(labels, values[:-1]):
            out[f'{key}/{label}'] = value
