from .feature_taps import FeatureTaps, find_module
from .model_loading import load_model_config, load_weights
from .safe_checkpoint import (CheckpointFormatError, UnsafeCheckpointError,
                              checkpoint_purpose,
                              register_safe_checkpoint_loaders,
                              safe_torch_load)
from .student_export import (save_student_checkpoint, student_config,
                             student_state_dict)

__all__ = [
    'FeatureTaps', 'find_module', 'load_model_config', 'load_weights',
    'CheckpointFormatError', 'UnsafeCheckpointError', 'checkpoint_purpose',
    'register_safe_checkpoint_loaders',
    'safe_torch_load', 'save_student_checkpoint', 'student_config',
    'student_state_dict'
]
