from .critic_distiller import CriticDistiller, SegmentationDistiller
from .detection_distiller import DetectionDistiller
from .single_teacher_distiller import SingleTeacherDistiller
from .weight_schedule import LossWeightSchedule

__all__ = [
    'CriticDistiller', 'DetectionDistiller', 'LossWeightSchedule',
    'SegmentationDistiller', 'SingleTeacherDistiller'
]
