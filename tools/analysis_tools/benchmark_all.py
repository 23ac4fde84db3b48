"""Run mmkd's overhead benchmarks and print one table (and write it as JSON).

    python tools/analysis_tools/benchmark_all.py [--out work_dirs/benchmarks.json]

- ``benchmark_skd_step.py``: an SKD step (pixel, pair, holistic) against its
  bound (the student's own train_step, the teacher's forward, the critic
  steps), interleaved in one process;
- ``benchmark_fgfi_step.py``: the imitation region's share of a
  DetectionDistiller step (Faster R-CNN R101-FPN -> R50-FPN, 800x1333, 50
  boxes per image);
- ``benchmark_pair_wise.py``: time and peak memory of both exact pair-wise
  forms at full feature resolution.

Each runs in its own process; their JSON files are kept beside ``--out``.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys

from mmkd.testing import benchmark

HERE = osp.dirname(osp.abspath(__file__))


def run(script: str, out: str, *args: str) -> dict:
    cmd = [sys.executable, osp.join(HERE, script), '--out', out, *args]
    print('$ ' + ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='work_dirs/benchmarks.json')
    parser.add_argument('--fgfi-batch-size', type=int, default=1,
                        help='batch of the timed FGFI step')
    parser.add_argument('--skip', nargs='*', default=[],
                        choices=['skd', 'fgfi', 'pair'])
    args = parser.parse_args()
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    rows, runs = [], {}
    if 'skd' not in args.skip:
        skd = runs['skd'] = run('benchmark_skd_step.py',
                                osp.join(out_dir, 'bench_skd.json'),
                                '--rounds', '10')
        med, cpu = skd['median_s'], skd['derived']['cpu']
        rows += [
            ('SKD step (pixel+pair+holistic), CPU s',
             f"{med['distiller']['cpu']:.3f}", ''),
            ('SKD lower bound, CPU s', f"{med['bound']['cpu']:.3f}", ''),
            ('SKD machinery over the bound',
             f"{100 * cpu['machinery_of_bound']:+.1f}%", '<= 5%'),
            ('SKD loss math over the bound',
             f"{100 * cpu['loss_math_of_bound']:+.1f}%", '')]
    if 'fgfi' not in args.skip:
        fgfi = runs['fgfi'] = run(
            'benchmark_fgfi_step.py', osp.join(out_dir, 'bench_fgfi.json'),
            '--batch-size', str(args.fgfi_batch_size), '--steps', '1',
            '--step-warmup', '1', '--mask-repeats', '3')
        rows += [
            (f"FGFI mask generation, batch {fgfi['mask']['batch_size']}, s",
             f"{fgfi['mask']['seconds']:.2f}", ''),
            (f"FGFI training step, batch {fgfi['settings']['batch_size']}, s",
             f"{fgfi['step']['seconds']:.1f}", ''),
            ('FGFI mask share of the step', f"{100 * fgfi['mask_share']:.2f}%",
             '<= 3%'),
            ('FGFI peak memory, GB',
             f"{fgfi['environment']['peak_rss_gb']:.1f}", '')]
    if 'pair' not in args.skip:
        pair = runs['pair'] = run('benchmark_pair_wise.py',
                                  osp.join(out_dir, 'bench_pair.json'))
        for case in pair['results']:
            name = f"pair-wise {case['map']} {case['method']}: s / peak GB"
            rows.append((name, f"skipped (needs {case['need_gb']:.0f} GB)"
                         if case.get('skipped') else
                         f"{case['time_s']:.2f} / {case['peak_total_gb']:.2f}",
                         '< 2 GB' if case['method'] == 'gram' else ''))
    print('\n' + benchmark.format_table(('measure', 'value', 'target'), rows))
    benchmark.save_json(dict(table=[dict(measure=n, value=v, target=t)
                                    for n, v, t in rows], runs=runs),
                        args.out)
    print(f'\nwritten: {args.out}')


if __name__ == '__main__':
    main()
