"""mmkd's registries, children of mmengine's root registries with scope
``mmkd``.

Because they hang off the same roots as mmseg's and mmdet's, a config whose
``default_scope`` is ``mmseg`` or ``mmdet`` can name ``type='mmkd.X'`` (the
``mmkd`` registry node is imported on first use), and a config built in the
``mmkd`` scope can build stock mmseg/mmdet models through their ``_scope_``.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import Registry

#: Distillers, distillation losses, connectors and discriminators.
MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mmkd', locations=['mmkd.models'])
#: Task modules such as the imitation-mask generator (mmdet's TASK_UTILS tree).
TASK_UTILS = Registry(
    'task util',
    parent=MMENGINE_TASK_UTILS,
    scope='mmkd',
    locations=['mmkd.task_modules'])
#: Hooks: student checkpoints, mask visualisation.
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='mmkd', locations=['mmkd.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='mmkd',
    locations=['mmkd.engine'])
