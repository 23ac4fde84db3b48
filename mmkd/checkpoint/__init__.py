"""Checkpoints as untrusted input: every checkpoint mmkd (or mmengine, once
``mmkd`` is imported) loads goes through :func:`safe_torch_load`.

- :mod:`.safe_load`: one file, unpickled in a separate process;
- :mod:`.isolation`: that process, started and waited for
  (:mod:`.loader_child`: what it runs; :mod:`.sandbox`: the limits it puts
  on itself; :mod:`.limits`: their values; :mod:`.allow_list`,
  :mod:`.safe_numpy`: what the pickle may name; :mod:`.zip_layout`: the zip
  directory checked);
- :mod:`.wire`: the plain tagged data it returns (:mod:`.encode` writes it,
  :mod:`.decode` builds the result with bounds);
- :mod:`.download`: URLs, cached under a name no other URL shares;
- :mod:`.resume_state`: what mmengine's resume would execute or delete;
- :mod:`.schemes`: mmengine's checkpoint schemes routed through the above.
"""
from .allow_list import safe_globals
from .download import load_url
from .errors import CheckpointFormatError, UnsafeCheckpointError
from .resume_state import BEST_CKPT_KEY, sanitize_runner_state
from .safe_load import safe_torch_load
from .schemes import checkpoint_purpose, register_safe_checkpoint_loaders

__all__ = [
    'BEST_CKPT_KEY', 'CheckpointFormatError', 'UnsafeCheckpointError',
    'checkpoint_purpose', 'load_url', 'register_safe_checkpoint_loaders',
    'safe_globals', 'safe_torch_load', 'sanitize_runner_state'
]
