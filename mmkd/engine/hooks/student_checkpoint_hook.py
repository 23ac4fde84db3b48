"""Write a student-only checkpoint beside every checkpoint mmengine saves."""
import functools
import json
import os
import os.path as osp
from typing import List, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmkd.registry import HOOKS
from mmkd.utils.config_checks import ConfigValueError, describe
from mmkd.utils.student_export import (atomic_write, dump_student_config,
                                       save_student_checkpoint,
                                       student_checkpoint_path)

STUDENT_CONFIG_NAME = 'student_config.py'
#: The hook's record of the student checkpoints it wrote in a folder.
RECORD_NAME = '.mmkd_student_checkpoints.json'
STUDENT_SUFFIX = '_student.pth'


@HOOKS.register_module()
class StudentCheckpointHook(Hook):
    """Beside each checkpoint ``X.pth`` the runner saves (``iter_N.pth``,
    ``epoch_N.pth``, ``best_<metric>_iter_N.pth``), write ``X_student.pth``:
    the same weights, with state-dict keys exactly those of the plain student
    and plain-typed meta. Once per run, write ``student_config.py`` (the plain
    student config), so that ``tools/test.py`` of mmseg/mmdet (or ``mim
    test``) runs ``student_config.py --checkpoint X_student.pth`` as it is.

    - mmengine does not tell hooks which file a checkpoint goes to, so the
      hook wraps ``runner.save_checkpoint``: the student checkpoint is written
      right after the full one, into the same folder, from the same state
      dict (:meth:`before_save_checkpoint` receives it).
    - Every file is written atomically (a temporary file, then a rename).
    - The hook only deletes what it wrote: the names of the student
      checkpoints it wrote in a folder are recorded in ``RECORD_NAME`` there.
      When the runner has removed ``X.pth`` (``max_keep_ckpts``, a previous
      best), the recorded ``X_student.pth`` is removed too. Other files,
      such as a user's ``pretrained_student.pth``, are never touched. Nothing
      read from a checkpoint (e.g. the message hub's ``last_ckpt``) decides
      where the hook writes or what it deletes.

    Args:
        write_config (bool): Write ``student_config.py``. Defaults to True.
    """

    priority = 'VERY_LOW'

    def __init__(self, write_config: bool = True) -> None:
        if not isinstance(write_config, bool):
            raise ConfigValueError(
                'write_config', 'True or False', describe(write_config),
                'True writes student_config.py beside the checkpoints.',
                owner='StudentCheckpointHook')
        self.write_config = write_config
        self._checkpoint: Optional[dict] = None
        self._config_written = False

    def before_train(self, runner) -> None:
        self._config_written = False
        save = runner.save_checkpoint
        if getattr(save, 'student_checkpoint_hook', None) is self:
            return

        @functools.wraps(save)
        def save_with_student(out_dir, filename, *args, **kwargs):
            self._checkpoint = None
            result = save(out_dir, filename, *args, **kwargs)
            checkpoint, self._checkpoint = self._checkpoint, None
            if checkpoint is not None and is_main_process():
                self._write(runner, out_dir, filename, checkpoint)
            return result

        save_with_student.student_checkpoint_hook = self
        runner.save_checkpoint = save_with_student

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        self._checkpoint = checkpoint

    def _write(self, runner, out_dir: str, filename: str,
               checkpoint: dict) -> None:
        if '://' in str(out_dir):
            print_log(f'StudentCheckpointHook writes local folders only; no '
                      f'student checkpoint for {out_dir}/{filename}.',
                      logger='current', level=30)
            return
        name = osp.basename(student_checkpoint_path(filename))
        meta = checkpoint.get('meta', {})
        path = save_student_checkpoint(
            checkpoint['state_dict'], osp.join(out_dir, name),
            meta=dict(source_checkpoint=osp.basename(filename),
                      epoch=meta.get('epoch'), iter=meta.get('iter'),
                      dataset_meta=meta.get('dataset_meta')))
        written = self._read_record(out_dir)
        if name not in written:
            written.append(name)
        self._write_record(out_dir, self._remove_orphans(out_dir, written))
        if self.write_config and not self._config_written:
            dump_student_config(runner.cfg,
                                osp.join(out_dir, STUDENT_CONFIG_NAME))
            self._config_written = True
        print_log(f'Saved student checkpoint {path}', logger='current')

    @staticmethod
    def _read_record(out_dir: str) -> List[str]:
        path = osp.join(out_dir, RECORD_NAME)
        if not osp.isfile(path):
            return []
        try:
            with open(path) as f:
                names = json.load(f).get('written', [])
        except (ValueError, AttributeError, OSError):
            print_log(f'{path} is unreadable: starting a new record (student '
                      'checkpoints written before are left in place).',
                      logger='current', level=30)
            return []
        # only plain file names of student checkpoints, never a path
        return [n for n in names if isinstance(n, str) and n == osp.basename(n)
                and n.endswith(STUDENT_SUFFIX) and not n.startswith('.')]

    @staticmethod
    def _write_record(out_dir: str, names: List[str]) -> None:

        def write(tmp: str) -> None:
            with open(tmp, 'w') as f:
                json.dump({'written': names}, f, indent=1)

        atomic_write(osp.join(out_dir, RECORD_NAME), write)

    @staticmethod
    def _remove_orphans(out_dir: str, names: List[str]) -> List[str]:
        """Remove recorded student checkpoints whose full checkpoint is gone;
        return the names still present."""
        kept = []
        for name in names:
            full = osp.join(out_dir, name[:-len(STUDENT_SUFFIX)] + '.pth')
            path = osp.join(out_dir, name)
            if osp.exists(full):
                kept.append(name)
            elif osp.isfile(path):
                os.remove(path)
        return kept
