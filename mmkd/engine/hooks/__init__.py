from .imitation_mask_visualization_hook import ImitationMaskVisualizationHook
from .student_checkpoint_hook import StudentCheckpointHook

__all__ = ['ImitationMaskVisualizationHook', 'StudentCheckpointHook']
