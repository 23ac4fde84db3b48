"""Helpers that build tiny models' data for tests and smoke runs."""
from .tiny_datasets import make_tiny_det_dataset, make_tiny_seg_dataset

__all__ = ['make_tiny_det_dataset', 'make_tiny_seg_dataset']
