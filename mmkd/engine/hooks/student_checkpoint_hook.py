"""Write a student-only checkpoint beside every checkpoint mmengine saves."""
import glob
import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmkd.registry import HOOKS
from mmkd.utils.student_export import (save_student_checkpoint,
                                       student_checkpoint_path,
                                       student_config)

STUDENT_CONFIG_NAME = 'student_config.py'


@HOOKS.register_module()
class StudentCheckpointHook(Hook):
    """Beside each checkpoint ``X.pth`` the ``CheckpointHook`` writes, write
    ``X_student.pth`` (state-dict keys exactly those of the plain student,
    plain-typed meta) and, once, ``student_config.py`` (the plain student
    config), so that ``tools/test.py`` of mmseg/mmdet (or ``mim test``) runs
    ``student_config.py --checkpoint X_student.pth`` as it is.

    Student checkpoints whose full checkpoint was removed (``CheckpointHook``
    ``max_keep_ckpts``) are removed too.

    Args:
        write_config (bool): Write ``student_config.py``. Defaults to True.
    """

    priority = 'VERY_LOW'

    def __init__(self, write_config: bool = True) -> None:
        self.write_config = write_config

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # CheckpointHook records the file it is about to write just before
        # calling runner.save_checkpoint.
        target = runner.message_hub.get_info('last_ckpt')
        if target is None or not is_main_process():
            return
        out_dir = osp.dirname(target)
        self._remove_orphans(out_dir, target)
        path = save_student_checkpoint(
            checkpoint['state_dict'],
            student_checkpoint_path(target),
            meta=dict(
                source_checkpoint=osp.basename(target),
                epoch=checkpoint['meta'].get('epoch'),
                iter=checkpoint['meta'].get('iter'),
                dataset_meta=checkpoint['meta'].get('dataset_meta')))
        config_path = osp.join(out_dir, STUDENT_CONFIG_NAME)
        if self.write_config and not osp.exists(config_path):
            student_config(runner.cfg).dump(config_path)
        print_log(f'Saved student checkpoint {path}', logger='current')

    @staticmethod
    def _remove_orphans(out_dir: str, target: str) -> None:
        for path in glob.glob(osp.join(out_dir, '*_student.pth')):
            full = path[:-len('_student.pth')] + '.pth'
            if full != target and not osp.exists(full):
                os.remove(path)
