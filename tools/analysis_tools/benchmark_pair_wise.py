"""Time and memory of PairWiseLoss's two exact forms ('gram', 'affinity').

    python tools/analysis_tools/benchmark_pair_wise.py \\
        --maps 65x65 128x256 --out work_dirs/benchmark_pair_wise.json

Each case (node map x form) runs in a fresh process, so that its peak memory
is its own: forward + backward of the loss, median of ``--repeats`` after
``--warmup`` runs; the memory is the peak resident memory of that process
(``peak_total_gb``) and its growth over the inputs (``peak_extra_gb``). The
affinity form is skipped where its ``N' x N'`` matrices would need more than
``--max-gb``.
"""
import argparse
import json
import subprocess
import sys
from typing import Dict, Tuple

from mmkd.testing import benchmark

#: N' x N' fp32 matrices alive at the affinity form's peak (A_S - A_T, its
#: gradient and a temporary of the backward): measured 2.85 at 65x65.
AFFINITY_LIVE_MATRICES = 3


def parse_map(text: str) -> Tuple[int, int]:
    """``'128x256'`` -> ``(128, 256)``."""
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'a node map is HxW, e.g. 65x65, found {text!r}')
    return height, width


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--maps', nargs='+', type=parse_map,
                        default=[(65, 65), (128, 256)],
                        help='node maps HxW (node_size=1: every location)')
    parser.add_argument('--methods', nargs='+', default=['gram', 'affinity'],
                        choices=['gram', 'affinity'])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--student-channels', type=int, default=128)
    parser.add_argument('--teacher-channels', type=int, default=512)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads (0: default)')
    parser.add_argument('--max-gb', type=float, default=8.0,
                        help="skip the affinity form where its N'xN' "
                        'matrices need more')
    parser.add_argument('--out', help='write the results as JSON here')
    # internal: run one case in this process
    parser.add_argument('--case', nargs=2, metavar=('MAP', 'METHOD'),
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_case(args: argparse.Namespace) -> Dict:
    """One case, in this process (the child's side)."""
    import torch

    from mmkd.models.losses import PairWiseLoss
    if args.threads:
        torch.set_num_threads(args.threads)
    (height, width), method = parse_map(args.case[0]), args.case[1]
    torch.manual_seed(0)
    student = torch.randn(args.batch, args.student_channels, height, width,
                          requires_grad=True)
    teacher = torch.randn(args.batch, args.teacher_channels, height, width)
    loss_fn = PairWiseLoss(node_size=1, method=method)
    base = benchmark.peak_rss_gb()
    values = []

    def step():
        student.grad = None
        loss = loss_fn(student, teacher)
        loss.backward()
        values.append(loss.item())

    runs = benchmark.repeat(step, args.repeats, args.warmup)['wall']
    return dict(map=args.case[0], method=method, time_s=benchmark.median(runs),
                times_s=runs, peak_extra_gb=benchmark.peak_rss_gb() - base,
                peak_total_gb=benchmark.peak_rss_gb(), loss=values[-1])


def main() -> None:
    args = parse_args()
    if args.case:
        print(json.dumps(run_case(args)))
        return
    results, rows = [], []
    shared = [f'--{k.replace("_", "-")}={getattr(args, k)}' for k in (
        'batch', 'student_channels', 'teacher_channels', 'repeats', 'warmup',
        'threads')]
    for height, width in args.maps:
        name = f'{height}x{width}'
        for method in args.methods:
            need = (AFFINITY_LIVE_MATRICES * args.batch *
                    (height * width)**2 * 4 / 2**30)
            if method == 'affinity' and need > args.max_gb:
                result = dict(map=name, method=method, skipped=True,
                              need_gb=need, max_gb=args.max_gb)
                rows.append((name, method, f'skipped: would need {need:.1f} '
                             f'GB (> --max-gb {args.max_gb:g})', '', ''))
            else:
                proc = subprocess.run(
                    [sys.executable, __file__, '--case', name, method,
                     *shared], capture_output=True, text=True)
                if proc.returncode:
                    raise SystemExit(f'{name} {method} failed:\n'
                                     f'{proc.stderr[-3000:]}')
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append((name, method, f"{result['time_s']:.3f}",
                             f"{result['peak_total_gb']:.2f}",
                             f"{result['loss']:.6g}"))
            print(f'{name} {method} done', flush=True)
            results.append(result)
    print(f'batch {args.batch}, C_s {args.student_channels}, C_t '
          f'{args.teacher_channels}, forward + backward, median of '
          f'{args.repeats} (after {args.warmup} warm-up), CPU')
    print(benchmark.format_table(
        ('node map', 'method', 'time (s)', 'peak (GB)', 'loss'), rows))
    if args.out:
        benchmark.save_json(dict(settings=vars(args), results=results),
                            args.out)
        print(f'written to {args.out}')


if __name__ == '__main__':
    main()
