"""Time and memory of PairWiseLoss's two exact forms ('gram', 'affinity').

Each case (node map × form) runs in a fresh subprocess, so that its peak
memory is its own. A case times forward + backward of the loss (median of
``--repeats`` runs after ``--warmup`` runs). Its memory is the growth of
the process's peak RSS (``ru_maxrss``) over the peak after the inputs are
built: the memory the loss needs beyond its inputs. The affinity form is
skipped when its ``N'×N'`` matrices would need more than ``--max-gb``.

Example::

    python tools/analysis_tools/benchmark_pair_wise.py \\
        --maps 65x65 128x256 --out work_dirs/benchmark_pair_wise.json
"""
import argparse
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Tuple

GIB = 1024**3
#: N'×N' fp32 matrices alive at the affinity form's peak (A_S - A_T, its
#: gradient and a temporary of the backward): measured 2.85 at 65×65.
AFFINITY_LIVE_MATRICES = 3


def parse_map(text: str) -> Tuple[int, int]:
    """``'128x256'`` -> ``(128, 256)``."""
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'a node map is HxW, e.g. 65x65, found {text!r}')
    return height, width


def affinity_bytes(batch: int, num_nodes: int) -> int:
    """Estimated memory of the affinity form's N'×N' matrices."""
    return AFFINITY_LIVE_MATRICES * batch * num_nodes * num_nodes * 4


def max_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux: KiB units)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_case(args: argparse.Namespace) -> Dict:
    """Run one case in this process (the subprocess side)."""
    import torch

    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    sys.path.insert(0, root)
    from mmkd.models.losses.pair_wise import PairWiseLoss

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    height, width = args.case_map
    student = torch.randn(args.batch, args.student_channels, height, width)
    student.requires_grad_(True)
    teacher = torch.randn(args.batch, args.teacher_channels, height, width)
    loss_fn = PairWiseLoss(node_size=1, method=args.case_method)
    base_rss = max_rss_bytes()

    times: List[float] = []
    value = float('nan')
    for i in range(args.warmup + args.repeats):
        student.grad = None
        start = time.perf_counter()
        loss = loss_fn(student, teacher)
        loss.backward()
        elapsed = time.perf_counter() - start
        value = loss.item()
        del loss
        if i >= args.warmup:
            times.append(elapsed)
    return dict(
        map=f'{height}x{width}',
        nodes=height * width,
        method=args.case_method,
        batch=args.batch,
        student_channels=args.student_channels,
        teacher_channels=args.teacher_channels,
        threads=torch.get_num_threads(),
        time_s=statistics.median(times),
        times_s=times,
        peak_extra_gb=(max_rss_bytes() - base_rss) / GIB,
        peak_total_gb=max_rss_bytes() / GIB,
        inputs_gb=(student.numel() + teacher.numel()) * 4 / GIB,
        loss=value)


def spawn_case(args: argparse.Namespace, size: Tuple[int, int],
               method: str) -> Dict:
    """Run one case in a fresh Python process and return its result."""
    cmd = [
        sys.executable,
        osp.abspath(__file__), '--case-map', f'{size[0]}x{size[1]}',
        '--case-method', method, '--batch',
        str(args.batch), '--student-channels',
        str(args.student_channels), '--teacher-channels',
        str(args.teacher_channels), '--repeats',
        str(args.repeats), '--warmup',
        str(args.warmup), '--threads',
        str(args.threads)
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    if proc.returncode != 0:
        return dict(
            map=f'{size[0]}x{size[1]}',
            nodes=size[0] * size[1],
            method=method,
            error=proc.stderr.strip().splitlines()[-1:]
            or [f'exit code {proc.returncode}'])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def format_table(results: List[Dict]) -> str:
    """A plain-text table of the results."""
    header = (f"{'node map':>9} {'N_nodes':>8} {'method':>9} "
              f"{'time (s)':>9} {'peak extra (GB)':>16} "
              f"{'inputs (GB)':>12} {'loss':>12}")
    lines = [header, '-' * len(header)]
    for r in results:
        head = f"{r['map']:>9} {r['nodes']:>8} {r['method']:>9} "
        if 'skipped' in r:
            lines.append(head + f"skipped: would need {r['need_gb']:.1f} GB "
                         f"(> --max-gb {r['max_gb']:g})")
        elif 'error' in r:
            lines.append(head + f"failed: {' '.join(r['error'])}")
        else:
            lines.append(head + f"{r['time_s']:>9.3f} "
                         f"{r['peak_extra_gb']:>16.3f} "
                         f"{r['inputs_gb']:>12.3f} {r['loss']:>12.6g}")
    return '\n'.join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--maps',
        nargs='+',
        type=parse_map,
        default=[(65, 65), (128, 256)],
        help='node maps HxW (node_size=1: every location is a node)')
    parser.add_argument(
        '--methods',
        nargs='+',
        default=['gram', 'affinity'],
        choices=['gram', 'affinity'])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--student-channels', type=int, default=128)
    parser.add_argument('--teacher-channels', type=int, default=512)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument(
        '--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument(
        '--max-gb',
        type=float,
        default=8.0,
        help="skip the affinity form where its N'xN' matrices need more")
    parser.add_argument('--out', help='write the results as JSON here')
    # Internal: run one case in this process.
    parser.add_argument('--case-map', type=parse_map, help=argparse.SUPPRESS)
    parser.add_argument('--case-method', help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.case_map is not None:
        print(json.dumps(run_case(args)))
        return
    results = []
    for size in args.maps:
        num_nodes = size[0] * size[1]
        for method in args.methods:
            need = affinity_bytes(args.batch, num_nodes) / GIB
            if method == 'affinity' and need > args.max_gb:
                result = dict(
                    map=f'{size[0]}x{size[1]}',
                    nodes=num_nodes,
                    method=method,
                    skipped=True,
                    need_gb=need,
                    max_gb=args.max_gb)
                print(
                    f"{result['map']} affinity skipped: would need "
                    f'{need:.1f} GB',
                    flush=True)
            else:
                result = spawn_case(args, size, method)
                print(f"{result['map']} {method} done", flush=True)
            results.append(result)
    print(f'batch {args.batch}, C_s {args.student_channels}, '
          f'C_t {args.teacher_channels}, forward + backward, median of '
          f'{args.repeats} (after {args.warmup} warm-up), CPU')
    print(format_table(results))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(
                dict(
                    config=dict(
                        batch=args.batch,
                        student_channels=args.student_channels,
                        teacher_channels=args.teacher_channels,
                        repeats=args.repeats,
                        warmup=args.warmup,
                        max_gb=args.max_gb),
                    results=results),
                f,
                indent=2)
        print(f'written to {args.out}')


if __name__ == '__main__':
    main()
