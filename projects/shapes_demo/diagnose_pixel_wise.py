"""How the SKD pixel-wise term's gradient relates to the task loss's, on a
trained segmentation student of the demo: the measurement behind the
README's "(c) lr · λ".

    python projects/shapes_demo/diagnose_pixel_wise.py
        [--work-dir work_dirs/shapes_demo] [--student CHECKPOINT]
        [--batches 6]

For training batches it takes the gradient, with respect to the student's
decode-head logits (N, C, 12, 12), of

- the task loss (mmseg's cross-entropy on the logits upsampled to the labels),
- the pixel-wise term against the teacher's logits,
- the pixel-wise term against an *oracle*: the labels' class fractions in
  each logit cell (what a perfect teacher at the logits' resolution would
  say),

and prints their norms and cosines. A cosine near 1 means the term mostly
repeats the task loss's step: at a learning rate already at the edge of
stability it acts as a larger step. Needs a demo work dir with the trained
teacher and a report run (``run_demo.py``), or ``--student``.
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from shapes_demo.stages import CONFIGS, TASKS  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/shapes_demo')
    parser.add_argument('--student', default=None,
                        help='a trained student checkpoint (default: the '
                        "report's baseline student of the lowest seed)")
    parser.add_argument('--batches', type=int, default=6)
    args = parser.parse_args()
    if args.batches < 1:
        parser.error(f'--batches must be at least 1, got {args.batches}')
    return args


def _report_student(work: str) -> str:
    """The checkpoint of the report's first seg baseline student."""
    path = osp.join(work, 'report', 'results.json')
    if not osp.exists(path):
        sys.exit(f'{path} not found: run run_demo.py --tasks seg with this '
                 '--work-dir first (or give --student)')
    with open(path) as f:
        runs = json.load(f)['runs']
    return min((r for r in runs if r['task'] == 'seg'
                and r['role'] == 'student'), key=lambda r: r['seed'])[
                    'checkpoint']


def main() -> None:
    args = parse_args()
    import torch
    import torch.nn.functional as F
    from mmengine.config import Config
    from mmengine.runner import Runner, load_checkpoint

    import mmkd  # noqa: F401  (registries, safe checkpoint loading)
    from mmkd.models.losses.pixel_wise import PixelWiseLoss
    task = next(t for t in TASKS if t.name == 'seg')
    work = osp.abspath(args.work_dir)
    student_ckpt = args.student or _report_student(work)
    teacher_ckpt = osp.join(work, 'seg_teacher', 'teacher.pth')
    for path in (student_ckpt, teacher_ckpt):
        if not osp.exists(path):
            sys.exit(f'{path} not found: run run_demo.py --tasks seg with '
                     f'--work-dir {args.work_dir} first (or give --student)')
    os.environ[task.data_env] = osp.join(work, 'data', 'seg')
    os.environ[task.pretrained_env] = 'unused.pth'  # weights loaded below
    cfg = Config.fromfile(osp.join(CONFIGS, task.student))
    cfg.model.backbone.init_cfg = None
    cfg.work_dir = osp.join(work, 'diagnose_pixel_wise')
    runner = Runner.from_cfg(cfg)
    student = runner.model
    load_checkpoint(student, student_ckpt, map_location='cpu')
    teacher = runner.build_model(Config.fromfile(
        osp.join(CONFIGS, task.teacher)).model)
    load_checkpoint(teacher, teacher_ckpt, map_location='cpu')
    student.train()
    teacher.eval()
    pixel = PixelWiseLoss(loss_weight=1.0)
    loader = runner.build_dataloader(cfg.train_dataloader)
    torch.manual_seed(0)
    rows = []
    for i, batch in enumerate(loader):
        if i == args.batches:
            break
        data = student.data_preprocessor(batch, True)
        inputs, samples = data['inputs'], data['data_samples']
        logits = student.decode_head(student.extract_feat(inputs))
        task_loss = student.decode_head.loss_by_feat(logits,
                                                     samples)['loss_ce']
        with torch.no_grad():
            teacher_logits = teacher.decode_head(teacher.extract_feat(inputs))
        labels = torch.stack([s.gt_sem_seg.data[0] for s in samples]).long()
        cell = labels.shape[-1] // logits.shape[-1]
        classes = logits.shape[1]
        fractions = F.avg_pool2d(
            F.one_hot(labels.clamp(max=classes - 1), classes).permute(
                0, 3, 1, 2).float(), cell)
        losses = dict(task=task_loss,
                      teacher=pixel(logits, teacher_logits),
                      oracle=pixel(logits, (fractions + 1e-3).log()))
        grads = {k: torch.autograd.grad(v, logits, retain_graph=True)[0]
                 .flatten() for k, v in losses.items()}
        rows.append(dict(
            task=losses['task'].item(), teacher=losses['teacher'].item(),
            oracle=losses['oracle'].item(),
            norm_ratio=(grads['teacher'].norm() /
                        grads['task'].norm()).item(),
            cos_teacher=F.cosine_similarity(grads['task'], grads['teacher'],
                                            dim=0).item(),
            cos_oracle=F.cosine_similarity(grads['task'], grads['oracle'],
                                           dim=0).item()))
    print('| batch | task loss | pixel-wise KL (teacher) | KL (oracle) | '
          '‖g_teacher‖ / ‖g_task‖ | cos(g_task, g_teacher) | '
          'cos(g_task, g_oracle) |')
    print('|---|---|---|---|---|---|---|')
    for i, r in enumerate(rows):
        print(f"| {i} | {r['task']:.3f} | {r['teacher']:.3f} | "
              f"{r['oracle']:.3f} | {r['norm_ratio']:.2f} | "
              f"{r['cos_teacher']:.2f} | {r['cos_oracle']:.2f} |")


if __name__ == '__main__':
    main()
