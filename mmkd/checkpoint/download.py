"""Downloads, cached under a hash of the whole URL (torch.hub's file name is
shared by URLs ending alike); a ``name-<hex>.pth`` hash is checked; a
download that fails the check or is refused is removed."""
import hashlib
import os
import os.path as osp
import re
import urllib.error
from typing import Any
from urllib.parse import urlparse

import torch
from mmengine.dist import get_dist_info

from .safe_load import safe_torch_load

#: torch.hub's convention: ``name-<sha256 prefix>.ext``
HASH_IN_NAME = re.compile(r'-([a-f0-9]{8,64})\.')


def cached_path(url: str) -> str:
    """``<torch hub dir>/checkpoints/mmkd/<16 hex digits of sha256(url)>_<file
    name>``, apart from torch.hub's own cache."""
    name = osp.basename(urlparse(url).path) or 'checkpoint.pth'
    digest = hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]
    return osp.join(torch.hub.get_dir(), 'checkpoints', 'mmkd',
                    f'{digest}_{name}')


def _download(url: str, path: str, what: str) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    named = HASH_IN_NAME.search(osp.basename(urlparse(url).path))
    try:
        torch.hub.download_url_to_file(
            url, path, hash_prefix=named and named.group(1), progress=False)
    except (urllib.error.URLError, OSError) as e:
        raise OSError(f'{what}: cannot download {url}: {e}. Check the URL '
                      'and the network, or give a local path.') from None
    except RuntimeError as e:  # hash mismatch
        raise RuntimeError(f'{what}: the download of {url} does not match '
                           f'the hash in its file name ({e}); it was not '
                           'kept. Check the URL.') from None


def load_url(url: str, map_location=None,
             what: str = 'checkpoint') -> Any:
    """Download ``url`` once (rank 0 first) and load it safely.

    Args:
        url (str): An http(s) URL.
        map_location: As in ``torch.load``.
        what (str): What is loaded and its config key, for messages.

    Returns:
        Any: The checkpoint.
    """
    rank, world_size = get_dist_info()
    path = cached_path(url)
    if rank == 0 and not osp.isfile(path):
        _download(url, path, what)
    if world_size > 1:
        torch.distributed.barrier()
        if not osp.isfile(path):  # a cache that ranks do not share
            _download(url, path, what)
    try:
        return safe_torch_load(path, map_location, what=f'{what} {url}')
    except Exception:
        if osp.isfile(path):
            os.remove(path)
        raise
