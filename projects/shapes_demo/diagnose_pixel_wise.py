"""How the SKD pixel-wise term's gradient relates to the task loss's, on a
trained segmentation student of the demo: the measurement behind
projects/shapes_demo/docs/segmentation_setting.md, (c).

    python projects/shapes_demo/diagnose_pixel_wise.py [--study]
        [--work-dir work_dirs/shapes_demo] [--student CHECKPOINT]
        [--batches 6] [--quick]

For training batches, through the probe of ``mmkd.DistillDiagnosticsHook``
(``StepCapture`` catches a step of the pixel-wise variant's distiller, with
the trained student and teacher and the term at weight 1; ``gradients``
takes each gradient with ``torch.autograd.grad``), it takes the gradient,
with respect to the student's decode-head logits (N, C, 12, 12), of

- the task loss (mmseg's cross-entropy on the logits upsampled to the labels),
- the pixel-wise term against the teacher's logits,
- the pixel-wise term against an *oracle*: the labels' class fractions in
  each logit cell (what a perfect teacher at the logits' resolution would
  say),

and prints their norms and cosines, overall and by kind of logit cell
(background only, one object class only, mixed: the boundaries).

``--train-oracle`` also trains the pixel-wise variant (its config's weight
and learning rate, selection seed 1000, scored on val) with the oracle in
place of the teacher: if perfect targets at the logits' resolution cost the
student, no teacher can make the term help at that resolution. Needs a demo
work dir with the trained teacher, the pretraining stage and a report run
(``run_demo.py``), or ``--student``; with ``--study``, the study's teacher
and baseline student (seed 1000) at their own schedules
(``preconditions.py --tasks seg``). ``--quick``: the quick budget's models
(a smoke test).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from shapes_demo.study import add_study_arguments, regime  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_study_arguments(parser)
    parser.add_argument('--student', default=None,
                        help='a trained student checkpoint (default: the '
                        "report's baseline student of the lowest seed; "
                        "with --study the preconditions' of seed 1000)")
    parser.add_argument('--quick', action='store_true',
                        help='the quick budget (a smoke test)')
    parser.add_argument('--batches', type=int, default=6)
    parser.add_argument('--train-oracle', action='store_true',
                        help='also train the pixel-wise variant against the '
                        'oracle and print its val mIoU')
    args = parser.parse_args()
    if args.batches < 1:
        parser.error(f'--batches must be at least 1, got {args.batches}')
    return args


def _fractions(logits, samples):
    """Each logit cell's class fractions of the labels, (N, C, h, w)."""
    import torch
    import torch.nn.functional as F
    labels = torch.stack([s.gt_sem_seg.data[0] for s in samples]).long()
    cell = labels.shape[-1] // logits.shape[-1]
    classes = logits.shape[1]
    return F.avg_pool2d(F.one_hot(labels.clamp(max=classes - 1),
                                  classes).permute(0, 3, 1, 2).float(), cell)


def train_oracle(task, work: str, iters: int) -> float:
    """Train the pixel-wise variant with the label oracle as its teacher
    (selection seed, val split); its val metric."""
    from mmkd.models.distillers.single_teacher_distiller import \
        SingleTeacherDistiller
    from mmkd.models.losses.pixel_wise import PixelWiseLoss
    from shapes_demo.protocol import SELECTION_SEED_BASE
    from shapes_demo.stage_run import run_stage
    original = SingleTeacherDistiller.compute_loss

    def oracle_loss(self, name, loss, sources):
        if not isinstance(loss, PixelWiseLoss):
            return original(self, name, loss, sources)
        student = self.student_taps[self.loss_routes[name]['student']]
        fractions = _fractions(student, sources['data_samples'])
        return loss(student, (fractions + 1e-3).log())

    SingleTeacherDistiller.compute_loss = oracle_loss
    try:
        result = run_stage(
            task, 'pixel', task.variants['pixel'], iters,
            SELECTION_SEED_BASE,
            osp.join(work, 'diagnose_pixel_wise', 'oracle_run'),
            teacher_checkpoint=os.environ[task.teacher_env], split='val',
            schedule_from=task.student)
    finally:
        SingleTeacherDistiller.compute_loss = original
    return result.metric


def pixel_distiller(runner, task, student_ckpt: str, teacher_ckpt: str):
    """The pixel-wise variant's distiller (taps: the decode-head logits), its
    term at weight 1, the trained teacher and student loaded, training
    mode."""
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    from mmkd.utils.model_loading import load_model_config
    from shapes_demo.tasks import CONFIGS
    cfg = Config.fromfile(osp.join(CONFIGS, task.variants['pixel'])).model
    # the study's variants name their student's config file
    cfg.student = load_model_config(cfg.student, 'model.student')
    cfg.student.backbone.init_cfg = None
    cfg.teacher_checkpoint = teacher_ckpt
    cfg.distill_losses.pixel.loss_weight = 1.0
    distiller = runner.build_model(cfg)
    load_checkpoint(distiller.student, student_ckpt, map_location='cpu',
                    logger='silent')
    return distiller.train()


