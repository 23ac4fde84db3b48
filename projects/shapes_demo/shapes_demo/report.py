"""The demo's report: the results table, charts, predictions side by side and
imitation masks, written as markdown, JSON and PNG files."""
import glob
import json
import os
import os.path as osp
import shutil
from collections import defaultdict
from typing import Callable, Dict, List, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from .generate import CLASSES, SEG_PALETTE  # noqa: E402


def _summary(results: List, tasks: Sequence) -> List[dict]:
    rows = []
    for task in tasks:
        by_role = defaultdict(list)
        for r in results:
            if r.task == task.name:
                by_role[r.role].append(r.metric)
        base = np.mean(by_role['student']) if by_role['student'] else None
        for role in ['teacher', 'student'] + list(task.variants):
            values = by_role.get(role)
            if not values:
                continue
            mean = float(np.mean(values))
            # the sample standard deviation over seeds (0 for one run)
            std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            rows.append(dict(
                task=task.name, model=role, metric=task.metric,
                mean=mean, std=std, runs=len(values), values=values,
                gain=None if role in ('teacher', 'student') or base is None
                else mean - float(base)))
    return rows


def _table(rows: List[dict]) -> str:
    lines = ['| task | model | metric | mean ± std | runs | gain over student |',
             '|---|---|---|---|---|---|']
    for r in rows:
        gain = '' if r['gain'] is None else f"{r['gain']:+.2f}"
        lines.append(f"| {r['task']} | {r['model']} | {r['metric']} | "
                     f"{r['mean']:.2f} ± {r['std']:.2f} | {r['runs']} | "
                     f'{gain} |')
    return '\n'.join(lines)


def _not_better(rows: List[dict]) -> str:
    """A paragraph naming the distilled variants whose mean does not beat
    the baseline student's (empty when all do)."""
    worse = [f"{r['task']} {r['model']} ({r['gain']:+.2f})" for r in rows
             if r['gain'] is not None and r['gain'] <= 0]
    if not worse:
        return ''
    return ('Not better than the baseline student: ' + ', '.join(worse) +
            '. The README of mmkd ("Read it honestly") says what was '
            'measured about why.\n\n')


