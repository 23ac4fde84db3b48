"""Where FGFI's imitation signal goes in the demo's detection student: the
measurements behind projects/shapes_demo/docs/detection_setting.md.

    python projects/shapes_demo/diagnose_fgfi.py
        [--work-dir work_dirs/shapes_demo] [--variant imitation]
        [--every 20] [--seed 1000] [--train-scenes 200] [--skip-teacher]

1. **The teacher on its training scenes against val**: its bbox mAP on the
   first ``--train-scenes`` training scenes and on the val split (does it
   generalise, or did it memorise what it would teach?).
2. **The imitation term during training**: the variant ``--variant``
   trains with its config's settings (selection seed ``--seed``, scored on
   val) while, every ``--every`` iterations, the script takes the gradient
   of the task loss (RPN and RoI losses) and of the imitation term with
   respect to each of the student's FPN outputs, and prints per level:
   their norm ratio ``‖g_imit‖ / ‖g_task‖`` and cosine; the adaptation
   layer's weight norm; the share of a level's locations that each region
   covers (I: the imitation mask of the variant's generator; G: the cells
   of the ground-truth boxes; F: every location inside the image) and the
   share of the squared teacher-student difference ``Σ_c (f_adap(s) -
   t)²`` inside it; the share of the teacher's squared feature that is
   negative (what an adaptation layer ending in ReLU cannot produce) and the
   share of adapted locations the ReLU zeroes.

Needs a demo work dir with the trained detection teacher and pretraining
stage (``run_demo.py --tasks det``). Writes
``<work-dir>/diagnose_fgfi/<variant>.json`` (every measured iteration and
level).
"""
import argparse
import contextlib
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from shapes_demo.tasks import CONFIGS, TASKS, config_iters  # noqa: E402

#: The regions whose coverage is measured, as ImitationRegion names them.
REGIONS = dict(I='imitation', G='gt', F='full')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/shapes_demo')
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


def teacher_map(work: str, checkpoint: str, ann_file: str,
                img_dir: str) -> float:
    """The teacher's bbox mAP (percent) on the scenes of ``ann_file``."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from shapes_demo.stage_run import close_logger
    task = next(t for t in TASKS if t.name == 'det')
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
class ImitationProbe:
    """Measures, on every ``every``-th training step of a distiller, the
    task and distillation gradients at the student tap of the loss
    ``loss_name`` and where each region lies.

    Used as a context manager: it wraps the distiller class's ``loss`` and
    ``distill_step`` while training runs, and restores them after.

    Args:
        every (int): Measure every this many steps (the first included).
        mask_generator (dict): The imitation-mask generator of region I.
        loss_name (str, optional): The distillation loss measured; None:
            the sum of all of them, at the student tap of the first (FGD,
            PKD, MGD: every loss taps the FPN outputs).
    """

    def __init__(self, every: int, mask_generator: dict,
                 loss_name: Optional[str] = 'imitation') -> None:
        self.every = every
        self.mask_generator = mask_generator
        self.loss_name = loss_name
        self.rows: List[dict] = []
        self.steps = 0
        self._current = None
        self._regions = None

    def __enter__(self) -> 'ImitationProbe':
        from mmkd.models.distillers import SingleTeacherDistiller
        self._cls = SingleTeacherDistiller
        self._loss = SingleTeacherDistiller.loss
        self._distill_step = SingleTeacherDistiller.distill_step
        probe = self

        def distill_step(distiller, inputs, data_samples):
            if probe._measuring():
                route = distiller.loss_routes[probe._measured(distiller)]
                probe._current = dict(
                    student=list(distiller.student_taps[route['student']]),
                    teacher=list(distiller.teacher_taps[route['teacher']]),
                    inputs=inputs, data_samples=data_samples)
            return probe._distill_step(distiller, inputs, data_samples)

        def loss(distiller, inputs, data_samples):
            losses = probe._loss(distiller, inputs, data_samples)
            if probe._current is not None:
                probe._measure(distiller, losses)
                probe._current = None
            probe.steps += 1
            return losses

        SingleTeacherDistiller.distill_step = distill_step
        SingleTeacherDistiller.loss = loss
        return self

    def _measured(self, distiller) -> str:
        """The loss whose route gives the measured tap."""
        return self.loss_name or next(iter(distiller.loss_routes))

    def __exit__(self, *exc) -> None:
        self._cls.loss = self._loss
        self._cls.distill_step = self._distill_step

    def _measuring(self) -> bool:
        return self.steps % self.every == 0

    def _region_masks(self, distiller, sizes, data_samples, input_size,
                      device) -> Dict[str, list]:
        """Per region name, its ``(N, H_l, W_l)`` masks per level."""
        from mmkd.task_modules import ImitationRegion
        if self._regions is None:
            # the student's own RPN anchors (a distiller without mask_tap
            # builds no region of its own)
            anchors = distiller.student.rpn_head.prior_generator
            self._regions = {
                short: ImitationRegion(
                    region, self.mask_generator if region == 'imitation'
                    else None, anchors if region == 'imitation' else None)
                for short, region in REGIONS.items()}
        boxes = [s.gt_instances.bboxes for s in data_samples]
        shapes = [s.metainfo['img_shape'] for s in data_samples]
        return {short: region(boxes, sizes, shapes, input_size, device)
                for short, region in self._regions.items()}

    def _measure(self, distiller, losses: dict) -> None:
        import torch
        import torch.nn.functional as F
        current = self._current
        students, teachers = current['student'], current['teacher']
        # the student's own losses, summed as mmengine sums them
        task, _ = distiller.parse_losses(
            {k: v for k, v in losses.items() if not k.startswith('distill')})
        if self.loss_name is None:
            imitation = sum(v for k, v in losses.items()
                            if k.startswith('distill.loss_'))
        else:
            imitation = losses[f'distill.loss_{self.loss_name}']
        # a level a loss does not reach gets a zero gradient
        g_task = torch.autograd.grad(task, students, retain_graph=True,
                                     allow_unused=True,
                                     materialize_grads=True)
        g_imit = torch.autograd.grad(imitation, students, retain_graph=True,
                                     allow_unused=True,
                                     materialize_grads=True)
        name = self._measured(distiller)
        route = distiller.loss_routes[name]
        connectors = getattr(distiller.connectors, 'module',
                             distiller.connectors)
        connector = (connectors[route['connector']]
                     if route['connector'] is not None else None)
        with torch.no_grad():
            adapted = [s.detach() for s in students]
            if connector is not None:
                adapted = list(connector(adapted))
        masks = self._region_masks(
            distiller, [tuple(s.shape[-2:]) for s in students],
            current['data_samples'], current['inputs'].shape[-2:],
            students[0].device)
        weight = distiller.distill_losses[name].loss_weight
        for level, (s, t, a) in enumerate(zip(students, teachers, adapted)):
            gt_, gi = g_task[level], g_imit[level]
            t = t.float()
            row = dict(
                step=self.steps, level=level, weight=weight,
                task_grad=gt_.norm().item(), imit_grad=gi.norm().item(),
                cos=F.cosine_similarity(gt_.flatten(), gi.flatten(),
                                        dim=0).item(),
                teacher_negative=(t.clamp(max=0).pow(2).sum() /
                                  t.pow(2).sum()).item())
            if connector is not None:
                row.update(adapter_norm=_layer_norm(connector, level),
                           adapted_zero=(a == 0).float().mean().item())
            # the difference is measured where the adapted student has the
            # teacher's channels (a loss that aligns inside itself: no)
            diff = ((a - t).pow(2).sum(1) if a.shape == t.shape else None)
            full = masks['F'][level]
            for short, level_masks in masks.items():
                m = level_masks[level]
                row[f'cover_{short}'] = (m.sum() / full.sum().clamp(
                    min=1)).item()
                if diff is not None:
                    row[f'diff_{short}'] = ((diff * m).sum() / (
                        diff * full).sum().clamp(min=1e-12)).item()
            self.rows.append(row)


def _layer_norm(connector, level: int) -> float:
    """The weight norm of the connector's layer of ``level``."""
    layers = connector.layers
    layer = layers[level if len(layers) > 1 else 0]
    conv = layer[0] if hasattr(layer, '__getitem__') else layer
    return conv.weight.norm().item()


