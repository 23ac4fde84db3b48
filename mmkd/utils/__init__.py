from .config_checks import ConfigKeyError, ConfigValueError
from .model_loading import load_model_config, load_weights
from .student_export import (save_student_checkpoint, student_config,
                             student_state_dict)

__all__ = [
    'ConfigKeyError', 'ConfigValueError', 'load_model_config',
    'load_weights', 'save_student_checkpoint', 'student_config',
    'student_state_dict'
]
