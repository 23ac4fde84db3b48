"""The demo's report: the results table, charts, predictions side by side and
imitation masks, written as markdown, JSON and PNG files."""
import glob
import json
import os
import os.path as osp
import shutil
from dataclasses import asdict
from typing import Callable, Dict, List, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from mmkd.testing.shapes import SEG_PALETTE  # noqa: E402


def _not_better(rows: List[dict]) -> str:
    """A paragraph naming the distilled variants that do not beat the
    baseline student by more than the std of the paired differences and
    their evaluation noise (empty when all do)."""
    worse = [f"{r['task']} {r['model']} ({r['verdict']}, "
             f"{r['diff_mean']:+.2f})" for r in rows
             if r.get('verdict') not in (None, 'better')]
    if not worse:
        return ''
    return ('Not better than the baseline student by more than the std of '
            'the paired differences and their evaluation noise: ' + ', '.join(worse) + '. The demo\'s '
            'README (projects/shapes_demo/README.md) says what was measured '
            'about why.\n\n')


def _metric_chart(rows: List[dict], path: str) -> None:
    """Per task: the test metric of every model (mean ± std over seeds)
    and the paired difference of every variant to the baseline."""
    tasks = sorted({r['task'] for r in rows}, key=['seg', 'det'].index)
    fig, axes = plt.subplots(2, len(tasks), figsize=(6 * len(tasks), 7),
                             squeeze=False)
    for col, task in enumerate(tasks):
        sub = [r for r in rows if r['task'] == task]
        ax = axes[0, col]
        colors = ['#555555' if r['model'] == 'teacher' else
                  '#999999' if r['model'] == 'student' else '#1f77b4'
                  for r in sub]
        ax.bar([r['model'] for r in sub], [r['mean'] for r in sub],
               yerr=[r['std'] or 0 for r in sub], color=colors, capsize=4)
        ax.set_title(f"{task}: test {sub[0]['metric']} "
                     f"({len(sub[-1]['seeds'])} seeds)")
        ax.tick_params(axis='x', rotation=30)
        ax = axes[1, col]
        variants = [r for r in sub if 'diffs' in r]
        x = np.arange(len(variants))
        # what evaluation noise alone gives: a grey band of ± one noise
        # around 0 at each variant; the seeds' spread: the error bar
        for i, r in enumerate(variants):
            noise = r.get('diff_noise') or 0.0
            ax.add_patch(plt.Rectangle((i - 0.35, -noise), 0.7, 2 * noise,
                                       color='#dddddd', zorder=0))
        ax.errorbar(x, [r['diff_mean'] for r in variants],
                    yerr=[r['diff_std'] or 0 for r in variants], fmt='none',
                    ecolor='k', capsize=5, zorder=2)
        ax.scatter(x, [r['diff_mean'] for r in variants], zorder=3, s=40,
                   c=['#2ca02c' if r['verdict'] == 'better' else
                      '#d62728' if r['verdict'] == 'worse' else '#1f77b4'
                      for r in variants])
        ax.set_xticks(x, [r['model'] for r in variants])
        ax.set_xlim(-0.6, len(variants) - 0.4)
        ax.axhline(0, color='k', lw=0.8)
        ax.set_title(f'{task}: paired difference to the student (same '
                     'seed)\nbar: std over seeds; grey: ± eval noise',
                     fontsize=10)
        ax.tick_params(axis='x', rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def selection_chart(rows: List[dict], papers: Dict[str, Dict[str, float]],
                    path: str) -> None:
    """Val metric against the loss weight (relative to the published
    weights, log scale) for every variant, one line per learning rate it
    tried, and against the learning rate for the baseline; one column per
    task.

    Args:
        rows: :func:`protocol.selection_rows`.
        papers: ``'<task>/<variant>'`` -> published loss weights.
        path: The PNG to write.
    """
    from .protocol import paper_scale
    tasks = sorted({r['task'] for r in rows}, key=['seg', 'det'].index)
    fig, axes = plt.subplots(2, len(tasks), figsize=(6 * len(tasks), 7),
                             squeeze=False)
    for col, task in enumerate(tasks):
        sub = [r for r in rows if r['task'] == task]
        ax = axes[0, col]
        base = next((r for r in sub if r['model'] == 'student'), None)
        for r in sub:
            if r['model'] == 'student':
                continue
            paper = papers[f"{task}/{r['model']}"]
            xs = [paper_scale(s, paper) for s in r['settings']]
            lrs = sorted({s['lr'] for s in r['settings']}, reverse=True)
            color = None
            for k, lr in enumerate(lrs):  # one line per learning rate
                idx = [i for i, s in enumerate(r['settings'])
                       if s['lr'] == lr]
                line, = ax.plot([xs[i] for i in idx],
                                [r['means'][i] for i in idx], marker='o',
                                ls='-' if k == 0 else ':', color=color,
                                label=f"{r['model']} (lr {lr:g})")
                color = line.get_color()
            ax.plot(xs[r['chosen']], r['means'][r['chosen']], marker='*',
                    ms=14, color=color)
        if base is not None:
            ax.axhline(base['means'][base['chosen']], color='#555555',
                       ls='--', label='student (chosen lr)')
        ax.set_xscale('log')
        ax.set_xlabel('loss weight / published weight')
        ax.set_ylabel(f"val {sub[0]['metric']}")
        ax.set_title(f'{task}: loss-weight selection (star: chosen)')
        ax.legend(fontsize=7)
        ax = axes[1, col]
        if base is not None:
            lrs = [s['lr'] for s in base['settings']]
            ax.plot(lrs, base['means'], marker='o', color='#555555')
            ax.plot(lrs[base['chosen']], base['means'][base['chosen']],
                    marker='*', ms=14, color='#555555')
            ax.set_xscale('log')
        ax.set_xlabel('learning rate')
        ax.set_ylabel(f"val {sub[0]['metric']}")
        ax.set_title(f'{task}: baseline student, learning-rate selection')
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
    first = min(r.seed for r in results if r.role != 'teacher')
    runs = [r for r in results
            if r.role not in ('teacher', 'student') and r.seed == first]
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
    variants = [r for r in rows if r['task'] == task and 'diffs' in r]
    return max(variants, key=lambda r: r['mean'])['model']


def _run_dir(results: List, task: str, role: str):
    """The run of ``role`` with the lowest seed."""
    return min((r for r in results if r.task == task and r.role == role),
               key=lambda r: r.seed)


def _side_by_side_models(results: List, rows: List[dict], task: str,
                         init: Callable[[str, str], object]) -> dict:
    """The teacher, the baseline student and the best distilled student of
    ``task`` (lowest seed), built on the CPU by ``init(config, checkpoint)``.

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
    images = sorted(glob.glob(osp.join(data['seg'], 'img_dir', 'test',
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
    with open(osp.join(data['det'], 'test.json')) as f:
        coco = json.load(f)
    images = coco['images'][:num]
    cols = ['ground truth'] + list(models)
    fig, axes = plt.subplots(len(images), len(cols),
                             figsize=(2.2 * len(cols), 2.2 * len(images)),
                             squeeze=False)
    colors = ['#dc143c', '#0082c8', '#ffb400', '#3cb44b']
    for i, info in enumerate(images):
        file = osp.join(data['det'], 'test', info['file_name'])
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
    """The regions FGFI's variants imitate on a few test scenes, one row of
    levels per region: I (the imitation mask, psi 0.5, best IoU over all
    levels, from the demo student's own RPN anchors), G (the ground-truth
    boxes' cells) and F (every location), drawn by
    :func:`mmkd.visualization.draw_imitation_masks`."""
    import torch
    from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
    from mmengine.config import Config

    from mmkd.task_modules import ImitationRegion
    from mmkd.visualization import draw_imitation_masks
    run = next(r for r in results if r.task == 'det'
               and r.role not in ('teacher', 'student'))
    cfg = Config.fromfile(osp.join(run.work_dir, 'student_config.py'))
    prior = MMDET_TASK_UTILS.build(cfg.model.rpn_head.anchor_generator)
    regions = dict(I=ImitationRegion('imitation', dict(psi=0.5), prior),
                   G=ImitationRegion('gt', anchor_generator=prior),
                   F=ImitationRegion('full', anchor_generator=prior))
    with open(osp.join(data['det'], 'test.json')) as f:
        coco = json.load(f)
    panels = []
    for info in coco['images'][:num]:
        img = np.array(Image.open(osp.join(data['det'], 'test',
                                           info['file_name'])))
        h, w = img.shape[:2]
        sizes = regions['I'].featmap_sizes((h, w))
        boxes = torch.tensor(
            [[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
              a['bbox'][1] + a['bbox'][3]]
             for a in coco['annotations'] if a['image_id'] == info['id']],
            dtype=torch.float32).reshape(-1, 4)
        for name, region in regions.items():
            masks = [m[0] for m in region([boxes], sizes, [(h, w)], (h, w))]
            titles = [f'{name} P{level + 2}' for level in range(len(masks))]
            panels.append(draw_imitation_masks(
                img, masks, boxes, prior.strides, titles=titles, scale=2,
                ncols=len(masks)))
    width = max(p.shape[1] for p in panels)
    rows = [np.pad(p, ((0, 8), (0, width - p.shape[1]), (0, 0)),
                   constant_values=255) for p in panels]
    Image.fromarray(np.concatenate(rows).astype(np.uint8)).save(path)


def write_report(results: List, tasks: Sequence, out_dir: str,
                 data: Dict[str, str], quick: bool = False) -> dict:
    """Write ``results.md``, ``results.json``, ``logs/`` and the charts; a
    selection written earlier into ``out_dir`` (``selection.md``, by
    ``select_settings.py``) is included.

    Returns:
        dict: ``table`` (markdown), ``dir``, ``rows`` and ``charts``.
    """
    from .tables import class_rows, class_table, paired_rows, paired_table
    os.makedirs(osp.join(out_dir, 'logs'), exist_ok=True)
    rows = paired_rows(results, tasks)
    table = paired_table(rows)
    classes = class_rows(results, tasks)
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
        json.dump(dict(rows=rows, class_rows=classes, quick=quick,
                       runs=[asdict(r) for r in results]), f, indent=1)
    note = ('Quick mode: a smoke test of the pipeline, too short for the '
            'numbers to mean anything.\n\n' if quick else '')
    seeds = sorted({r.seed for r in results if r.role != 'teacher'})
    intro = (f'Test split, students trained with seeds {seeds}; the paired '
             'difference is each variant minus the baseline student '
             'trained with the same seed (mean ± sample std over seeds); '
             'the evaluation noise is the standard error of one such '
             'difference, from the test split\'s four disjoint quarters. '
             '"better" / "worse": the mean difference exceeds its std over '
             'seeds.\n\n')
    per_class = ''
    if classes:
        per_class = ('Per class: test IoU, mean over seeds, and for a '
                     'variant (the paired difference to the baseline, mean '
                     '± std over seeds).\n\n' + class_table(classes) +
                     '\n\n')
    selection = ''
    if osp.exists(osp.join(out_dir, 'selection.md')):
        with open(osp.join(out_dir, 'selection.md')) as f:
            selection = '\n' + f.read()
    with open(osp.join(out_dir, 'results.md'), 'w') as f:
        f.write('# mmkd shapes demo\n\n' + note + intro + table + '\n\n' +
                _not_better(rows) + per_class + '\n'.join(
                    f'![{k}]({v})' for k, v in charts.items()) + '\n' +
                selection)
    return dict(table=table, dir=out_dir, rows=rows, charts=charts)
