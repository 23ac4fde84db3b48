"""Run mmkd's overhead benchmarks and print one table (and write it as JSON).

    python tools/analysis_tools/benchmark_all.py [--out work_dirs/benchmarks.json]

- SKD step (``benchmark_skd_step.py``): one training step with the pixel,
  pair and holistic terms against its lower bound (student fwd/bwd/step +
  teacher forward + discriminator step), interleaved in one process;
- FGFI step (``benchmark_fgfi_step.py``): imitation-mask generation time and
  its share of a DetectionDistiller step (Faster R-CNN R101-FPN -> R50-FPN,
  800x1333, 50 boxes per image);
- pair-wise loss (``benchmark_pair_wise.py``): time and peak memory of both
  exact forms at full feature resolution.

Each runs in its own process; their JSON files are kept beside ``--out``.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
from typing import List

HERE = osp.dirname(osp.abspath(__file__))


def run(script: str, out: str, args: List[str]) -> dict:
    cmd = [sys.executable, osp.join(HERE, script), '--out', out, *args]
    print('$ ' + ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    with open(out) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='work_dirs/benchmarks.json')
    parser.add_argument('--fgfi-batch-size', type=int, default=1,
                        help='batch of the timed FGFI step (the mask share '
                        'is also measured at batch 8)')
    parser.add_argument('--skip', nargs='*', default=[],
                        choices=['skd', 'fgfi', 'pair'])
    args = parser.parse_args()
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    rows, results = [], {}

    if 'skd' not in args.skip:
        skd = run('benchmark_skd_step.py', osp.join(out_dir, 'bench_skd.json'),
                  ['--rounds', '10'])
        med = skd['median_s']
        bound = med['bound']['cpu']
        machinery = (med['distiller']['cpu'] - med['bound+losses']['cpu'])
        rows += [
            ('SKD step (pixel+pair+holistic), CPU s', f"{med['distiller']['cpu']:.3f}", ''),
            ('SKD lower bound, CPU s', f'{bound:.3f}', ''),
            ('SKD machinery over the bound', f'{100 * machinery / bound:+.1f}%', '<= 5%'),
            ('SKD loss math over the bound',
             f"{100 * (med['bound+losses']['cpu'] - bound) / bound:+.1f}%", ''),
        ]
        results['skd'] = skd
    if 'fgfi' not in args.skip:
        fgfi = run('benchmark_fgfi_step.py',
                   osp.join(out_dir, 'bench_fgfi.json'),
                   ['--batch-size', str(args.fgfi_batch_size), '--steps', '1',
                    '--step-warmup', '1', '--mask-repeats', '3'])
        rows += [
            (f"FGFI mask generation, batch {fgfi['mask']['batch_size']}, s",
             f"{fgfi['mask']['seconds']:.2f}", ''),
            (f"FGFI training step, batch {fgfi['settings']['batch_size']}, s",
             f"{fgfi['step']['seconds']:.1f}", ''),
            ('FGFI mask share of the step', f"{100 * fgfi['mask_share']:.2f}%",
             '<= 3%'),
            ('FGFI peak memory, GB',
             f"{fgfi['environment']['peak_rss_gb']:.1f}", ''),
        ]
        results['fgfi'] = fgfi
    if 'pair' not in args.skip:
        pair = run('benchmark_pair_wise.py', osp.join(out_dir,
                                                      'bench_pair.json'), [])
        for case in pair['results']:
            name = f"pair-wise {case['map']} {case['method']}: s / peak GB"
            if case.get('skipped'):
                rows.append((name, f"skipped (needs {case['need_gb']:.0f} GB)",
                             ''))
                continue
            rows.append((
                name, f"{case['time_s']:.2f} / {case['peak_total_gb']:.2f}",
                '< 2 GB' if case['method'] == 'gram' else ''))
        results['pair'] = pair

    width = max(len(r[0]) for r in rows)
    lines = [f"{'measure'.ljust(width)} | value | target",
             f"{'-' * width}-|-------|-------"]
    lines += [f'{name.ljust(width)} | {value} | {target}'
              for name, value, target in rows]
    table = '\n'.join(lines)
    print('\n' + table)
    with open(args.out, 'w') as f:
        json.dump(dict(table=[dict(measure=n, value=v, target=t)
                              for n, v, t in rows], runs=results), f,
                  indent=1)
    print(f'\nwritten: {args.out}')


if __name__ == '__main__':
    main()
