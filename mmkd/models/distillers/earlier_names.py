"""Earlier registered names of the distillers, kept so that old configs
build: each warns once and names the class to write instead."""
import logging
from typing import Any, Set

from mmengine.logging import print_log

from mmkd.registry import MODELS
from .single_teacher_distiller import SingleTeacherDistiller

#: earlier name -> the class it builds now
EARLIER_NAMES = {'SegmentationDistiller': SingleTeacherDistiller,
                 'CriticDistiller': SingleTeacherDistiller}
_warned: Set[str] = set()


def _builder(earlier: str, cls: type):

    def build(**kwargs: Any) -> Any:
        if earlier not in _warned:
            _warned.add(earlier)
            print_log(
                f"model.type='mmkd.{earlier}' is an earlier name of "
                f"mmkd.{cls.__name__} (a critic is now one of its parts): "
                f"write type='mmkd.{cls.__name__}'.", logger='current',
                level=logging.WARNING)
        return cls(**kwargs)

    build.__name__ = build.__qualname__ = earlier
    build.__doc__ = f'Builds :class:`{cls.__name__}` (``mmkd.{earlier}`` ' \
        'is its earlier name), warning once.'
    return build


for _earlier, _cls in EARLIER_NAMES.items():
    MODELS.register_module(name=_earlier, module=_builder(_earlier, _cls))
