"""Helpers for tests, benchmarks and smoke runs: random batches as a
dataloader gives them, generated "shapes" datasets (the shapes demo's and
the tiny test ones), the tiny test configs, the tools run as a user runs
them."""
from .demo_inputs import demo_det_inputs, demo_seg_inputs, random_boxes
from .offline import offline_model_config
from .shapes import draw_scene, make_shapes_dataset
from .step_checks import assert_distillation_step
from .tiny_configs import (REPO_ROOT, TINY_CONFIGS, tiny_config,
                           tiny_config_path)
from .tiny_datasets import make_tiny_det_dataset, make_tiny_seg_dataset
from .tools import (load_plain_checkpoint, load_tool_module,
                    load_training_checkpoint, run_tool, train_with_tool)
from .toy_distiller import (ToyScaledModel, hook_runner, measured_step,
                            toy_distiller)

__all__ = [
    'REPO_ROOT', 'TINY_CONFIGS', 'ToyScaledModel', 'assert_distillation_step',
    'demo_det_inputs', 'demo_seg_inputs', 'draw_scene',
    'load_plain_checkpoint', 'load_tool_module', 'load_training_checkpoint',
    'make_shapes_dataset', 'make_tiny_det_dataset', 'make_tiny_seg_dataset',
    'offline_model_config', 'random_boxes',
    'hook_runner', 'measured_step', 'run_tool', 'tiny_config',
    'tiny_config_path', 'toy_distiller', 'train_with_tool'
]
