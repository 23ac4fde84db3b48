"""What every mmkd training run adds to its config (hooks, the distributed
wrapper of a distiller with a critic, mixed precision), shared by
``tools/train.py`` and the demo."""
from mmengine.config import Config
from mmengine.logging import print_log

from mmkd.utils.config_checks import ConfigValueError, describe

STUDENT_HOOK = 'mmkd.StudentCheckpointHook'
RESUME_HOOK = 'mmkd.ResumedRunInfoHook'
SEPARATE_DDP = 'MMSeparateDistributedDataParallel'


def is_distillation_config(cfg: Config) -> bool:
    """True when ``cfg.model`` is an mmkd distiller (it has a student)."""
    return 'student' in cfg.get('model', {})


def prepare_config(cfg: Config, amp: bool = False) -> Config:
    """Add what every mmkd training run needs, in place.

    - a :class:`~mmkd.engine.hooks.ResumedRunInfoHook` for every config, so
      that a run resumed into another work dir never deletes the resumed
      run's best checkpoint;
    - a :class:`~mmkd.engine.hooks.StudentCheckpointHook` for distillation
      configs (unless the config lists one), so that student-only
      checkpoints are written beside every checkpoint;
    - for a distiller with a critic (``model.discriminator``), which runs
      its own ``train_step`` with two optimizers: mmengine's
      ``MMSeparateDistributedDataParallel`` as the distributed wrapper
      (unless the config names it already; another wrapper is an error);
    - mixed precision when ``amp``: ``AmpOptimWrapper`` for a single
      optimizer, or for each optimizer of an ``OptimWrapperDict``.

    Args:
        cfg (Config): The training config.
        amp (bool): Turn on automatic mixed precision.

    Returns:
        Config: ``cfg``.
    """
    _add_hook(cfg, RESUME_HOOK)
    if is_distillation_config(cfg):
        _add_hook(cfg, STUDENT_HOOK)
        if cfg.model.get('discriminator') is not None:
            _separate_ddp(cfg)
    if amp:
        wrapper = cfg.optim_wrapper
        wrappers = ({f'optim_wrapper.{k}': wrapper[k] for k in wrapper
                     if isinstance(wrapper[k], dict)
                     and 'optimizer' in wrapper[k]}
                    if wrapper.get('constructor') else
                    {'optim_wrapper': wrapper})
        for key, w in wrappers.items():
            kind = w.get('type', 'OptimWrapper')
            if kind == 'AmpOptimWrapper':
                continue
            if kind != 'OptimWrapper':
                raise ConfigValueError(
                    f'{key}.type', "'OptimWrapper' or 'AmpOptimWrapper' "
                    'with --amp', describe(kind), 'Set a mixed-precision '
                    'wrapper in the config, or train without --amp.')
            w.type = 'AmpOptimWrapper'
            w.setdefault('loss_scale', 'dynamic')
        print_log('Automatic mixed precision is on.', logger='current')
    return cfg


def _add_hook(cfg: Config, name: str) -> None:
    """Append ``dict(type=name)`` to ``cfg.custom_hooks`` unless listed
    (as ``mmkd.X`` or ``X``)."""
    hooks = list(cfg.get('custom_hooks', []))
    if not any(h.get('type') in (name, name.split('.', 1)[1])
               for h in hooks):
        hooks.append(dict(type=name))
        cfg.custom_hooks = hooks


def _separate_ddp(cfg: Config) -> None:
    """Wrap a distiller with a critic in ``MMSeparateDistributedDataParallel``
    for distributed runs: mmengine's default wrapper calls its own training
    step, which would skip the critic's optimizer step."""
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type=SEPARATE_DDP, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        return
    if wrapper.get('type') not in (SEPARATE_DDP, f'mmengine.{SEPARATE_DDP}'):
        raise ConfigValueError(
            'model_wrapper_cfg.type', f"'{SEPARATE_DDP}' for a distiller "
            'with model.discriminator (it steps a student and a critic '
            'optimizer)', describe(wrapper.get('type')),
            f'Remove model_wrapper_cfg (tools/train.py then sets it) or set '
            f'type={SEPARATE_DDP!r}.')


def setup_cpu_distributed(cfg: Config) -> None:
    """Let ``--launcher pytorch`` run on machines without CUDA (gloo).

    mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device``, which a
    CPU build of torch lacks, and wraps models in DDP with ``device_ids``
    that CPU modules refuse. Without CUDA, this initialises the process group
    from torchrun's environment itself (mmengine then skips its own
    ``init_dist``) and builds DDP without device ids. With CUDA it does
    nothing.

    Args:
        cfg (Config): The config; ``cfg.launcher`` is read.
    """
    import torch
    import torch.distributed as dist
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return
    dist_cfg = cfg.get('env_cfg', {}).get('dist_cfg', {})
    backend = dist_cfg.get('backend', 'gloo')
    if backend != 'gloo':
        raise ConfigValueError(
            'env_cfg.dist_cfg.backend', "'gloo' where CUDA is not available",
            describe(backend), "Use backend='gloo' for CPU processes.")
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
