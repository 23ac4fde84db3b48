"""Keep a run resumed into a new work dir from deleting the old run's files."""
import logging
import os.path as osp

from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

from mmkd.registry import HOOKS
from mmkd.checkpoint import BEST_CKPT_KEY


@HOOKS.register_module()
class ResumedRunInfoHook(Hook):
    """Forget the old run's best-checkpoint paths when a run is resumed into
    another folder.

    A resumed message hub holds ``best_ckpt`` (or ``best_ckpt_<metric>``):
    the path of the resumed run's best checkpoint. mmengine's
    ``CheckpointHook`` deletes that file as "the previous best" as soon as it
    saves a new best, wherever the file is. When a user resumes
    ``old/iter_N.pth`` with ``--work-dir new`` (to branch a run, or to keep
    the old one), the first new best would delete ``old/best_*.pth``.

    Before training (ahead of ``CheckpointHook``, which reads the hub in its
    own ``before_train``), this hook removes every ``best_ckpt*`` entry that
    does not name a file in the folder the runner saves checkpoints to. The
    best score stays: a new best must still beat the resumed run's best.

    The checkpoint folder is ``work_dir``, or ``out_dir/<work dir's name>``
    when ``default_hooks.checkpoint.out_dir`` is set (as ``CheckpointHook``
    resolves it).
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        folder = self._checkpoint_folder(runner)
        info = runner.message_hub.runtime_info
        for key in [k for k in info if BEST_CKPT_KEY.match(str(k))]:
            path = info[key]
            if isinstance(path, str) and _folder_of(path) == folder:
                continue
            info.pop(key)
            print_log(
                f'Resumed message hub: {key} = {path!r:.200} is not in this '
                f"run's checkpoint folder {folder}; it is forgotten so that "
                'a new best checkpoint does not delete it.',
                logger='current', level=logging.WARNING)

    @staticmethod
    def _checkpoint_folder(runner) -> str:
        """The folder CheckpointHook will save to (its ``before_train``,
        which resolves it, runs after this hook's)."""
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and hook.out_dir is not None:
                name = osp.basename(runner.work_dir.rstrip(osp.sep))
                return _folder_of(f'{str(hook.out_dir).rstrip("/")}/{name}/x')
        return _folder_of(osp.join(runner.work_dir, 'x'))


def _folder_of(path: str) -> str:
    """The folder of a checkpoint path, resolved when it is a local path."""
    folder = path.rsplit('/', 1)[0] if '://' in path else osp.dirname(path)
    return folder if '://' in folder else osp.realpath(folder)
