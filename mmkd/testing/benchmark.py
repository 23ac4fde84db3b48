"""The harness of mmkd's benchmarks (``tools/analysis_tools/``): timing
(wall clock and process CPU time), interleaved rounds, peak memory, models
built from a config with random weights, and the printed table."""
import copy
import json
import os
import os.path as osp
import platform
import resource
import statistics
import time
from typing import (Any, Callable, Dict, List, Mapping, Optional, Sequence,
                    Tuple)

import torch

#: One timing: ``{'wall': seconds, 'cpu': seconds}``.
Timing = Dict[str, float]


def synchronize(device: Any = 'cpu') -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def time_call(fn: Callable[[], Any], device: Any = 'cpu') -> Timing:
    """Run ``fn`` once; its wall-clock and process CPU time (the steadier
    figure on a shared CPU with one torch thread)."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    synchronize(device)
    return dict(wall=time.perf_counter() - wall,
                cpu=time.process_time() - cpu)


def interleave(variants: Mapping[str, Callable[[], Any]],
               rounds: int,
               warmup: int = 0,
               device: Any = 'cpu',
               log: Callable[[str], Any] = None) -> Dict[str, Dict[str,
                                                                  List]]:
    """Time several variants in turn, the order rotating every round, so that
    a slow phase of a shared machine falls on all of them alike.

    Args:
        variants (Mapping[str, Callable]): Name -> one run of the variant.
        rounds (int): Timed rounds.
        warmup (int): Untimed rounds first.
        device: Synchronised around each run when CUDA.
        log (Callable, optional): Called with a progress line per round.

    Returns:
        dict: name -> ``{'wall': [...], 'cpu': [...]}``, one entry per timed
        round.
    """
    names = list(variants)
    samples = {name: dict(wall=[], cpu=[]) for name in names}
    for i in range(warmup + rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            timing = time_call(variants[name], device)
            if i >= warmup:
                for clock, seconds in timing.items():
                    samples[name][clock].append(seconds)
        if log is not None:
            log(f'round {i + 1}/{warmup + rounds}')
    return samples


def repeat(fn: Callable[[], Any], repeats: int, warmup: int = 0,
           device: Any = 'cpu') -> Dict[str, List[float]]:
    """:func:`interleave` of one variant: ``{'wall': [...], 'cpu':
    [...]}``."""
    return interleave(dict(run=fn), repeats, warmup, device)['run']


def median(samples: Mapping[str, Any]) -> Any:
    """The median of every list in a (nested) dict of timings."""
    if isinstance(samples, Mapping):
        return {k: median(v) for k, v in samples.items()}
    return statistics.median(samples)


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GiB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def peak_gpu_gb(fn: Callable[[], Any], device: Any = 'cpu') -> Any:
    """Run ``fn`` once; the peak GPU memory it allocated, in GiB
    (``torch.cuda.max_memory_allocated`` after a reset), or None when the
    device is not CUDA (``fn`` still runs).

    Args:
        fn (Callable): One run of the measured code.
        device: The device ``fn`` runs on.

    Returns:
        float | None: Peak GiB on CUDA, else None.
    """
    cuda = str(device).startswith('cuda')
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    fn()
    synchronize(device)
    return torch.cuda.max_memory_allocated() / 2**30 if cuda else None


def environment(device: Any = 'cpu') -> Dict[str, Any]:
    """What the figures were measured on."""
    return dict(
        torch=torch.__version__, threads=torch.get_num_threads(),
        cpu=platform.processor() or platform.machine(),
        cuda=(torch.cuda.get_device_name()
              if str(device).startswith('cuda') else None))


def format_table(header: Sequence[str],
                 rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, columns padded to their widest cell."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row):
        return '| ' + ' | '.join(c.ljust(w) for c, w in zip(row, widths)) \
            + ' |'

    rule = '|' + '|'.join('-' * (w + 2) for w in widths) + '|'
    return '\n'.join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def save_json(record: Mapping, path: str) -> None:
    """Write ``record`` as indented JSON, creating the folder."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(record, f, indent=2)


def build_distiller(config: str, device: Any = 'cpu',
                    edit: Callable[[Any], Any] = None,
                    seed: int = 0,
                    optim_wrapper: Optional[Mapping] = None
                    ) -> Tuple[Any, Any, Any]:
    """A config's distiller with random weights (no checkpoint or pretrained
    backbone is downloaded: timings do not depend on the weights), in
    training mode, and its optimizer wrapper.

    Args:
        config (str): A distillation config file.
        device: Where the model goes.
        edit (Callable, optional): ``edit(model_cfg)`` changes the model
            config (a copy, teacher config loaded) before it is built.
        seed (int): Seed of the initialisation.
        optim_wrapper (dict, optional): An optimizer wrapper config instead
            of the config's (e.g. a plain one once ``edit`` removed the
            critic).

    Returns:
        tuple: ``cfg``, the model, the optimizer wrapper.
    """
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, DefaultScope

    import mmkd  # noqa: F401  (registries, safe checkpoint loading)
    from .offline import offline_model_config
    from mmkd.utils.model_loading import load_model_config
    MMLogger.get_current_instance().setLevel('WARNING')  # no init logs
    cfg = Config.fromfile(config)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.teacher = load_model_config(model_cfg.teacher, 'model.teacher')
    # a student given as a config file too, so that its pretrained weights
    # are dropped as well
    model_cfg.student = load_model_config(model_cfg.student, 'model.student')
    model_cfg.teacher_checkpoint = None
    model_cfg = offline_model_config(model_cfg)
    if edit is not None:
        edit(model_cfg)
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        model = MODELS.build(model_cfg)
        model.init_weights()
        model = revert_sync_batchnorm(model).to(device).train()
        optim_wrapper = build_optim_wrapper(
            model, optim_wrapper or cfg.optim_wrapper)
    return cfg, model, optim_wrapper
