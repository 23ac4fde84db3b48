"""Why distillation does (not) help: what each distillation term sends to
the student, measured during training (``mmkd.DistillDiagnosticsHook``)."""
from .connector_norms import connector_norms
from .gradient_probe import compare, gradients, probe_gradients, task_loss
from .history import DiagnosticsHistory
from .measurement import level_labels, measure_step, scalars
from .preserved_state import preserved_state
from .regions import region_stats
from .step_capture import StepCapture
from .verdict import describe_term, suggested_weight, verdict

__all__ = [
    'DiagnosticsHistory', 'StepCapture', 'compare', 'connector_norms',
    'describe_term', 'gradients', 'level_labels', 'measure_step',
    'preserved_state', 'probe_gradients', 'region_stats', 'scalars',
    'suggested_weight', 'task_loss', 'verdict'
]
