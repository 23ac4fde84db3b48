"""The demo's protocol: seeds, and the grids settings are chosen from (the
paired comparison's tables: ``shapes_demo.tables``).

- Settings are chosen on the val split with the selection seeds
  (:data:`SELECTION_SEED_BASE` and up), never reported; the report trains
  with seeds below it and evaluates on the test split.
- The baseline student's learning rate comes from its config's ``lr_grid``.
  A variant's candidates are its config's ``weight_grid`` (one list per
  distill loss, weight candidate ``i`` takes the ``i``-th weight of every
  list, holding the published weights ``paper_loss_weights``) crossed with
  the ``distill_lr_scales`` of the student config (learning rates as
  multiples of the baseline's chosen one): a distillation term adds its
  gradient to the task loss's, so a distilled student may need a smaller
  rate than the baseline's best one. Every variant and the baseline try
  :func:`grid_size` candidates.
"""
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config

SELECTION_SEED_BASE = 1000


def config_error(name: Optional[str], key: str, expected: str, found: str,
                 hint: str = '', missing: bool = False) -> Exception:
    """The error of a value (``missing``: the absence, or a name of nothing
    there is) of ``key`` in the config ``name`` (None: of a command-line
    option ``key``): a :class:`~mmkd.utils.config_checks.ConfigValueError`
    (a ``ConfigKeyError`` when missing) that names the config.

    mmkd is imported here, on the error path: the demo's scripts import this
    module before mmkd.
    """
    from mmkd.utils.config_checks import ConfigKeyError, ConfigValueError
    error = ConfigKeyError if missing else ConfigValueError
    return error(key, expected, found, hint, owner=name)


def report_seeds(seed_base: int, seeds: int) -> List[int]:
    """The report's seeds ``seed_base .. seed_base + seeds - 1``.

    Raises:
        ConfigValueError: When one of them is negative or a selection seed
            (a ``ValueError``).
    """
    chosen = list(range(seed_base, seed_base + seeds))
    if seed_base < 0 or chosen[-1] >= SELECTION_SEED_BASE:
        raise config_error(
            None, '--seed-base', f'a seed base with which the {seeds} seeds '
            f'(--seeds) lie in 0..{SELECTION_SEED_BASE - 1}',
            f'{seed_base}, giving the seeds {chosen[0]}..{chosen[-1]}',
            f'Seeds from {SELECTION_SEED_BASE} up chose the settings and are '
            'never reported: pick a smaller --seed-base.')
    return chosen


def selection_seeds(seeds: int) -> List[int]:
    """The selection's seeds ``SELECTION_SEED_BASE ..``."""
    return list(range(SELECTION_SEED_BASE, SELECTION_SEED_BASE + seeds))


def lr_grid(cfg: Config, name: str) -> List[float]:
    """The baseline's learning-rate candidates (``lr_grid`` of its config).

    Raises:
        ConfigKeyError: When the config has none (a ``KeyError``).
    """
    if 'lr_grid' not in cfg:
        raise config_error(
            name, 'lr_grid', 'the learning rates the selection tries (the '
            'baseline config needs them)', 'none', missing=True)
    return [float(lr) for lr in cfg.lr_grid]


def distill_lr_scales(cfg: Config, name: str) -> List[float]:
    """The distilled students' learning rates as multiples of the
    baseline's chosen one (``distill_lr_scales`` of the student config).

    Raises:
        ConfigKeyError: When the config has none (a ``KeyError``).
    """
    if 'distill_lr_scales' not in cfg:
        raise config_error(
            name, 'distill_lr_scales', 'the learning rates distilled '
            "students try, as multiples of the baseline's chosen one (the "
            'student config needs them)', 'none', missing=True)
    return [float(s) for s in cfg.distill_lr_scales]


def weight_grid(cfg: Config, name: str) -> List[Dict[str, float]]:
    """A variant's loss-weight candidates as config overrides.

    Args:
        cfg: The variant's config, with ``weight_grid`` (distill loss name
            -> list of weights, all lists of one length: ``lr_grid``'s
            divided by ``distill_lr_scales``'s) and ``paper_loss_weights``
            (distill loss name -> published weight).
        name: The config's name, for errors.

    Returns:
        list[dict]: Weight candidate ``i`` as ``{'model.distill_losses.
        <loss>.loss_weight': weight}``.

    Raises:
        ConfigValueError: When a grid names a loss the config lacks, gives
            the variant another budget than the baseline's, or misses the
            published weight (a ``ValueError``).
    """
    grid = cfg.get('weight_grid')
    losses = cfg.model.get('distill_losses', {})
    if not grid or set(grid) != set(losses):
        raise config_error(
            name, 'weight_grid', 'one list of weights per distill loss '
            f'{sorted(losses)}', f'{sorted(grid) if grid else None}')
    scales = len(distill_lr_scales(cfg, name))
    size = grid_size(cfg, name)
    paper = cfg.get('paper_loss_weights', {})
    for loss, weights in grid.items():
        if len(weights) * scales != size:
            raise config_error(
                name, f'weight_grid.{loss}', f'{size} / {scales} = '
                f"{size / scales:g} weights (the lr_grid's {size} candidates "
                f'over the {scales} distill_lr_scales)',
                f'{len(weights)} ({len(weights) * scales} candidates in all)',
                "Every variant gets the baseline's budget.")
        if loss not in paper or paper[loss] not in weights:
            raise config_error(
                name, f'weight_grid.{loss}', 'weights that hold the '
                f'published weight paper_loss_weights.{loss} = '
                f'{paper.get(loss)}', f'{list(weights)}')
    return [{f'model.distill_losses.{loss}.loss_weight': float(weights[i])
             for loss, weights in grid.items()}
            for i in range(size // scales)]


def variant_candidates(cfg: Config, name: str, lr: float
                       ) -> List[Tuple[Dict[str, float], float]]:
    """A variant's candidates: every loss-weight candidate at every
    learning rate ``lr × distill_lr_scales``, as ``(overrides, lr)``,
    :func:`grid_size` of them (the rate's outer loop)."""
    return [(overrides, lr * scale)
            for scale in distill_lr_scales(cfg, name)
            for overrides in weight_grid(cfg, name)]


def grid_size(cfg: Config, name: str) -> int:
    """Candidates per grid: the length of the (inherited) ``lr_grid``."""
    return len(lr_grid(cfg, name))


def paper_scale(setting: Dict[str, float],
                paper: Dict[str, float]) -> float:
    """A variant's loss weights relative to the published ones: their
    common ratio, or, where the losses of a candidate have different ratios
    (e.g. FGFI's ID scans the imitation weight at D's published weights),
    the geometric mean of the ratios."""
    ratios = [setting[k] / w for k, w in paper.items()]
    return round(float(np.exp(np.mean(np.log(ratios)))), 6)


def best_candidate(results: Sequence) -> int:
    """The candidate with the highest mean metric over seeds (the first on
    a tie)."""
    scores = defaultdict(list)
    for r in results:
        scores[r.candidate].append(r.metric)
    means = {c: float(np.mean(v)) for c, v in scores.items()}
    return max(sorted(means), key=lambda c: means[c])
