"""The test-only tiny configs of a source checkout
(``tests/data/configs/``: tiny PSPNet and Faster R-CNN students and
teachers on generated data), found beside the package as
``mmdet.testing`` finds mmdet's configs."""
import os.path as osp

#: The repository root of a source checkout (the folder above ``mmkd/``).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: The folder of the tiny test configs.
TINY_CONFIGS = osp.join(REPO_ROOT, 'tests', 'data', 'configs')


def tiny_config_path(name: str) -> str:
    """``tests/data/configs/<name>.py`` of the source checkout.

    Raises:
        FileNotFoundError: When mmkd is not run from a source checkout (an
            installed wheel has no tests).
    """
    path = osp.join(TINY_CONFIGS, name + '.py')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path}: no such tiny test config; the tiny configs are in a '
            "source checkout of mmkd (tests/data/configs), not in the "
            'installed package.')
    return path


def tiny_config(name: str):
    """Load ``tests/data/configs/<name>.py`` as an mmengine ``Config``."""
    from mmengine.config import Config
    return Config.fromfile(tiny_config_path(name))
