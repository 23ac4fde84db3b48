"""Where FGFI's imitation signal goes in the demo's detection student: the
measurements behind projects/shapes_demo/docs/detection_setting.md.

    python projects/shapes_demo/diagnose_fgfi.py [--study]
        [--work-dir work_dirs/shapes_demo] [--variant imitation]
        [--every 20] [--seed 1000] [--train-scenes 200] [--skip-teacher]
        [--quick]

1. **The teacher on its training scenes against val**: its bbox mAP on the
   first ``--train-scenes`` training scenes and on the val split (does it
   generalise, or did it memorise what it would teach?).
2. **The imitation term during training**: the variant ``--variant``
   trains with its config's settings (selection seed ``--seed``, scored on
   val) with ``mmkd.DistillDiagnosticsHook`` measuring every ``--every``
   iterations: the gradient of the task loss (RPN and RoI losses) and of
   each distillation term (the imitation term for FGFI's variants) at the
   term's student tap (the FPN outputs), and the script prints, per term
   and level: their norm ratio ``‖g_imit‖ / ‖g_task‖`` and cosine; the
   adaptation layer's weight norm; the share of a level's locations that
   each region covers (I: the imitation mask of the variant's generator;
   G: the cells of the ground-truth boxes; F: every location inside the
   image) and the share of the squared teacher-student difference
   ``Σ_c (f_adap(s) - t)²`` inside it; the share of the teacher's squared
   feature that is negative (what an adaptation layer ending in ReLU
   cannot produce) and the share of adapted locations the ReLU zeroes.

Needs a demo work dir with the trained detection teacher and pretraining
stage (``run_demo.py --tasks det``), or with ``--study`` the study's
(``preconditions.py --tasks det``: its teacher at its own schedule; the
variant then trains for the study student's schedule with its learning-rate
schedule). ``--quick``: the quick budget's models and iterations (a smoke
test). Writes ``<work-dir>/diagnose_fgfi/<variant>.json`` (every measured
iteration and level).
"""
import argparse
import contextlib
import json
import os
import os.path as osp
import sys
from typing import Dict, List

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from shapes_demo.study import add_study_arguments, regime  # noqa: E402
from shapes_demo.tasks import CONFIGS, TASKS  # noqa: E402

#: The regions whose coverage is measured, as ImitationRegion names them.
REGIONS = dict(I='imitation', G='gt', F='full')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_study_arguments(parser)
    parser.add_argument('--quick', action='store_true',
                        help='the quick budget (a smoke test)')
    task = next(t for t in TASKS if t.name == 'det')
    parser.add_argument('--variant', default='imitation',
                        choices=sorted(task.variants),
                        help='the distilled variant trained while measuring')
    parser.add_argument('--every', type=int, default=20,
                        help='measure every this many iterations')
    parser.add_argument('--seed', type=int, default=1000,
                        help='training seed (a selection seed: 1000 and up)')
    parser.add_argument('--train-scenes', type=int, default=200,
                        help="training scenes the teacher is scored on")
    parser.add_argument('--skip-teacher', action='store_true',
                        help="don't score the teacher on train and val")
    parser.add_argument('--skip-training', action='store_true',
                        help="don't train the variant (teacher only)")
    args = parser.parse_args()
    for name in ('every', 'train_scenes'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1, '
                         f'got {getattr(args, name)}')
    if args.seed < 1000:
        parser.error(f'--seed must be a selection seed (1000 and up, never '
                     f'reported), got {args.seed}')
    return args


# ------------------------------------------------------------ the teacher
def _train_subset(data_root: str, scenes: int) -> str:
    """A COCO file of the first ``scenes`` training scenes (next to
    ``train.json``); its name."""
    with open(osp.join(data_root, 'train.json')) as f:
        coco = json.load(f)
    images = coco['images'][:scenes]
    ids = {img['id'] for img in images}
    coco['images'] = images
    coco['annotations'] = [a for a in coco['annotations']
                           if a['image_id'] in ids]
    name = f'train_first{scenes}.json'
    with open(osp.join(data_root, name), 'w') as f:
        json.dump(coco, f)
    return name


