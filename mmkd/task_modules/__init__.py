from .focal_region import FocalRegion
from .imitation_mask_generator import (ImitationMaskGenerator,
                                       valid_location_masks)
from .imitation_region import ImitationRegion

__all__ = ['FocalRegion', 'ImitationMaskGenerator', 'ImitationRegion',
           'valid_location_masks']
