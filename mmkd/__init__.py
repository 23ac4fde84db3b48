"""mmkd: knowledge distillation for dense prediction on OpenMMLab."""
from .version import __version__

__all__ = ['__version__']