def teacher_map(task, work: str, checkpoint: str, ann_file: str,
                img_dir: str) -> float:
    """The teacher's bbox mAP (percent) on the scenes of ``ann_file``
    (``task``: the default run's or the study's detection task)."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from shapes_demo.stage_run import close_logger
    data_root = os.environ[task.data_env]
    cfg = Config.fromfile(osp.join(CONFIGS, task.teacher))
    cfg.test_dataloader.dataset.ann_file = ann_file
    cfg.test_dataloader.dataset.data_prefix = dict(img=img_dir)
    cfg.test_evaluator.ann_file = osp.join(data_root, ann_file)
    cfg.load_from = checkpoint
    cfg.work_dir = osp.join(work, 'diagnose_fgfi', 'teacher_eval')
    cfg.model.init_cfg = None
    os.makedirs(cfg.work_dir, exist_ok=True)
    # pycocotools' tables and the runner's console go to console.log
    with open(osp.join(cfg.work_dir, 'console.log'), 'a') as console, \
            contextlib.redirect_stdout(console):
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
        close_logger(runner)
    return 100 * float(metrics['coco/bbox_mAP'])


# ------------------------------------------------------ the imitation probe
def probe_hook_type() -> str:
    """Register (once) and name :class:`DemoProbeHook`: mmkd's
    ``DistillDiagnosticsHook`` measuring, besides its own figures, what the
    demo's README reports of the FGFI adaptation layer and regions."""
    from mmkd.engine.hooks import DistillDiagnosticsHook
    from mmkd.registry import HOOKS
    if HOOKS.get('DemoProbeHook') is not None:
        return 'mmkd.DemoProbeHook'

    @HOOKS.register_module()
    class DemoProbeHook(DistillDiagnosticsHook):
        """Every ``interval``-th training step (the first included), per
        distillation term and level of its student tap, the hook's
        gradient figures (``‖g_term‖``, ``‖g_task‖``, cosine at the tap)
        and connector weight norms, and on the maps the term compares:
        where each region lies (I: the imitation mask of
        ``mask_generator``; G: the cells of the ground-truth boxes; F:
        every location inside the image) and the share of the squared
        teacher-student difference inside it; the share of the teacher's
        squared feature that is negative and of adapted locations that are
        0. The rows of every run of this process go to :attr:`rows`.

        Args:
            interval (int): Measure every this many steps.
            mask_generator (dict): The imitation-mask generator of region
                I.
        """

        rows: List[dict] = []

        def __init__(self, interval: int, mask_generator: dict) -> None:
            super().__init__(interval)
            self.mask_generator = mask_generator
            self._regions = None
            self._step = 0

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            self._step = runner.iter
            super().before_train_iter(runner, batch_idx, data_batch)

        def measure(self, capture, scale):
            result = super().measure(capture, scale)
            for name, term in result['terms'].items():
                if name in capture.loss_calls:
                    self.rows.extend(self._rows(capture, name, term,
                                                result['connectors']))
            return result

        def _rows(self, capture, name, term, norms) -> List[dict]:
            from mmkd.engine.diagnostics.regions import mask_shares
            from mmkd.taps import as_levels
            distiller = capture.distiller
            args = capture.loss_calls[name][0]
            adapted = as_levels(args[0], 'student')
            teachers = as_levels(args[1], 'teacher')
            connector = distiller.loss_routes[name]['connector']
            masks = self._region_masks(
                distiller, [tuple(a.shape[-2:]) for a in adapted],
                capture.data_samples, capture.inputs.shape[-2:],
                adapted[0].device)
            shares = {short: mask_shares(adapted, teachers, level_masks)
                      for short, level_masks in masks.items()}
            rows = []
            for level, (a, t) in enumerate(zip(adapted, teachers)):
                t = t.detach().float()
                row = dict(
                    term=name, step=self._step, level=level,
                    weight=term['weight'],
                    task_grad=term['task_norm'][level],
                    imit_grad=term['norm'][level], cos=term['cos'][level],
                    teacher_negative=(t.clamp(max=0).pow(2).sum() /
                                      t.pow(2).sum()).item())
                if connector is not None:
                    key = f'{connector}/layer{level}'
                    row.update(adapter_norm=norms.get(key, norms[connector]),
                               adapted_zero=(a == 0).float().mean().item())
                # shares of what lies inside the image (F)
                full = shares['F']
                for short, share in shares.items():
                    row[f'cover_{short}'] = share['cover'][level] / max(
                        full['cover'][level], 1e-12)
                    if share['diff']:
                        row[f'diff_{short}'] = share['diff'][level] / max(
                            full['diff'][level], 1e-12)
                rows.append(row)
            return rows

        def _region_masks(self, distiller, sizes, data_samples, input_size,
                          device) -> Dict[str, list]:
            """Per region name, its ``(N, H_l, W_l)`` masks per level."""
            from mmkd.task_modules import ImitationRegion
            if self._regions is None:
                # the student's own RPN anchors (a distiller without
                # mask_tap builds no region of its own)
                anchors = distiller.student.rpn_head.prior_generator
                self._regions = {
                    short: ImitationRegion(
                        region, self.mask_generator
                        if region == 'imitation' else None,
                        anchors if region == 'imitation' else None)
                    for short, region in REGIONS.items()}
            boxes = [s.gt_instances.bboxes for s in data_samples]
            shapes = [s.metainfo['img_shape'] for s in data_samples]
            return {short: region(boxes, sizes, shapes, input_size, device)
                    for short, region in self._regions.items()}

    return 'mmkd.DemoProbeHook'


