from .imitation_mask_generator import (ImitationMaskGenerator,
                                       valid_location_masks)

__all__ = ['ImitationMaskGenerator', 'valid_location_masks']
