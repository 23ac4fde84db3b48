"""Taps: the named module outputs every distiller is built on."""
from .feature_taps import (FeatureTaps, TapRecord, find_module, map_tensors,
                           tensor_leaves)
from .levels import MultiLevel, as_levels, inputs_of_levels

__all__ = [
    'FeatureTaps', 'MultiLevel', 'TapRecord', 'as_levels', 'find_module',
    'inputs_of_levels', 'map_tensors', 'tensor_leaves'
]
