from .distill_diagnostics_hook import DistillDiagnosticsHook
from .imitation_mask_visualization_hook import ImitationMaskVisualizationHook
from .resumed_run_info_hook import ResumedRunInfoHook
from .student_checkpoint_hook import StudentCheckpointHook
from .teacher_output_cache_hook import TeacherOutputCacheHook

__all__ = [
    'DistillDiagnosticsHook', 'ImitationMaskVisualizationHook',
    'ResumedRunInfoHook', 'StudentCheckpointHook', 'TeacherOutputCacheHook'
]
