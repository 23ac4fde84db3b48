"""Time mmkd's isolated checkpoint loading against plain ``torch.load``,
the start of its loader server, and the refusal of a 3 MB file that
inflates to 3 GB.

    python tools/analysis_tools/benchmark_checkpoint_load.py \\
        --out work_dirs/benchmark_checkpoint_load.json

Two ordinary checkpoints are written to a temporary folder: a ResNet-50
state dict (the architecture's 320 tensors, 25.6 M random float32 values,
about 100 MB) and one of 5,000 small tensors. Each is loaded ``--rounds``
times after ``--warmup`` rounds by two variants, interleaved (the order
rotates every round) so that a slow phase of a shared machine falls on both:

- ``torch.load``: ``torch.load(weights_only=True)`` alone, the floor;
- ``mmkd``: :func:`mmkd.checkpoint.safe_torch_load` (a forked, confined
  loader process per load; plain data and storage bytes back). CPU time
  is this process's only; the loader's is in ``loader CPU``.

The first load of a process also starts the loader server (a Python that
imports torch, once per run): measured in ``--first-rounds`` fresh child
processes. Then the bomb (a real ``torch.save`` file whose ``data.pkl`` is
deflate-compressed and padded after STOP with zeros to 3 GiB) is refused
``--bomb-rounds`` times, with the growth of this process's peak resident
memory.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
from typing import Callable, Dict, List

import torch

from mmkd.checkpoint import safe_torch_load
from mmkd.testing import benchmark
from mmkd.testing.crafted_checkpoints import write_zip_bomb


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--bomb-rounds', type=int, default=5)
    parser.add_argument('--bomb-gib', type=int, default=3,
                        help='what the bomb inflates to, GiB')
    parser.add_argument('--first-rounds', type=int, default=3)
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--first-child', help=argparse.SUPPRESS)
    return parser.parse_args()


def resnet50_state_dict() -> Dict[str, torch.Tensor]:
    """The tensors of a torchvision-style ResNet-50, random values."""
    torch.manual_seed(0)
    state: Dict[str, torch.Tensor] = {}

    def conv_bn(prefix: str, c_in: int, c_out: int, k: int) -> None:
        state[f'{prefix}conv.weight'] = torch.randn(c_out, c_in, k, k)
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            state[f'{prefix}bn.{name}'] = torch.randn(c_out)
        state[f'{prefix}bn.num_batches_tracked'] = torch.tensor(0)

    conv_bn('stem.', 3, 64, 7)
    c_in = 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3),
                                                (64, 128, 256, 512))):
        for block in range(blocks):
            prefix = f'layer{stage + 1}.{block}.'
            conv_bn(prefix + '1.', c_in, width, 1)
            conv_bn(prefix + '2.', width, width, 3)
            conv_bn(prefix + '3.', width, width * 4, 1)
            if block == 0:
                conv_bn(prefix + 'downsample.', c_in, width * 4, 1)
            c_in = width * 4
    state['fc.weight'] = torch.randn(1000, 2048)
    state['fc.bias'] = torch.randn(1000)
    return state


def first_load_child(path: str) -> None:
    """In a fresh process: time the first load (server start included) and
    the second; print them as JSON."""
    import time
    times = []
    for _ in range(2):
        start = time.perf_counter()
        safe_torch_load(path)
        times.append(time.perf_counter() - start)
    print(json.dumps(times))


def bomb_seconds(path: str, rounds: int) -> Dict:
    """Refuse the bomb ``rounds`` times here: the times, the message and
    the growth of this process's peak resident memory."""
    import resource
    import time

    from mmkd.checkpoint import UnsafeCheckpointError

    def peak_kib() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    before, seconds, message = peak_kib(), [], None
    for _ in range(rounds):
        start = time.perf_counter()
        try:
            safe_torch_load(path)
        except UnsafeCheckpointError as e:
            message = str(e).splitlines()[0]
        seconds.append(time.perf_counter() - start)
    return dict(seconds=seconds, message=message,
                peak_rss_growth_bytes=(peak_kib() - before) * 1024)


def mean_std(values: List[float]) -> str:
    """``mean ± std`` in milliseconds."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f'{1e3 * statistics.mean(values):.1f} ± {1e3 * std:.1f}'


def time_loads(path: str, rounds: int, warmup: int) -> Dict[str, Dict]:
    """The two variants on one file, interleaved."""
    variants: Dict[str, Callable[[], object]] = {
        'torch.load': lambda: torch.load(path, map_location='cpu',
                                         weights_only=True),
        'mmkd': lambda: safe_torch_load(path),
    }
    return benchmark.interleave(variants, rounds, warmup)


def main() -> None:
    args = parse_args()
    if args.first_child:
        first_load_child(args.first_child)
        return
    torch.set_num_threads(1)
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            'ResNet-50 state dict': resnet50_state_dict(),
            '5,000 small tensors': {f'layer{i // 20}.conv{i % 20}.weight':
                                    torch.randn(4, 4) for i in range(5000)},
        }
        for name, obj in files.items():
            path = osp.join(tmp, f'ckpt{len(results)}.pth')
            torch.save(obj, path)
            size = os.path.getsize(path)
            del obj
            runs = time_loads(path, args.rounds, args.warmup)
            base, ours = runs['torch.load']['wall'], runs['mmkd']['wall']
            change = statistics.mean(ours) / statistics.mean(base) - 1
            results[name] = dict(bytes=size, runs=runs, change=change)
            for variant, run in runs.items():
                rows.append((f'{name} ({size / 1e6:.1f} MB)', variant,
                             mean_std(run['wall']), mean_std(run['cpu']),
                             f'{100 * change:+.1f}%' if variant == 'mmkd'
                             else ''))
        first = [json.loads(subprocess.run(
            [sys.executable, __file__, '--first-child', path],
            capture_output=True, text=True, check=True).stdout.strip()
            .splitlines()[-1]) for _ in range(args.first_rounds)]
        results['first_load'] = first
        bomb = osp.join(tmp, 'bomb.pth')
        write_zip_bomb(bomb, args.bomb_gib << 30)
        record = bomb_seconds(bomb, args.bomb_rounds)
        record.update(file_bytes=os.path.getsize(bomb))
        results['bomb'] = record
    print(f'checkpoint loading, {args.rounds} interleaved rounds after '
          f'{args.warmup} warm-up, 1 torch thread, files in the page cache '
          '(mean ± std, ms)')
    print(benchmark.format_table(
        ('checkpoint', 'loader', 'wall ms', 'CPU ms', 'mmkd vs torch.load'),
        rows))
    print(f'\nfirst load in a fresh process (5,000 small tensors; loader '
          f'server started): {mean_std([f[0] for f in first])} ms; the '
          f'second: {mean_std([f[1] for f in first])} ms '
          f'({args.first_rounds} processes)')
    print(f"bomb: {record['file_bytes'] / 1e6:.2f} MB file, data.pkl "
          f"inflates to {args.bomb_gib} GiB; refused in "
          f"{mean_std(record['seconds'])} ms ({args.bomb_rounds} rounds); "
          'peak resident memory of this process grew by '
          f"{record['peak_rss_growth_bytes'] / 2**20:.2f} MiB")
    print(f"  {record['message']}")
    if args.out:
        benchmark.save_json(dict(settings=vars(args),
                                 environment=benchmark.environment(),
                                 results=results), args.out)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
