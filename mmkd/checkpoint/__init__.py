"""Checkpoints as untrusted input: every checkpoint mmkd (or mmengine, once
``mmkd`` is imported) loads goes through :func:`safe_torch_load`.

- :mod:`.safe_load`: one file, ``torch.load(weights_only=True)`` with an
  allow-list, after format and bounds checks;
- :mod:`.bounds`: what loading may cost, checked before torch reads the
  file (:mod:`.archive`: the zip layout; :mod:`.limits`: the bounds;
  :mod:`.window`: the file read in pieces);
- :mod:`.safe_numpy`: numeric numpy values without numpy's unpickling;
- :mod:`.pickle_scan`: the pickle streamed without executing it
  (:mod:`.pickle_standins`: what it keeps of each value;
  :mod:`.pickle_calls`: what each call may copy);
- :mod:`.download`: URLs, cached under a name no other URL shares;
- :mod:`.resume_state`: what mmengine's resume would execute or delete;
- :mod:`.schemes`: mmengine's checkpoint schemes routed through the above.
"""
from .download import load_url
from .errors import CheckpointFormatError, UnsafeCheckpointError
from .resume_state import BEST_CKPT_KEY, sanitize_runner_state
from .safe_load import safe_globals, safe_torch_load
from .schemes import checkpoint_purpose, register_safe_checkpoint_loaders

__all__ = [
    'BEST_CKPT_KEY', 'CheckpointFormatError', 'UnsafeCheckpointError',
    'checkpoint_purpose', 'load_url', 'register_safe_checkpoint_loaders',
    'safe_globals', 'safe_torch_load', 'sanitize_runner_state'
]
