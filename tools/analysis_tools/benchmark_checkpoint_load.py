"""Time mmkd's safe checkpoint loading before and after the bounds checks,
and measure the refusal of a 3 MB file that inflates to 3 GB.

    python tools/analysis_tools/benchmark_checkpoint_load.py \\
        --out work_dirs/benchmark_checkpoint_load.json

Two ordinary checkpoints are written to a temporary folder: a ResNet-50
state dict (the architecture's 320 tensors, 25.6 M random float32 values,
about 100 MB) and one of 5,000 small tensors (the pickle is most of the
work there: the worst case for a pickle scan). Each is loaded ``--rounds``
times after ``--warmup`` rounds by three variants, interleaved (the order
rotates every round) so that a slow phase of a shared machine falls on all
alike:

- ``torch.load``: ``torch.load(weights_only=True)`` alone, the floor;
- ``before``: mmkd's loader as it was before the bounds checks (a copy of
  its old codec scan, which read the whole ``data.pkl`` member, then
  ``torch.load`` with the allow-list and the numpy rebuild);
- ``after``: :func:`mmkd.checkpoint.safe_torch_load` as it is.

Then the bomb (a real ``torch.save`` file whose ``data.pkl`` is
deflate-compressed and padded after STOP with zeros to 3 GiB) is refused
``--bomb-rounds`` times in a child process, which reports the refusal time
and its peak memory (traced Python allocations and the growth of the
process's peak resident memory). ``--torch-bomb`` also loads the bomb with
torch's own ``weights_only=True`` (tens of seconds and over 3 GB).
"""
import argparse
import io
import json
import os
import os.path as osp
import pickletools
import statistics
import subprocess
import sys
import tempfile
import zipfile
from typing import Callable, Dict, List

import torch

from mmkd.checkpoint import safe_globals, safe_torch_load
from mmkd.checkpoint.safe_numpy import rebuild_numpy
from mmkd.testing import benchmark
from mmkd.testing.crafted_checkpoints import write_zip_bomb


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--bomb-rounds', type=int, default=5)
    parser.add_argument('--bomb-gib', type=int, default=3,
                        help='what the bomb inflates to, GiB')
    parser.add_argument('--torch-bomb', action='store_true',
                        help="also load the bomb with torch's weights_only "
                        'load (slow, over 3 GB)')
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--bomb-child', help=argparse.SUPPRESS)
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


def load_before(path: str) -> object:
    """mmkd's loader as it was before the bounds checks: the old codec scan
    (the whole ``data.pkl`` read into memory, then ``pickletools.genops``),
    then the same load and numpy rebuild."""
    import codecs
    with open(path, 'rb') as f:
        assert zipfile.is_zipfile(f)
        f.seek(0)
        with zipfile.ZipFile(f) as archive:
            streams = [io.BytesIO(archive.read(n)) for n in archive.namelist()
                       if n.endswith('data.pkl')]
        seen = set()
        for stream in streams:
            for _, arg, _ in pickletools.genops(stream):
                if isinstance(arg, str) and arg not in seen:
                    seen.add(arg)
                    if len(arg) <= 40 and '.' not in arg:
                        try:
                            codecs.lookup(arg)
                        except (LookupError, ValueError, TypeError):
                            pass
        f.seek(0)
        with torch.serialization.safe_globals(safe_globals()):
            return rebuild_numpy(torch.load(f, map_location='cpu',
                                            weights_only=True))


