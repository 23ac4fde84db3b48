"""The GPU check's one JSON: what tools/gpu_check.sh measured, gathered from
its checks' logs.

    python tools/gpu_check_report.py --checks CHECKS.tsv --logs DIR
        --out gpu_check.json [--budget-s 480] [--total-s 312]

- ``checks``: one entry per check of the TSV (name, PASS/FAIL/SKIP, seconds,
  its time limit, a note);
- ``steps``: per step check (``steps``, ``steps_amp``, ``ddp``), one entry per
  config the step driver reported (input, step seconds, peak GPU memory,
  loss, or the failure), from ``DIR/<check>.log``;
- ``benchmark``: ``DIR/benchmark.json`` of tools/gpu_check_benchmark.py;
- ``peak_gpu_gb``: the largest peak memory of any step or benchmark row;
- ``environment``: the GPU, torch, CUDA and the OpenMMLab versions found.
"""
import argparse
import json
import os.path as osp
import re
import sys

STEP_CHECKS = ('steps', 'steps_amp', 'ddp')
OK = re.compile(r'^OK +(?P<config>\S+): (?P<input>\d+x\d+ x\d+): step '
                r'(?P<step_s>[\d.]+) s(?:, peak (?P<peak_gb>[\d.]+) GB)?, '
                r'loss (?P<loss>\S+)$')
FAIL = re.compile(r'^FAIL (?P<config>\S+):$')


def parse_steps(text: str) -> list:
    """The configs tools/gpu_check_steps.py reported, in its order."""
    rows = []
    for line in text.splitlines():
        ok, fail = OK.match(line), FAIL.match(line)
        if ok:
            row = ok.groupdict()
            row.update(ok=True, step_s=float(row['step_s']),
                       loss=float(row['loss']),
                       peak_gb=(float(row['peak_gb'])
                                if row['peak_gb'] else None))
            rows.append(row)
        elif fail:
            rows.append(dict(config=fail['config'], ok=False))
    return rows


def read_checks(path: str) -> list:
    checks = []
    with open(path) as f:
        for line in f:
            name, status, seconds, limit, note = (
                line.rstrip('\n').split('\t') + [''] * 5)[:5]
            checks.append(dict(name=name, status=status,
                               seconds=int(seconds), limit_s=int(limit or 0),
                               note=note))
    return checks


def environment() -> dict:
    """The versions found; what cannot be imported is named as such."""
    env = {}
    try:
        import torch
        env.update(torch=torch.__version__, cuda=torch.version.cuda,
                   gpu=(torch.cuda.get_device_name(0)
                        if torch.cuda.is_available() else None))
    except Exception as e:  # noqa: BLE001  (report, never fail the report)
        env['torch'] = f'not importable: {e}'
    for name in ('mmengine', 'mmcv', 'mmdet', 'mmseg'):
        try:
            env[name] = __import__(name).__version__
        except Exception as e:  # noqa: BLE001
            env[name] = f'not importable: {e}'
    env['python'] = '%d.%d.%d' % sys.version_info[:3]
    return env


def report(checks: list, logs: str, budget_s=None, total_s=None) -> dict:
    steps = {}
    for name in STEP_CHECKS:
        path = osp.join(logs, f'{name}.log')
        if osp.exists(path):
            with open(path) as f:
                steps[name] = parse_steps(f.read())
    bench_path = osp.join(logs, 'benchmark.json')
    benchmark = None
    if osp.exists(bench_path):
        with open(bench_path) as f:
            benchmark = json.load(f)
    peaks = [r['peak_gb'] for rows in steps.values() for r in rows
             if r.get('peak_gb') is not None]
    for row in (benchmark or {}).get('rows', []):
        peaks += [v for v in (row.get('peak_gb') or {}).values()]
    return dict(passed=all(c['status'] != 'FAIL' for c in checks),
                budget_s=budget_s, total_s=total_s,
                environment=environment(), checks=checks, steps=steps,
                benchmark=benchmark,
                peak_gpu_gb=max(peaks) if peaks else None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checks', required=True)
    parser.add_argument('--logs', required=True)
    parser.add_argument('--out', required=True)
    parser.add_argument('--budget-s', type=int)
    parser.add_argument('--total-s', type=int)
    args = parser.parse_args()
    record = report(read_checks(args.checks), args.logs, args.budget_s,
                    args.total_s)
    with open(args.out, 'w') as f:
        json.dump(record, f, indent=2)
    print(f'figures in {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
