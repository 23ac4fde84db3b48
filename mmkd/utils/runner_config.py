"""Config preparation shared by ``tools/train.py`` and the demo."""
from mmengine.config import Config
from mmengine.logging import print_log

STUDENT_HOOK = 'mmkd.StudentCheckpointHook'


def is_distillation_config(cfg: Config) -> bool:
    """True when ``cfg.model`` is an mmkd distiller (it has a student)."""
    return 'student' in cfg.get('model', {})


def prepare_config(cfg: Config, amp: bool = False) -> Config:
    """Add what every mmkd training run needs, in place.

    - a :class:`~mmkd.engine.hooks.StudentCheckpointHook` for distillation
      configs (unless the config lists one), so that student-only
      checkpoints are written beside every checkpoint;
    - mixed precision when ``amp``: ``AmpOptimWrapper`` for a single
      optimizer, or for each optimizer of an ``OptimWrapperDict``.

    Args:
        cfg (Config): The training config.
        amp (bool): Turn on automatic mixed precision.

    Returns:
        Config: ``cfg``.
    """
    if is_distillation_config(cfg):
        hooks = list(cfg.get('custom_hooks', []))
        if not any(h.get('type') in (STUDENT_HOOK, 'StudentCheckpointHook')
                   for h in hooks):
            hooks.append(dict(type=STUDENT_HOOK))
            cfg.custom_hooks = hooks
    if amp:
        wrapper = cfg.optim_wrapper
        wrappers = ([wrapper[k] for k in wrapper if isinstance(
            wrapper[k], dict) and 'optimizer' in wrapper[k]]
                    if wrapper.get('constructor') else [wrapper])
        for w in wrappers:
            if w.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
                continue
            if w.get('type', 'OptimWrapper') != 'OptimWrapper':
                raise ValueError(
                    f"--amp: optim_wrapper type {w.get('type')} cannot be "
                    'turned into AmpOptimWrapper; set it in the config.')
            w.type = 'AmpOptimWrapper'
            w.setdefault('loss_scale', 'dynamic')
        print_log('Automatic mixed precision is on.', logger='current')
    return cfg
