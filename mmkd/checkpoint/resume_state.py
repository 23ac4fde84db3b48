"""What a resumed checkpoint may not make mmengine do: execute its config or
delete files it names."""
import logging
import os.path as osp
import re
from typing import Any, Optional

from mmengine.logging import print_log

# runtime-info keys that name files CheckpointHook deletes, and their names
BEST_CKPT_KEY = re.compile(r'^best_ckpt(_.+)?$')
_PATH_INFO = {
    BEST_CKPT_KEY: re.compile(r'^best_.+\.pth$'),
    re.compile(r'^last_ckpt$'): re.compile(r'^.+\.pth$'),
}


def sanitize_runner_state(checkpoint: Any, source: Optional[str]) -> Any:
    """Remove, in place, what mmengine's resume would execute or delete:
    ``meta['config']`` (run as Python), ``runtime_info`` ``best_ckpt*``
    (deleted as "the previous best") unless a ``best_*.pth`` beside
    ``source``, ``last_ckpt`` unless a ``.pth`` there, ``keep_ckpt_ids``
    unless non-negative ints (warned).

    Args:
        checkpoint: The loaded checkpoint.
        source (str, optional): Local path it was loaded from; None for a
            download (then no path is kept).

    Returns:
        The checkpoint.
    """
    if not isinstance(checkpoint, dict):
        return checkpoint
    meta = checkpoint.get('meta')
    if isinstance(meta, dict) and 'config' in meta:
        meta.pop('config')
        print_log("Dropped meta['config'] of the loaded checkpoint (mmengine "
                  'would execute it).', logger='current', level=logging.DEBUG)
    hub = checkpoint.get('message_hub')
    info = hub.get('runtime_info') if isinstance(hub, dict) else None
    if not isinstance(info, dict):
        return checkpoint
    folder = osp.realpath(osp.dirname(source)) if source else None
    for key in list(info):
        names = [name for pattern, name in _PATH_INFO.items()
                 if isinstance(key, str) and pattern.match(key)]
        if not names:
            continue
        value = info[key]
        ok = (folder is not None and isinstance(value, str)
              and names[0].match(osp.basename(value)) is not None
              and osp.realpath(osp.dirname(osp.abspath(value))) == folder)
        if not ok:
            info.pop(key)
            print_log(f'Ignored runtime_info.{key} = {value!r:.200} of the '
                      'loaded checkpoint: not a checkpoint beside it, and '
                      'mmengine would delete it.', logger='current',
                      level=logging.WARNING)
    ids = info.get('keep_ckpt_ids')
    if ids is not None and not (isinstance(ids, list) and all(
            type(i) is int and i >= 0 for i in ids)):
        info.pop('keep_ckpt_ids')
        print_log(f'Ignored runtime_info.keep_ckpt_ids = {ids!r:.200}: not a '
                  'list of steps.', logger='current', level=logging.WARNING)
    return checkpoint
