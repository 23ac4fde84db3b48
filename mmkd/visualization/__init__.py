"""Drawing helpers shared by the tools and the visualisation hooks."""
from .imitation_mask import draw_imitation_masks

__all__ = ['draw_imitation_masks']
