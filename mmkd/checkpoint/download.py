"""Download a checkpoint once and load it as untrusted input.

torch.hub caches a download under the URL's file name, so two URLs ending
in ``teacher.pth`` share an entry; here the cache name starts with a hash of
the whole URL. A ``name-<hex>.pth`` file name's hash is checked, and a
download that fails the check or is refused is removed from the cache.
"""
import hashlib
import os
import os.path as osp
import re
import urllib.error
from typing import Any, Optional
from urllib.parse import urlparse

import torch
from mmengine.dist import get_dist_info

from .safe_load import safe_torch_load

#: torch.hub's convention: ``name-<sha256 prefix>.ext``
HASH_IN_NAME = re.compile(r'-([a-f0-9]{8,64})\.')


def cache_dir() -> str:
    """``<torch hub dir>/checkpoints/mmkd``, apart from torch.hub's cache."""
    return osp.join(torch.hub.get_dir(), 'checkpoints', 'mmkd')


def cached_path(url: str) -> str:
    """``<cache dir>/<16 hex digits of sha256(url)>_<file name>``."""
    name = osp.basename(urlparse(url).path) or 'checkpoint.pth'
    digest = hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]
    return osp.join(cache_dir(), f'{digest}_{name}')


def hash_prefix(url: str) -> Optional[str]:
    """The SHA-256 prefix named in the URL's file name, if any."""
    match = HASH_IN_NAME.search(osp.basename(urlparse(url).path))
    return match.group(1) if match else None


def _download(url: str, path: str, what: str) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    try:
        torch.hub.download_url_to_file(
            url, path, hash_prefix=hash_prefix(url), progress=False)
    except (urllib.error.URLError, OSError) as e:
        raise OSError(
            f'{what}: cannot download {url}: {e}. Check the URL and the '
            'network, or download the file yourself and give its local '
            'path.') from None
    except RuntimeError as e:  # hash mismatch
        raise RuntimeError(
            f'{what}: the download of {url} does not match the hash in its '
            f'file name ({e}); it was not kept. Download it again, or check '
            'that the URL is the one you meant.') from None


def load_url(url: str, map_location=None,
             what: str = 'checkpoint') -> Any:
    """Download ``url`` (once per cache; rank 0 first under
    torch.distributed) and load it with
    :func:`~mmkd.checkpoint.safe_torch_load`.

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
