from .detection_distiller import DetectionDistiller
from .segmentation_distiller import SegmentationDistiller
from .single_teacher_distiller import SingleTeacherDistiller
from .weight_schedule import LossWeightSchedule

__all__ = [
    'DetectionDistiller', 'LossWeightSchedule', 'SegmentationDistiller',
    'SingleTeacherDistiller'
]
