from . import earlier_names  # noqa: F401  (old configs' type names)
from .critic import Critic
from .detection_distiller import DetectionDistiller
from .frozen_teacher import TeacherRun
from .single_teacher_distiller import SingleTeacherDistiller
from .weight_schedule import LossWeightSchedule

__all__ = [
    'Critic', 'DetectionDistiller', 'LossWeightSchedule',
    'SingleTeacherDistiller', 'TeacherRun'
]
