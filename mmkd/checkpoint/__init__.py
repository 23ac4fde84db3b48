"""Every checkpoint loaded as untrusted input, with :func:`safe_torch_load`
(the modules and bounds: ``docs/checkpoint_safety.md``)."""
from .allow_list import safe_globals
from .errors import CheckpointFormatError, UnsafeCheckpointError
from .safe_load import safe_torch_load
from .schemes import (BEST_CKPT_KEY, checkpoint_purpose, load_url,
                      register_safe_checkpoint_loaders, sanitize_runner_state)

__all__ = [
    'BEST_CKPT_KEY', 'CheckpointFormatError', 'UnsafeCheckpointError',
    'checkpoint_purpose', 'load_url', 'register_safe_checkpoint_loaders',
    'safe_globals', 'safe_torch_load', 'sanitize_runner_state'
]