def probe_table(rows: List[dict], windows: int = 4) -> str:
    """The probe's rows as a markdown table: per level, the mean of each
    quantity over ``windows`` equal spans of training (the gradient ratio:
    of the mean norms)."""
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
    task = next(t for t in TASKS if t.name == 'det')
    work = osp.abspath(args.work_dir)
    teacher_ckpt = osp.join(work, 'det_teacher', 'teacher.pth')
    if not osp.exists(teacher_ckpt):
        sys.exit(f'{teacher_ckpt} not found: run run_demo.py --tasks det '
                 f'--work-dir {work} first')
    data_root = osp.join(work, 'data', 'det')
    os.environ[task.data_env] = data_root
    os.environ[task.teacher_env] = teacher_ckpt
    if task.pretrain is not None:
        os.environ[task.pretrained_env] = osp.join(
            work, 'det_pretrain', f'iter_{config_iters(task.pretrain)}.pth')
    out = osp.join(work, 'diagnose_fgfi')
    os.makedirs(out, exist_ok=True)
    if not args.skip_teacher:
        subset = _train_subset(data_root, args.train_scenes)
        train = teacher_map(work, teacher_ckpt, subset, 'train/')
        val = teacher_map(work, teacher_ckpt, 'val.json', 'val/')
        print(f'teacher bbox mAP: first {args.train_scenes} training scenes '
              f'{train:.2f}, val {val:.2f}\n', flush=True)
    if args.skip_training:
        return
    config = task.variants[args.variant]
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    generator = cfg.model.get('mask_generator') or dict(
        type='mmkd.ImitationMaskGenerator', psi=0.5)
    # FGFI's variants: the imitation term; the others (D, FGD, PKD, MGD):
    # all their distillation terms together
    loss_name = ('imitation' if 'imitation' in cfg.model.distill_losses
                 else None)
    with ImitationProbe(args.every, dict(generator), loss_name) as probe:
        result = run_stage(task, args.variant, config, config_iters(config),
                           args.seed, osp.join(out, f'{args.variant}_run'),
                           teacher_checkpoint=teacher_ckpt, split='val')
    with open(osp.join(out, f'{args.variant}.json'), 'w') as f:
        json.dump(dict(variant=args.variant, seed=args.seed,
                       val_metric=result.metric, rows=probe.rows), f)
    print(f'{args.variant} (seed {args.seed}): val {task.metric} '
          f'{result.metric:.2f}; measured every {args.every} steps, mean '
          'per quarter of training:\n')
    print(probe_table(probe.rows))
    print('\n(‖g‖: gradient norms at the FPN output of the level; cover: '
          "share of the level's locations inside the image; diff: share of "
          'Σ_c (f_adap(s) − t)² inside the region; teacher² < 0: share of '
          "the teacher's squared feature that is negative)")


if __name__ == '__main__':
    main()
