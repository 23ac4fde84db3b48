"""SKD and FGFI training steps against their bound, in fp32, with ``--amp``
and with a bf16 teacher; peak GPU memory. The benchmark table of
tools/gpu_check.sh.

    python tools/gpu_check_benchmark.py [--device cuda] [--steps 5]
        [--settings fp32 amp bf16-teacher] [--out work_dirs/gpu_bench.json]

For each config (default: SKD all terms, PSPNet-R101 -> R18, 512x1024 x2;
FGFI and FGFI-D, Faster R-CNN R101-FPN -> R50-FPN, 800x1333 x2; random
weights) and each setting, alternating for ``--steps`` rounds after
``--warmup`` rounds on one random batch, medians:

- ``step``: the distiller's ``train_step`` (as ``tools/train.py`` builds
  it: ``prepare_config``, ``--amp`` -> AmpOptimWrapper fp16);
- ``bound``: what any such step must do, from the models' own code: the
  student's own ``train_step`` with the same optimizer wrapper, the
  teacher's forward under ``no_grad`` (in the setting's precision) and, for
  SKD, the critic steps (``HolisticLoss.discriminator_loss``, backward,
  optimizer step) on the distiller's logit shapes;
- peak memory (``torch.cuda.max_memory_allocated``) of each;
- ``vs fp32 bound``: the step against the fp32 setting's bound (what
  ``--amp`` or a bf16 teacher buy against plain fp32 training).

Settings: ``fp32``; ``amp`` (both run under the AmpOptimWrapper's fp16
autocast; mmengine refuses it without an accelerator, so on CPU it is
reported as skipped); ``bf16-teacher`` (``model.teacher_precision='bf16'``,
the student in fp32).
"""
import argparse
import copy
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from gpu_check_steps import HERE, build  # noqa: E402

from mmkd.testing.benchmark import (environment, interleave,  # noqa: E402
                                    median, peak_gpu_gb, save_json)

CONFIGS = {
    'skd-all': ('configs/skd/skd-all_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_'
                'cityscapes-512x1024.py'),
    'fgfi': ('configs/fgfi/fgfi_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_'
             '1x_coco.py'),
    'fgfi-d': ('configs/fgfi/fgfi-d_faster-rcnn-r101-fpn_faster-rcnn-r50-'
               'fpn_1x_coco.py'),
}
SETTINGS = ('fp32', 'amp', 'bf16-teacher')


def make_bound(model, optim_wrapper, data):
    """The bound's step (see the module doc)."""
    from mmengine.optim import OptimWrapperDict
    split = isinstance(optim_wrapper, OptimWrapperDict)
    student = optim_wrapper['student'] if split else optim_wrapper
    critic = model.critic.loss_name if model.critic else None
    shapes = {}
    if critic:
        route = model.loss_routes[critic]
        for side, taps in (('student', model.student_taps),
                           ('teacher', model.teacher_taps)):
            module = taps.model.get_submodule(taps.paths[route[side]])
            module.register_forward_hook(
                lambda m, a, out, s=side: shapes.__setitem__(s, out.shape))

    def bound():
        model.student.train_step(copy.deepcopy(data), student)
        pre = model.data_preprocessor(copy.deepcopy(data), True)
        with student.optim_context(model.student):
            model.run_teacher(pre['inputs'], pre['data_samples'])
        if critic:
            holistic = model.distill_losses[critic]
            device = pre['inputs'].device
            s = torch.randn(shapes['student'], device=device)
            t = torch.randn(shapes['teacher'], device=device)
            for step in range(model.critic.n_critic):
                with optim_wrapper['discriminator'].optim_context(
                        model.discriminator):
                    out = holistic.discriminator_loss(
                        model.discriminator, s, t, pre['inputs'])
                optim_wrapper['discriminator'].update_params(out['loss_d'])

    return bound


def run(name, setting, args):
    path = osp.join(HERE, CONFIGS[name])
    cfg, model, optim_wrapper, data, size, batch = build(
        path, args.device, setting == 'amp', args.size_scale,
        args.batch_size)
    if setting == 'bf16-teacher':
        model.teacher_run.precision = 'bf16'
    bound = make_bound(model, optim_wrapper, data)

    def step():
        model.train_step(copy.deepcopy(data), optim_wrapper)

    step()  # records the logit shapes the bound's critic step uses
    peaks = dict(step=0.0, bound=0.0)

    def with_peak(name, fn):
        def call():
            peak = peak_gpu_gb(fn, args.device)
            if peak is not None:
                peaks[name] = max(peaks[name], peak)
        return call

    timings = interleave(
        dict(step=with_peak('step', step), bound=with_peak('bound', bound)),
        args.steps, args.warmup, args.device)
    samples = {k: v['wall'] for k, v in timings.items()}
    med = median(samples)
    return dict(config=CONFIGS[name], setting=setting,
                input=f'{size[0]}x{size[1]}x{batch}', median_s=med,
                samples_s=samples, overhead=med['step'] / med['bound'] - 1,
                peak_gb=peaks if args.device == 'cuda' else None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--configs', nargs='+', default=list(CONFIGS),
                        choices=list(CONFIGS))
    parser.add_argument('--settings', nargs='+', default=list(SETTINGS),
                        choices=SETTINGS)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--batch-size', type=int,
                        help="default: each config's batch per GPU (2)")
    parser.add_argument('--size-scale', type=float, default=1.0,
                        help='scale the input sizes (a CPU dry run; the SKD '
                        'critic needs >= 512x512 inputs)')
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args()
    import mmkd  # noqa: F401  (registries)
    rows, failed = [], []
    print(f"{'config':10} {'setting':13} {'input':14} {'step ms':>9} "
          f"{'bound ms':>9} {'over':>7} {'vs fp32 bound':>13} "
          f"{'peak GB step/bound':>19}")
    fp32_bound = {}
    for name in args.configs:
        for setting in args.settings:
            try:
                row = run(name, setting, args)
            except AssertionError as e:
                if setting == 'amp' and args.device == 'cpu':
                    print(f'{name:10} {setting:13} skipped: {e}')
                    continue
                raise
            except Exception as e:  # noqa: BLE001  (report every case)
                failed.append((name, setting))
                print(f'{name:10} {setting:13} FAILED: '
                      f'{type(e).__name__}: {e}', flush=True)
                continue
            rows.append(row)
            med, peak = row['median_s'], row['peak_gb']
            if setting == 'fp32':
                fp32_bound[name] = med['bound']
            row['vs_fp32_bound'] = (med['step'] / fp32_bound[name] - 1
                                    if name in fp32_bound else None)
            versus = (f"{row['vs_fp32_bound']:+13.1%}"
                      if name in fp32_bound else f"{'-':>13}")
            memory = (f"{peak['step']:8.2f} /{peak['bound']:7.2f}"
                      if peak else f"{'-':>19}")
            print(f"{name:10} {setting:13} {row['input']:14} "
                  f"{med['step'] * 1e3:9.1f} {med['bound'] * 1e3:9.1f} "
                  f"{row['overhead']:+7.1%} {versus} {memory}", flush=True)
            if args.device == 'cuda':
                torch.cuda.empty_cache()
            save(rows, args)  # each row as it comes: a timeout keeps them
    save(rows, args)
    return 1 if failed else 0


def save(rows, args) -> None:
    if args.out:
        env = environment(args.device)
        save_json(dict(device=env['cuda'] or 'cpu', environment=env,
                       rows=rows, torch=torch.__version__), args.out)


if __name__ == '__main__':
    sys.exit(main())
