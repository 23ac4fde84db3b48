from .imitation_mask_generator import (ImitationMaskGenerator,
                                       valid_location_masks)
from .imitation_region import ImitationRegion

__all__ = ['ImitationMaskGenerator', 'ImitationRegion',
           'valid_location_masks']
