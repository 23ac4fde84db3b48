"""Time one SKD training step (pixel, pair and holistic terms) against the
work it cannot avoid, interleaved in one process.

    python tools/analysis_tools/benchmark_skd_step.py --size 128 --batch 2 \\
        --out work_dirs/benchmark_skd_step.json

Variants, run in turn (the order rotating) for ``--rounds`` after
``--warmup`` rounds, on one batch; medians compared:

- ``distiller``: ``SingleTeacherDistiller.train_step`` with its critic;
- ``bound``: what any SKD step must do, from the models' own code: the
  student's own ``train_step`` (its data preprocessing, task losses,
  backward, optimizer step), the teacher's forward under ``no_grad``, and
  ``n_critic`` critic steps (``HolisticLoss.discriminator_loss``, backward,
  optimizer step);
- ``losses``: each distillation loss, forward and backward, on the tensors
  the distiller's taps recorded (the holistic term: its generator loss).

``machinery = distiller - bound - losses``: taps, routing, connectors
dispatch and the loss dict; the target is at most 5% of the bound. CPU time
with one torch thread (the default) is the steadier figure on a shared
machine, and the one the verdict uses.
"""
import argparse
import copy
import os.path as osp
import sys

import torch

from mmkd.models.distillers.critic import penalty_alpha
from mmkd.models.losses import HolisticLoss
from mmkd.testing import REPO_ROOT, demo_seg_inputs
from mmkd.testing import benchmark

DEFAULT_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'skd', 'skd-all_pspnet-r101-d8_pspnet-r18-d8_4xb2-'
    '40k_cityscapes-512x1024.py')
DEFAULT_TEACHER = 'mmseg::pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py'
TARGET = 0.05


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='an SKD config with pixel, pair and holistic '
                        'terms (default: the PSPNet-R18 skd-all config)')
    parser.add_argument('--teacher', default=DEFAULT_TEACHER,
                        help="the teacher (default PSPNet-R50-D8; 'config' "
                        "keeps the config's)")
    parser.add_argument('--size', type=int, default=128,
                        help='square input side (default 128)')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--n-critic', type=int, default=None,
                        help="critic steps per step (default: the config's)")
    parser.add_argument('--rounds', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (default 1; 0: torch default)')
    parser.add_argument('--out', help='write the results as JSON here')
    return parser.parse_args()


def critic_layout(logit_side: int) -> dict:
    """The official critic when the logits allow it (>= 64), else the
    largest prefix of its layout that fits (2x2 last kernel), keeping the
    self-attention blocks on the last two layers."""
    if logit_side >= 64:
        return {}
    layers = 4
    while layers > 1 and 2 * 2**layers > logit_side:
        layers -= 1
    return dict(conv_channels=(64, 128, 256, 512)[:layers],
                attn_after=tuple(range(max(layers - 2, 0), layers)),
                last_kernel_size=2)


def edit_model(args):
    """The config edit: teacher, input size, n_critic, a critic that fits
    the logits of a ``size`` input (1/8 of it)."""

    def edit(model_cfg):
        if args.teacher != 'config':
            from mmkd.utils.model_loading import load_model_config
            model_cfg.teacher = load_model_config(args.teacher, '--teacher')
            model_cfg.teacher.pretrained = None
        model_cfg.student.data_preprocessor.size = (args.size, args.size)
        if args.n_critic is not None:
            model_cfg.n_critic = args.n_critic
        model_cfg.discriminator.update(critic_layout(args.size // 8))

    return edit


def recorded_taps(model, data: dict) -> dict:
    """Detached copies of every route's student and teacher tensors (and the
    batch's sources), as one distiller forward records them."""
    with model.teacher_taps.recording(), model.student_taps.recording():
        model.run_teacher(data['inputs'], data['data_samples'])
        model.student(**data, mode='loss')
        return {name: (model.student_taps[r['student']].detach().clone(),
                       model.teacher_taps[r['teacher']].detach().clone(),
                       {k: data[v] if v in data else model.tap(v)
                        for k, v in r['extra_inputs'].items()})
                for name, r in model.loss_routes.items()}


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg, model, wrapper = benchmark.build_distiller(args.config,
                                                    edit=edit_model(args))
    holistic = model.distill_losses[model.critic.loss_name]
    num_classes = cfg.model.student.decode_head.num_classes
    raw = demo_seg_inputs(args.batch, args.size, num_classes)
    data = model.data_preprocessor(copy.deepcopy(raw), True)
    taps = recorded_taps(model, data)

    image = data['inputs'] if holistic.condition == 'image' else None

    def bound():
        model.student.train_step(raw, wrapper['student'])
        inputs = model.data_preprocessor(raw, True)['inputs']
        with torch.no_grad():
            logits = model.teacher(inputs, mode='tensor')
        # the critic steps, on the teacher's logits (the student's shape)
        for step in range(model.critic.n_critic):
            with wrapper['discriminator'].optim_context(model.discriminator):
                out = holistic.discriminator_loss(
                    model.discriminator, logits, logits, image,
                    alpha=penalty_alpha(len(logits), step, logits.device))
            wrapper['discriminator'].update_params(out['loss_d'])

    def losses():
        for name, loss in model.distill_losses.items():
            student, teacher, extra = taps[name]
            student = student.clone().requires_grad_()
            if isinstance(loss, HolisticLoss):
                value = loss.generator_loss(model.discriminator, student,
                                            image)
            else:
                value = loss(student, teacher, **extra)
            value.backward()

    samples = benchmark.interleave(
        dict(distiller=lambda: model.train_step(raw, wrapper), bound=bound,
             losses=losses), args.rounds, args.warmup,
        log=lambda line: print(line, file=sys.stderr, flush=True))
    med = benchmark.median(samples)
    derived = {}
    for clock in ('cpu', 'wall'):
        base = med['bound'][clock]
        machinery = med['distiller'][clock] - base - med['losses'][clock]
        derived[clock] = dict(loss_math_of_bound=med['losses'][clock] / base,
                              machinery_s=machinery,
                              machinery_of_bound=machinery / base)
    result = dict(
        config=osp.relpath(args.config, REPO_ROOT), teacher=args.teacher,
        size=args.size, batch=args.batch, n_critic=model.critic.n_critic,
        rounds=args.rounds, warmup=args.warmup,
        environment=benchmark.environment(), median_s=med, samples_s=samples,
        derived=derived, target_machinery_of_bound=TARGET,
        within_target=derived['cpu']['machinery_of_bound'] <= TARGET)
    print(f'SKD step, {args.batch}x3x{args.size}x{args.size}, n_critic '
          f'{model.critic.n_critic}, {torch.get_num_threads()} thread(s), median of '
          f'{args.rounds} interleaved rounds')
    print(benchmark.format_table(
        ('variant', 'CPU (s)', 'CPU min (s)', 'wall (s)'),
        [(name, f"{m['cpu']:.4f}", f"{min(samples[name]['cpu']):.4f}",
          f"{m['wall']:.4f}") for name, m in med.items()]))
    c = derived['cpu']
    print(f"loss math {100 * c['loss_math_of_bound']:.1f}% and machinery "
          f"{100 * c['machinery_of_bound']:+.1f}% of the bound (CPU time); "
          f"machinery <= {100 * TARGET:.0f}%: "
          f"{'yes' if result['within_target'] else 'NO'}")
    if args.out:
        benchmark.save_json(result, args.out)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
