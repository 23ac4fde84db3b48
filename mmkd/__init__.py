"""mmkd: knowledge distillation for dense prediction on OpenMMLab."""
from .checkpoint import register_safe_checkpoint_loaders
from .version import __version__

# Every checkpoint loaded through mmengine (load_from, resume, teacher) is
# untrusted input: weights_only=True with an explicit allow-list.
register_safe_checkpoint_loaders()

__all__ = ['__version__']