def probe_table(rows: List[dict], windows: int = 4) -> str:
    """The probe's rows (of one term) as a markdown table: per level, the
    mean of each quantity over ``windows`` equal spans of training (the
    gradient ratio: of the mean norms)."""
    last = max(r['step'] for r in rows) + 1
    bounds = [round(last * i / windows) for i in range(windows + 1)]
    lines = ['| steps | level | ‖g_imit‖/‖g_task‖ | cos | adapter ‖W‖ | '
             'cover I / G / F | diff in I / G | teacher² < 0 | '
             'adapted = 0 |', '|---|---|---|---|---|---|---|---|---|']
    levels = sorted({r['level'] for r in rows})
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        for level in levels:
            span = [r for r in rows if lo <= r['step'] < hi and
                    r['level'] == level]
            if not span:
                continue

            def mean(key):
                if key not in span[0]:
                    return float('nan')  # not measured for this loss
                return sum(r[key] for r in span) / len(span)

            # the ratio of the mean norms: a step whose task gradient is
            # nearly 0 (the heads' first steps) would dominate a mean ratio
            ratio = mean('imit_grad') / max(mean('task_grad'), 1e-12)
            lines.append(
                f"| {lo}–{hi - 1} | P{level + 2} | {ratio:.3g} | "
                f"{mean('cos'):.2f} | {mean('adapter_norm'):.3g} | "
                f"{mean('cover_I'):.2f} / {mean('cover_G'):.2f} / "
                f"{mean('cover_F'):.2f} | {mean('diff_I'):.2f} / "
                f"{mean('diff_G'):.2f} | {mean('teacher_negative'):.2f} | "
                f"{mean('adapted_zero'):.2f} |")
    return '\n'.join(lines)


def main() -> None:
    args = parse_args()
    from mmengine.config import Config

    import mmkd  # noqa: F401  (registries, safe checkpoint loading)
    from shapes_demo.stage_run import run_stage
    from shapes_demo.trained_models import trained_models
    _, budget, work = regime(args)
    models = trained_models(work, 'det', args.study, budget)
    models.apply()
    task, data_root, teacher_ckpt = (models.task, models.data_root,
                                     models.teacher)
    out = osp.join(work, 'diagnose_fgfi')
    os.makedirs(out, exist_ok=True)
    if not args.skip_teacher:
        subset = _train_subset(data_root, args.train_scenes)
        train = teacher_map(task, work, teacher_ckpt, subset, 'train/')
        val = teacher_map(task, work, teacher_ckpt, 'val.json', 'val/')
        print(f'teacher bbox mAP: first {args.train_scenes} training scenes '
              f'{train:.2f}, val {val:.2f}\n', flush=True)
    if args.skip_training:
        return
    config = task.variants[args.variant]
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    generator = cfg.model.get('mask_generator') or dict(
        type='mmkd.ImitationMaskGenerator', psi=0.5)
    # every distillation term of the variant, each at its own student tap
    hook = dict(type=probe_hook_type(), interval=args.every,
                mask_generator=dict(generator))
    from mmkd.registry import HOOKS
    rows = HOOKS.get('DemoProbeHook').rows
    rows.clear()
    result = run_stage(
        task, args.variant, config, models.iters, args.seed,
        osp.join(out, f'{args.variant}_run'),
        teacher_checkpoint=teacher_ckpt, split='val',
        overrides={'custom_hooks': list(cfg.get('custom_hooks') or []) +
                   [hook]}, schedule_from=task.student)
    with open(osp.join(out, f'{args.variant}.json'), 'w') as f:
        json.dump(dict(variant=args.variant, seed=args.seed,
                       val_metric=result.metric, rows=rows), f)
    print(f'{args.variant} (seed {args.seed}): val {task.metric} '
          f'{result.metric:.2f}; measured every {args.every} steps, mean '
          'per quarter of training:')
    for term in dict.fromkeys(r['term'] for r in rows):
        print(f'\n{term}:\n')
        print(probe_table([r for r in rows if r['term'] == term]))
    print('\n(‖g‖: gradient norms at the output of the level of the '
          "term's student tap (mmkd.DistillDiagnosticsHook); cover: share "
          "of the level's locations inside the image; diff: share of "
          'Σ_c (f_adap(s) − t)² inside the region; teacher² < 0: share of '
          "the teacher's squared feature that is negative)")


if __name__ == '__main__':
    main()
