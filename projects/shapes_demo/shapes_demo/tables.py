"""The paired comparison's rows and tables: mean ± std over seeds,
paired differences to the baseline with their evaluation noise, the
selection and the convergence tables."""
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .protocol import best_candidate


def _std(values: Sequence[float]) -> Optional[float]:
    """Sample std (ddof=1); None for fewer than two values."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def part_noise(parts: Sequence[float]) -> float:
    """The standard error of a metric measured on a whole split, estimated
    from its values on equal disjoint parts: std(parts) / sqrt(#parts)."""
    return float(np.std(parts, ddof=1) / np.sqrt(len(parts)))


def _runs_by_role(results: Sequence, task, keep: Optional[Callable] = None
                  ) -> Tuple[List[Tuple[str, Dict[int, object]]],
                             Dict[int, object]]:
    """The task's runs grouped for a report table.

    Args:
        results: :class:`StageResult` of the report runs.
        task: The task.
        keep: Only runs for which it returns True (all when None).

    Returns:
        tuple: ``[(role, {seed: run})]`` for the teacher, the baseline
        student and each variant that has runs, in table order; and the
        baseline's ``{seed: run}`` (empty without one).
    """
    by_role = defaultdict(dict)
    for r in results:
        if r.task == task.name and (keep is None or keep(r)):
            by_role[r.role][r.seed] = r
    roles = ['teacher', 'student'] + list(task.variants)
    return ([(role, by_role[role]) for role in roles if by_role.get(role)],
            by_role.get('student', {}))


def paired_rows(results: Sequence, tasks: Sequence) -> List[dict]:
    """The report's rows: per task the teacher, the baseline student and
    each variant, with test metrics over seeds and the paired differences.

    Args:
        results: :class:`StageResult` of the report runs.
        tasks: The tasks, in table order.

    Returns:
        list[dict]: ``task``, ``model``, ``metric``, ``setting``, ``seeds``,
        ``values`` (per seed), ``mean``, ``std`` (sample std over seeds;
        None for one seed), ``noise`` (evaluation noise of one run's
        metric, RMS over seeds), and for variants ``diffs`` (per seed,
        variant minus baseline of the same seed), ``diff_mean``,
        ``diff_std``, ``diff_noise`` (the evaluation noise of one paired
        difference, from the test split's parts) and ``verdict``.
    """
    rows = []
    for task in tasks:
        roles, base = _runs_by_role(results, task)
        for role, runs in roles:
            seeds = sorted(runs)
            values = [runs[s].metric for s in seeds]
            row = dict(
                task=task.name, model=role, metric=task.metric,
                setting=runs[seeds[0]].setting, seeds=seeds, values=values,
                mean=float(np.mean(values)), std=_std(values),
                noise=float(np.sqrt(np.mean(
                    [part_noise(runs[s].parts) ** 2 for s in seeds]))))
            if role not in ('teacher', 'student'):
                paired = [s for s in seeds if s in base]
                diffs = [runs[s].metric - base[s].metric for s in paired]
                row.update(diffs=diffs, diff_seeds=paired)
                row['diff_mean'] = float(np.mean(diffs)) if diffs else None
                row['diff_std'] = _std(diffs)
                row['diff_noise'] = float(np.sqrt(np.mean([part_noise(
                    np.subtract(runs[s].parts, base[s].parts)) ** 2
                    for s in paired]))) if paired else None
                row['verdict'] = verdict(row['diff_mean'], row['diff_std'],
                                         row['diff_noise'])
            rows.append(row)
    return rows


def class_rows(results: Sequence, tasks: Sequence) -> List[dict]:
    """Per class, each segmentation model's test IoU over seeds and each
    variant's paired difference to the baseline: where a variant's mIoU
    difference comes from, and which classes carry the seed noise.

    Only runs that recorded their per-class IoU (``StageResult.classes``)
    count; a class with no IoU in some run is left out.

    Args:
        results: :class:`StageResult` of the report runs.
        tasks: The tasks, in table order.

    Returns:
        list[dict]: ``task``, ``model``, ``class``, ``seeds``, ``values``
        (IoU per seed), ``mean`` and, for variants, ``diffs`` (per seed,
        variant minus baseline of the same seed), ``diff_mean`` and
        ``diff_std`` (sample std; None for one seed).
    """
    rows = []
    for task in tasks:
        roles, base = _runs_by_role(results, task, lambda r: r.classes)
        for role, runs in roles:
            seeds = sorted(runs)
            for name in runs[seeds[0]].classes:
                values = [runs[s].classes.get(name) for s in seeds]
                if None in values:
                    continue
                row = {'task': task.name, 'model': role, 'class': name,
                       'seeds': seeds, 'values': values,
                       'mean': float(np.mean(values))}
                paired = [s for s in seeds if s in base and
                          base[s].classes.get(name) is not None]
                if role not in ('teacher', 'student') and paired:
                    diffs = [runs[s].classes[name] - base[s].classes[name]
                             for s in paired]
                    row.update(diffs=diffs, diff_mean=float(np.mean(diffs)),
                               diff_std=_std(diffs))
                rows.append(row)
    return rows


def class_table(rows: Sequence[dict]) -> str:
    """The per-class markdown table: one line per model, one column per
    class, ``IoU`` for the teacher and the baseline and ``IoU (paired
    difference ± std)`` for a variant."""
    if not rows:
        return ''
    classes = list(dict.fromkeys(r['class'] for r in rows))
    lines = ['| task | model | ' + ' | '.join(classes) + ' |',
             '|---|---|' + '---|' * len(classes)]
    models = list(dict.fromkeys((r['task'], r['model']) for r in rows))
    for task, model in models:
        cells = {r['class']: r for r in rows
                 if (r['task'], r['model']) == (task, model)}
        texts = []
        for name in classes:
            r = cells.get(name)
            text = '' if r is None else f"{r['mean']:.2f}"
            if r is not None and 'diff_mean' in r:
                text += f" ({_pm(r['diff_mean'], r['diff_std'], sign=True)})"
            texts.append(text)
        lines.append(f'| {task} | {model} | ' + ' | '.join(texts) + ' |')
    return '\n'.join(lines)


def verdict(diff_mean: Optional[float], diff_std: Optional[float],
            diff_noise: Optional[float] = None) -> str:
    """``'better'`` / ``'worse'`` when the mean paired difference exceeds
    both its std over seeds and its evaluation noise (when known),
    ``'within noise'`` otherwise, ``'one seed'`` when there is no std."""
    if diff_mean is None or diff_std is None:
        return 'one seed'
    bar = max(diff_std, diff_noise or 0.0)
    if diff_mean > bar:
        return 'better'
    if diff_mean < -bar:
        return 'worse'
    return 'within noise'


def _pm(mean: Optional[float], std: Optional[float], sign: bool = False
        ) -> str:
    if mean is None:
        return ''
    text = f'{mean:+.2f}' if sign else f'{mean:.2f}'
    return text if std is None else f'{text} ± {std:.2f}'


def _noise(row: dict) -> str:
    """A row's evaluation noise of the paired difference, or empty."""
    noise = row.get('diff_noise')
    return '' if noise is None else f'± {noise:.2f}'


def setting_text(setting: Dict[str, float], model: str) -> str:
    """``lr 0.2`` for the baseline, ``pixel 1 at lr 0.1`` (loss weights,
    learning rate) for a variant, empty for the teacher."""
    if model == 'teacher':
        return ''
    if model == 'student':
        return f"lr {setting['lr']:g}"
    weights = ', '.join(f'{k} {v:g}' for k, v in setting.items()
                        if k != 'lr')
    return f"{weights} at lr {setting['lr']:g}"


def paired_table(rows: Sequence[dict]) -> str:
    """The report's markdown table."""
    lines = [
        '| task | model | setting | test metric | mean ± std over seeds | '
        'paired difference to the student | eval noise of the difference |'
        ' verdict |', '|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['model']} | "
            f"{setting_text(r['setting'], r['model'])} | {r['metric']} | "
            f"{_pm(r['mean'], r['std'])} | "
            f"{_pm(r.get('diff_mean'), r.get('diff_std'), sign=True)} | "
            f"{_noise(r)} | {r.get('verdict', '')} |")
    return '\n'.join(lines)


def selection_rows(results: Sequence, tasks: Sequence) -> List[dict]:
    """The selection's summary: per task and role (baseline first), each
    candidate's setting and mean val metric over the selection seeds, and
    the chosen candidate."""
    rows = []
    for task in tasks:
        for role in ['student'] + list(task.variants):
            runs = [r for r in results
                    if r.task == task.name and r.role == role]
            if not runs:
                continue
            candidates = sorted({r.candidate for r in runs})
            means = [float(np.mean([r.metric for r in runs
                                    if r.candidate == c]))
                     for c in candidates]
            settings = [next(r.setting for r in runs if r.candidate == c)
                        for c in candidates]
            rows.append(dict(task=task.name, model=role, metric=task.metric,
                             settings=settings, means=means,
                             seeds=sorted({r.seed for r in runs}),
                             chosen=best_candidate(runs)))
    return rows


def selection_table(rows: Sequence[dict]) -> str:
    """The selection's markdown table: val metric per candidate, the chosen
    one in bold."""
    lines = ['| task | model | candidates (val metric, mean over the '
             'selection seeds) | chosen |', '|---|---|---|---|']
    for r in rows:
        cells = []
        for i, (setting, mean) in enumerate(zip(r['settings'], r['means'])):
            text = f"{setting_text(setting, r['model'])}: {mean:.2f}"
            cells.append(f'**{text}**' if i == r['chosen'] else text)
        lines.append(f"| {r['task']} | {r['model']} | {'; '.join(cells)} | "
                     f"{setting_text(r['settings'][r['chosen']], r['model'])}"
                     ' |')
    return '\n'.join(lines)


def convergence_rows(runs: Dict[int, Sequence]) -> List[dict]:
    """How a longer schedule changes one baseline student, paired by seed
    as the report pairs a variant with the baseline.

    Args:
        runs: Schedule length -> its :class:`StageResult` runs, one per
            seed, in the same seed order for every schedule; the first
            schedule is the reference.

    Returns:
        list[dict]: Per schedule ``iters``, ``seeds``, ``values`` (per
        seed), ``mean``, ``std``, ``seconds`` (mean per run), and for the
        longer schedules ``diffs`` (per seed, minus the reference of the
        same seed), ``diff_mean``, ``diff_std``, ``diff_noise`` (the
        evaluation noise of one paired difference, from the split's
        parts) and ``verdict``.
    """
    schedules = list(runs)
    reference = runs[schedules[0]]
    seeds = [r.seed for r in reference]
    rows = []
    for iters in schedules:
        results = runs[iters]
        if [r.seed for r in results] != seeds:
            raise ValueError(
                f'the {iters}-iteration runs have seeds '
                f'{[r.seed for r in results]} and the reference '
                f'{schedules[0]}-iteration runs {seeds}: give every '
                'schedule the same seeds in the same order')
        values = [r.metric for r in results]
        row = dict(iters=iters, seeds=seeds, values=values,
                   mean=float(np.mean(values)), std=_std(values),
                   seconds=float(np.mean([r.seconds for r in results])))
        if iters != schedules[0]:
            diffs = [r.metric - ref.metric
                     for r, ref in zip(results, reference)]
            row.update(
                diffs=diffs, diff_mean=float(np.mean(diffs)),
                diff_std=_std(diffs),
                diff_noise=float(np.sqrt(np.mean([part_noise(
                    np.subtract(r.parts, ref.parts)) ** 2
                    for r, ref in zip(results, reference)]))))
            row['verdict'] = verdict(row['diff_mean'], row['diff_std'],
                                     row['diff_noise'])
        rows.append(row)
    return rows


def convergence_table(rows: Sequence[dict]) -> str:
    """The markdown table of :func:`convergence_rows`."""
    lines = ['| iterations | per seed | mean ± std over seeds | paired '
             f"difference to {rows[0]['iters']} | eval noise of the "
             'difference | verdict | s per run |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(
            f"| {r['iters']} | {' / '.join(f'{v:.2f}' for v in r['values'])}"
            f" | {_pm(r['mean'], r['std'])} | "
            f"{_pm(r.get('diff_mean'), r.get('diff_std'), sign=True)} | "
            f"{_noise(r)} | {r.get('verdict', '')} | {r['seconds']:.0f} |")
    return '\n'.join(lines)


def train_gap_rows(val_runs: Dict[int, object], train_runs: Dict[int, object]
                   ) -> List[dict]:
    """A model's train-against-val gap per schedule.

    Args:
        val_runs: Schedule length -> its :class:`StageResult` on val.
        train_runs: The same schedules' scores on the training scenes.

    Returns:
        list[dict]: Per schedule ``iters``, ``train``, ``val``, ``gap``
        (train minus val) and ``noise`` (the evaluation noise of that
        difference of two independent splits, from each split's parts).
    """
    rows = []
    for iters, val in val_runs.items():
        train = train_runs[iters]
        rows.append(dict(
            iters=iters, train=train.metric, val=val.metric,
            gap=train.metric - val.metric,
            noise=float(np.hypot(part_noise(train.parts),
                                 part_noise(val.parts)))))
    return rows


def train_gap_table(rows: Sequence[dict]) -> str:
    """The markdown table of :func:`train_gap_rows`."""
    lines = ['| iterations | training scenes | val | gap | eval noise |',
             '|---|---|---|---|---|']
    lines += [f"| {r['iters']} | {r['train']:.2f} | {r['val']:.2f} | "
              f"{r['gap']:+.2f} | ± {r['noise']:.2f} |" for r in rows]
    return '\n'.join(lines)