def _metric_chart(rows: List[dict], path: str) -> None:
    tasks = sorted({r['task'] for r in rows}, key=['seg', 'det'].index)
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4),
                             squeeze=False)
    for ax, task in zip(axes[0], tasks):
        sub = [r for r in rows if r['task'] == task]
        colors = ['#555555' if r['model'] == 'teacher' else
                  '#999999' if r['model'] == 'student' else '#1f77b4'
                  for r in sub]
        ax.bar([r['model'] for r in sub], [r['mean'] for r in sub],
               yerr=[r['std'] for r in sub], color=colors, capsize=4)
        ax.set_title(f"{task}: {sub[0]['metric']} on the validation split")
        ax.set_ylabel(sub[0]['metric'])
        ax.tick_params(axis='x', rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _scalars(work_dir: str) -> List[dict]:
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')))
    if not files:
        return []
    with open(files[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def _curves_chart(results: List, path: str) -> None:
    runs = [r for r in results
            if r.role not in ('teacher', 'student') and r.seed == 0]
    fig, axes = plt.subplots(1, max(len(runs), 1),
                             figsize=(3.2 * max(len(runs), 1), 3),
                             squeeze=False)
    for ax, run in zip(axes[0], runs):
        records = [s for s in _scalars(run.work_dir) if 'iter' in s]
        keys = sorted({k for s in records for k in s
                       if k.startswith(('distill.', 'disc.wasserstein'))})
        for key in keys:
            points = [(s['iter'], s[key]) for s in records if key in s]
            if points:
                ax.plot(*zip(*points), label=key)
        ax.set_title(f'{run.task} {run.role}', fontsize=9)
        ax.set_xlabel('iteration', fontsize=8)
        if keys:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _best_variant(rows: List[dict], task: str) -> str:
    variants = [r for r in rows if r['task'] == task and r['gain'] is not None]
    return max(variants, key=lambda r: r['mean'])['model']


def _run_dir(results: List, task: str, role: str):
    return next(r for r in results
                if r.task == task and r.role == role and r.seed == 0)


def _side_by_side_models(results: List, rows: List[dict], task: str,
                         init: Callable[[str, str], object]) -> dict:
    """The teacher, the baseline student and the best distilled student of
    ``task`` (seed 0), built on the CPU by ``init(config, checkpoint)``.

    Returns:
        dict: Column title -> model, in that order.
    """
    teacher = _run_dir(results, task, 'teacher')
    models = dict(teacher=init(_dumped_config(teacher.work_dir),
                               teacher.checkpoint))
    for role in ('student', _best_variant(rows, task)):
        run = _run_dir(results, task, role)
        config = osp.join(run.work_dir, 'student_config.py')
        if not osp.exists(config):
            config = _dumped_config(run.work_dir)
        models[role if role == 'student' else f'{role} (distilled)'] = init(
            config, run.student_checkpoint or run.checkpoint)
    return models


def _seg_predictions(results: List, rows: List[dict], data: Dict[str, str],
                     path: str, num: int = 3) -> None:
    from mmseg.apis import inference_model, init_model
    models = _side_by_side_models(
        results, rows, 'seg',
        lambda config, checkpoint: init_model(config, checkpoint, 'cpu'))
    palette = np.array(SEG_PALETTE, np.uint8)
    images = sorted(glob.glob(osp.join(data['seg'], 'img_dir', 'val',
                                       '*.png')))[:num]
    cols = ['image', 'ground truth'] + list(models)
    fig, axes = plt.subplots(len(images), len(cols),
                             figsize=(2 * len(cols), 2 * len(images)),
                             squeeze=False)
    for i, image in enumerate(images):
        label = np.array(Image.open(image.replace('img_dir', 'ann_dir')))
        panels = [np.array(Image.open(image)), palette[label]]
        for model in models.values():
            pred = inference_model(model, image).pred_sem_seg.data[0].numpy()
            panels.append(palette[pred])
        for j, panel in enumerate(panels):
            axes[i, j].imshow(panel)
            axes[i, j].axis('off')
            if i == 0:
                axes[i, j].set_title(cols[j], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _dumped_config(work_dir: str) -> str:
    """The config mmengine dumped into a run's work dir."""
    configs = [p for p in glob.glob(osp.join(work_dir, '*.py'))
               if osp.basename(p) != 'student_config.py']
    return configs[0]


def _det_predictions(results: List, rows: List[dict], data: Dict[str, str],
                     path: str, num: int = 3, score_thr: float = 0.4) -> None:
    from mmdet.apis import inference_detector, init_detector
    models = _side_by_side_models(
        results, rows, 'det', lambda config, checkpoint: init_detector(
            config, checkpoint, device='cpu'))
    with open(osp.join(data['det'], 'val.json')) as f:
        coco = json.load(f)
    images = coco['images'][:num]
    cols = ['ground truth'] + list(models)
    fig, axes = plt.subplots(len(images), len(cols),
                             figsize=(2.2 * len(cols), 2.2 * len(images)),
                             squeeze=False)
    colors = ['#dc143c', '#0082c8', '#ffb400', '#3cb44b']
    for i, info in enumerate(images):
        file = osp.join(data['det'], 'val', info['file_name'])
        img = np.array(Image.open(file))
        gt = [(a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
               a['bbox'][1] + a['bbox'][3], a['category_id'], 1.0)
              for a in coco['annotations'] if a['image_id'] == info['id']]
        panels = [gt]
        for model in models.values():
            inst = inference_detector(model, file).pred_instances
            keep = inst.scores > score_thr
            panels.append([(*b, int(l), float(s)) for b, l, s in zip(
                inst.bboxes[keep].tolist(), inst.labels[keep],
                inst.scores[keep])])
        for j, boxes in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(img)
            for x1, y1, x2, y2, cls, score in boxes:
                ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1,
                                           fill=False, lw=1.2,
                                           color=colors[cls]))
            ax.axis('off')
            if i == 0:
                ax.set_title(cols[j], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _mask_figure(results: List, data: Dict[str, str], path: str,
                 num: int = 3) -> None:
    """The imitation masks (psi 0.5, best IoU over all levels) of a few
    validation scenes, from the demo student's own RPN anchors, drawn by
    :func:`mmkd.visualization.draw_imitation_masks`."""
    import torch
    from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
    from mmengine.config import Config
    from mmkd.registry import TASK_UTILS
    from mmkd.visualization import draw_imitation_masks
    run = next(r for r in results if r.task == 'det' and r.role == 'imitation')
    cfg = Config.fromfile(osp.join(run.work_dir, 'student_config.py'))
    prior = MMDET_TASK_UTILS.build(cfg.model.rpn_head.anchor_generator)
    generator = TASK_UTILS.build(
        dict(type='mmkd.ImitationMaskGenerator', psi=0.5))
    with open(osp.join(data['det'], 'val.json')) as f:
        coco = json.load(f)
    panels = []
    for info in coco['images'][:num]:
        img = np.array(Image.open(osp.join(data['det'], 'val',
                                           info['file_name'])))
        h, w = img.shape[:2]
        sizes = [(int(np.ceil(h / s[1])), int(np.ceil(w / s[0])))
                 for s in prior.strides]
        boxes = torch.tensor(
            [[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
              a['bbox'][1] + a['bbox'][3]]
             for a in coco['annotations'] if a['image_id'] == info['id']],
            dtype=torch.float32).reshape(-1, 4)
        masks = generator(boxes, prior.grid_priors(sizes, device='cpu'), sizes)
        panels.append(draw_imitation_masks(img, masks, boxes, prior.strides,
                                           scale=2, ncols=len(masks)))
    width = max(p.shape[1] for p in panels)
    rows = [np.pad(p, ((0, 8), (0, width - p.shape[1]), (0, 0)),
                   constant_values=255) for p in panels]
    Image.fromarray(np.concatenate(rows).astype(np.uint8)).save(path)


def write_report(results: List, tasks: Sequence, out_dir: str,
                 data: Dict[str, str], quick: bool = False) -> dict:
    """Write ``results.md``, ``results.json``, ``logs/`` and the charts.

    Returns:
        dict: ``table`` (markdown), ``dir`` and ``rows``.
    """
    os.makedirs(osp.join(out_dir, 'logs'), exist_ok=True)
    rows = _summary(results, tasks)
    table = _table(rows)
    for r in results:
        for log in glob.glob(osp.join(r.work_dir, '*', '*.log')):
            shutil.copyfile(log, osp.join(
                out_dir, 'logs', f'{r.task}_{r.role}_seed{r.seed}.log'))
    charts = dict(metric='metric_per_variant.png',
                  curves='distill_curves.png')
    _metric_chart(rows, osp.join(out_dir, charts['metric']))
    _curves_chart(results, osp.join(out_dir, charts['curves']))
    names = {t.name for t in tasks}
    if 'seg' in names:
        charts['seg_predictions'] = 'predictions_seg.png'
        _seg_predictions(results, rows, data,
                         osp.join(out_dir, charts['seg_predictions']))
    if 'det' in names:
        charts['det_predictions'] = 'predictions_det.png'
        _det_predictions(results, rows, data,
                         osp.join(out_dir, charts['det_predictions']))
        charts['masks'] = 'imitation_masks.png'
        _mask_figure(results, data, osp.join(out_dir, charts['masks']))
    with open(osp.join(out_dir, 'results.json'), 'w') as f:
        json.dump(dict(rows=rows, quick=quick, runs=[
            dict(task=r.task, role=r.role, seed=r.seed, metric=r.metric,
                 seconds=r.seconds, checkpoint=r.checkpoint,
                 student_checkpoint=r.student_checkpoint)
            for r in results]), f, indent=1)
    note = ('Quick mode: a smoke test of the pipeline, too short for the '
            'numbers to mean anything.\n\n' if quick else '')
    with open(osp.join(out_dir, 'results.md'), 'w') as f:
        f.write('# mmkd shapes demo\n\n' + note + table + '\n\n' +
                _not_better(rows) + '\n'.join(
                    f'![{k}]({v})' for k, v in charts.items()) + '\n')
    return dict(table=table, dir=out_dir, rows=rows, charts=charts)