def bomb_child(path: str, rounds: int, with_torch: bool) -> None:
    """In a fresh process: refuse the bomb ``rounds`` times; print the
    times, the traced peak and the growth of the peak resident memory as
    JSON."""
    import resource
    import time
    import tracemalloc

    from mmkd.checkpoint import UnsafeCheckpointError

    def peak_kib() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    before = peak_kib()
    tracemalloc.start()
    seconds, message = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        try:
            safe_torch_load(path)
        except UnsafeCheckpointError as e:
            message = str(e).splitlines()[0]
        seconds.append(time.perf_counter() - start)
    record = dict(seconds=seconds,
                  traced_peak_bytes=tracemalloc.get_traced_memory()[1],
                  peak_rss_growth_bytes=(peak_kib() - before) * 1024,
                  message=message)
    tracemalloc.stop()
    if with_torch:
        start, before = time.perf_counter(), peak_kib()
        try:
            torch.load(path, weights_only=True)
            record['torch'] = 'loaded'
        except Exception as e:  # noqa: BLE001  (any failure is the figure)
            record['torch'] = f'{type(e).__name__}: {str(e)[:200]}'
        record['torch_seconds'] = time.perf_counter() - start
        record['torch_peak_rss_growth_bytes'] = (peak_kib() - before) * 1024
    print(json.dumps(record))


def mean_std(values: List[float]) -> str:
    """``mean ± std`` in milliseconds."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f'{1e3 * statistics.mean(values):.1f} ± {1e3 * std:.1f}'


def time_loads(path: str, rounds: int, warmup: int) -> Dict[str, Dict]:
    """The three variants on one file, interleaved."""
    variants: Dict[str, Callable[[], object]] = {
        'torch.load': lambda: torch.load(path, map_location='cpu',
                                         weights_only=True),
        'before': lambda: load_before(path),
        'after': lambda: safe_torch_load(path),
    }
    return benchmark.interleave(variants, rounds, warmup)


def main() -> None:
    args = parse_args()
    if args.bomb_child:
        bomb_child(args.bomb_child, args.bomb_rounds, args.torch_bomb)
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
            path = osp.join(tmp, 'ckpt.pth')
            torch.save(obj, path)
            size = os.path.getsize(path)
            del obj
            runs = time_loads(path, args.rounds, args.warmup)
            before, after = runs['before']['wall'], runs['after']['wall']
            change = statistics.mean(after) / statistics.mean(before) - 1
            results[name] = dict(bytes=size, runs=runs, change=change)
            for variant, run in runs.items():
                rows.append((f'{name} ({size / 1e6:.1f} MB)', variant,
                             mean_std(run['wall']), mean_std(run['cpu']),
                             f'{100 * change:+.1f}%' if variant == 'after'
                             else ''))
        bomb = osp.join(tmp, 'bomb.pth')
        write_zip_bomb(bomb, args.bomb_gib << 30)
        with zipfile.ZipFile(bomb) as archive:
            inflated = archive.getinfo('archive/data.pkl').file_size
        proc = subprocess.run(
            [sys.executable, __file__, '--bomb-child', bomb, '--bomb-rounds',
             str(args.bomb_rounds)] + (['--torch-bomb']
                                       if args.torch_bomb else []),
            capture_output=True, text=True, check=True)
        record = json.loads(proc.stdout.strip().splitlines()[-1])
        record.update(file_bytes=os.path.getsize(bomb), inflated=inflated)
        results['bomb'] = record
    print(f'checkpoint loading, {args.rounds} interleaved rounds after '
          f'{args.warmup} warm-up, 1 torch thread, files in the page cache '
          '(mean ± std, ms)')
    print(benchmark.format_table(
        ('checkpoint', 'loader', 'wall ms', 'CPU ms', 'after vs before'),
        rows))
    print(f"\nbomb: {record['file_bytes'] / 1e6:.2f} MB file, data.pkl "
          f"inflates to {inflated / 2**30:.2f} GiB; refused in "
          f"{mean_std(record['seconds'])} ms ({args.bomb_rounds} rounds); "
          f"traced peak {record['traced_peak_bytes'] / 2**20:.2f} MiB, "
          'peak resident memory grew by '
          f"{record['peak_rss_growth_bytes'] / 2**20:.2f} MiB")
    print(f"  {record['message']}")
    if args.torch_bomb:
        print(f"torch.load(weights_only=True) on it: {record['torch']} after "
              f"{record['torch_seconds']:.1f} s, peak resident memory grew "
              f"by {record['torch_peak_rss_growth_bytes'] / 2**30:.2f} GiB")
    if args.out:
        benchmark.save_json(dict(settings=vars(args),
                                 environment=benchmark.environment(),
                                 results=results), args.out)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