def main() -> None:
    args = parse_args()
    import torch

    import mmkd  # noqa: F401  (registries, safe checkpoint loading)
    from mmkd.engine.diagnostics import StepCapture, gradients, task_loss
    from shapes_demo.trained_models import (report_runs, seg_runner,
                                            trained_models)
    _, budget, work = regime(args)
    models = trained_models(work, 'seg', args.study, budget)
    task, teacher_ckpt = models.task, models.teacher
    student_ckpt = args.student or (
        models.baseline_student() if args.study else
        report_runs(work, 'seg', ['student'])[0]['checkpoint'])
    runner = seg_runner(models, 'diagnose_pixel_wise')
    cfg = runner.cfg
    distiller = pixel_distiller(runner, task, student_ckpt, teacher_ckpt)
    pixel = distiller.distill_losses['pixel']
    step = {}

    def measure(capture: StepCapture) -> None:
        """The step's losses and their gradients at the logits."""
        logits = capture.loss_calls['pixel'][0][0]  # as the term got them
        fractions = _fractions(logits, capture.data_samples)
        losses = dict(task=task_loss(capture.losses),
                      teacher=capture.losses['distill.loss_pixel'],
                      oracle=pixel(logits, (fractions + 1e-3).log()))
        edges = capture.tap_edges['logits']
        step.update(
            fractions=fractions,
            task=capture.losses['decode.loss_ce'].item(),
            teacher=losses['teacher'].item(), oracle=losses['oracle'].item(),
            grads={k: gradients(v, edges)[0] for k, v in losses.items()})

    loader = runner.build_dataloader(cfg.train_dataloader)
    torch.manual_seed(0)
    rows, cells = [], {}
    capture = StepCapture(distiller, measure).open()
    try:
        for i, batch in enumerate(loader):
            if i == args.batches:
                break
            distiller(**distiller.data_preprocessor(batch, True),
                      mode='loss')
            fractions, grads = step['fractions'], step['grads']
            row = dict(batch=str(i), task=step['task'],
                       teacher=step['teacher'], oracle=step['oracle'])
            row.update(_gradient_stats(grads, torch.ones_like(
                fractions[:, 0], dtype=torch.bool)))
            rows.append(row)
            pure = fractions.max(1).values > 0.999
            kinds = dict(background=pure & (fractions[:, 0] > 0.5),
                         object=pure & (fractions[:, 0] < 0.5), mixed=~pure)
            for kind, mask in kinds.items():
                cells.setdefault(kind, []).append(
                    _gradient_stats(grads, mask))
    finally:
        capture.close()
    print('| batch | task loss | pixel-wise KL (teacher) | KL (oracle) | '
          '‖g_teacher‖ / ‖g_task‖ | cos(g_task, g_teacher) | '
          'cos(g_task, g_oracle) |')
    print('|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['batch']} | {r['task']:.3f} | {r['teacher']:.3f} | "
              f"{r['oracle']:.3f} | {r['norm_ratio']:.2f} | "
              f"{r['cos_teacher']:.2f} | {r['cos_oracle']:.2f} |")
    print('\nBy kind of logit cell (mean over the batches; shares of the '
          'squared gradient norm; cosines per cell, averaged):\n')
    print('| cells | share of cells | share of ‖g_task‖² | share of '
          '‖g_teacher‖² | cos(g_task, g_teacher) | cos(g_task, g_oracle) |')
    print('|---|---|---|---|---|---|')
    for kind, stats in cells.items():
        mean = {k: sum(s[k] for s in stats) / len(stats) for k in stats[0]}
        print(f"| {kind} | {mean['cells']:.2f} | {mean['task_share']:.2f} | "
              f"{mean['teacher_share']:.2f} | {mean['cell_cos_teacher']:.2f}"
              f" | {mean['cell_cos_oracle']:.2f} |")
    if args.train_oracle:
        models.apply()
        print(f'\npixel-wise variant trained against the oracle: val '
              f'{task.metric} {train_oracle(task, work, models.iters):.2f}')


def _gradient_stats(grads, mask) -> dict:
    """Norm ratio and cosines of the gradients (N, C, h, w) on the cells
    ``mask`` (N, h, w): over the cells as one vector, per cell (averaged),
    and the cells' shares of each gradient's squared norm."""
    import torch.nn.functional as F

    def cells(g):  # (cells, C)
        return g.permute(0, 2, 3, 1)[mask]

    task, teacher, oracle = (cells(grads[k]) for k in
                             ('task', 'teacher', 'oracle'))
    return dict(
        cells=mask.float().mean().item(),
        task_share=(task.square().sum() /
                    grads['task'].square().sum()).item(),
        teacher_share=(teacher.square().sum() /
                       grads['teacher'].square().sum()).item(),
        norm_ratio=(teacher.norm() / task.norm()).item(),
        cos_teacher=F.cosine_similarity(task.flatten(), teacher.flatten(),
                                        dim=0).item(),
        cos_oracle=F.cosine_similarity(task.flatten(), oracle.flatten(),
                                       dim=0).item(),
        cell_cos_teacher=F.cosine_similarity(task, teacher,
                                             dim=1).mean().item(),
        cell_cos_oracle=F.cosine_similarity(task, oracle,
                                            dim=1).mean().item())

if __name__ == '__main__':
    main()
