"""Whether a distillation term reached the student: the end-of-training
summary of :class:`~mmkd.engine.hooks.DistillDiagnosticsHook`.

The rule. With ``r`` the term's gradient at its student tap against the
task's there, ``‖g_term‖ / ‖g_task‖`` (the ratio of the mean norms over the
measured iterations at which the term's scheduled factor was > 0, each
divided by that factor; over all levels of the tap, levels listed):

- ``r = 0``: the term sends no gradient to the student (weight 0, or no
  path from the loss to the tap);
- ``r < LOW`` (5 %): too small to change the student;
- ``LOW <= r <= HIGH`` (100 %): it reaches the student;
- ``r > HIGH``: it outweighs the task's gradient there.

Outside the middle band the summary suggests ``loss_weight × TARGET / r``
(``TARGET`` = 20 %, about the geometric middle of the band): a term's
gradient is proportional to its ``loss_weight``, so that weight would have
made the term's gradient ``TARGET`` of the task's at the measured states.
It is a starting point, not a tuned value: the ratio moves as the student
and any connector adapt.
"""
import math
from typing import Dict, List, Optional, Sequence

#: Below this ratio a term is too small to change the student.
LOW = 0.05
#: Above this ratio a term outweighs the task's gradient.
HIGH = 1.0
#: The ratio a suggested weight aims at.
TARGET = 0.2


def percent(value: float) -> str:
    """``0.0142`` -> ``'1.4 %'`` (two significant digits below 10 %)."""
    pct = 100 * value
    return f'{pct:.2g} %' if abs(pct) < 10 else f'{pct:.0f} %'


def level_span(labels: Sequence[str]) -> str:
    """``['P2', 'P3', 'P4']`` -> ``'P2–P4'``; one label as it is."""
    if not labels:
        return 'no level'
    return labels[0] if len(labels) == 1 else f'{labels[0]}–{labels[-1]}'


def suggested_weight(weight: float, ratio: float,
                     target: float = TARGET) -> Optional[float]:
    """``weight × target / ratio`` rounded to two significant digits; None
    for a ratio of 0 (no weight gives a gradient then)."""
    if ratio <= 0 or not math.isfinite(ratio):
        return None
    value = weight * target / ratio
    return float(f'{value:.2g}')


def verdict(ratio: float) -> str:
    """The rule's words for a ratio."""
    if not math.isfinite(ratio):
        return 'not measured (non-finite gradients)'
    if ratio == 0:
        return 'sends no gradient to the student (weight 0, or no path to ' \
            'the tap)'
    if ratio < LOW:
        return 'too small to change the student'
    if ratio <= HIGH:
        return 'reaches the student'
    return "outweighs the task's gradient"


def describe_term(name: str, tap: str, labels: Sequence[str],
                  ratios: Sequence[float], cos: float,
                  weight: Optional[float],
                  regions: Optional[Dict[str, Dict[str, float]]] = None,
                  measurements: int = 0) -> str:
    """One line of the summary.

    Args:
        name (str): The term (``model.distill_losses`` key).
        tap (str): Its student tap.
        labels (Sequence[str]): The tap's level labels.
        ratios (Sequence[float]): The ratio per level, then over all.
        cos (float): The mean cosine over all levels.
        weight (float, optional): Its ``loss_weight`` (None: the loss has
            none).
        regions (dict, optional): Region name -> ``dict(cover=..., diff=...)``
            over all levels (``diff`` may be missing).
        measurements (int): How many iterations the figures average.

    Returns:
        str: e.g. ``"imitation: 1.4 % of the task's gradient on P2–P6 (tap
        'fpn'; P2 1.2 %, ...), cosine +0.02: too small to change the
        student; try loss_weight=0.14 (now 0.01)"``.
    """
    ratio = ratios[-1]
    reached = [lbl for lbl, r in zip(labels, ratios[:-1]) if r > 0]
    text = f"{name}: {percent(ratio)} of the task's gradient on " \
        f"{level_span(reached or list(labels))} (tap '{tap}'"
    if len(labels) > 1:
        text += '; ' + ', '.join(f'{lbl} {percent(r)}'
                                 for lbl, r in zip(labels, ratios[:-1]))
    text += f'), cosine {cos:+.2f}: {verdict(ratio)}'
    if not (LOW <= ratio <= HIGH):
        new = suggested_weight(1.0 if weight is None else weight, ratio)
        if new is not None and weight is not None:
            text += f'; try loss_weight={new:g} (now {weight:g})'
        elif new is not None:
            text += f'; try scaling it by {new:g}'
    for region, stats in (regions or {}).items():
        text += (f"; its {region} covers {percent(stats['cover'])} of the "
                 'locations')
        if 'diff' in stats:
            text += (f" and holds {percent(stats['diff'])} of the "
                     'teacher–student difference')
    if measurements:
        text += f' [{measurements} measured iterations]'
    return text


def mean(values: List[float]) -> float:
    """The mean of a non-empty list (nan for an empty one)."""
    return sum(values) / len(values) if values else float('nan')
