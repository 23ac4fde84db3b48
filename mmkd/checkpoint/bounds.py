"""What loading a checkpoint may cost, checked before torch reads it:
:func:`check_checkpoint`.

Nothing here inflates, allocates or unpickles anything from the file: it
reads the layout (:mod:`.archive`), streams the pickle
(:mod:`.pickle_scan`) and compares every storage the pickle declares with
the bytes the file holds for it.

- Zip format: the layout checks of :mod:`.archive`; every storage reference
  ``('storage', type, key, location, numel)`` must name a member
  ``data/<key>`` of exactly ``numel * element size`` bytes (torch allocates
  that size, then requires the record to match); besides the pickle and
  the records it uses, at most
  :data:`~mmkd.checkpoint.limits.MAX_EXTRA_MEMBERS` members.
- Legacy format (``_use_new_zipfile_serialization=False``): five pickles,
  then each storage's data as an 8-byte element count and its bytes, in the
  order of the storage key list (the fifth pickle). torch allocates every
  storage the object pickle declares *while unpickling*, before it reads
  any data; so every declared storage must be in the key list, and every
  key's count must match its declaration and its bytes lie inside the file.

Then the storages torch allocates are at most the file's size in all.
"""
from typing import IO, Any, Dict, Set, Tuple

import torch

from . import limits
from .archive import REMEDY, ZipLayout, read_zip_layout
from .errors import UnsafeCheckpointError
from .pickle_scan import scan_pickle
from .pickle_standins import global_name, is_text, list_items
from .window import FileWindow

_UNTYPED = 'torch.storage.UntypedStorage'


def _storage_sizes() -> Dict[str, int]:
    """Bytes per element of each storage type a pickle may name."""
    import warnings
    sizes = {}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # TypedStorage is deprecated
        for storage in getattr(torch, '_storage_classes', ()):
            dtype = getattr(storage, 'dtype', None)
            if isinstance(dtype, torch.dtype):
                name = f'{storage.__module__}.{storage.__name__}'
                sizes[name] = dtype.itemsize
    return sizes


_ELEMENT_SIZES = _storage_sizes()


def _refuse(reason: str) -> None:
    raise UnsafeCheckpointError(f'{reason}. {REMEDY}')


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, (str, int)) else \
        f'<{type(value).__name__}>'


def _storage_fields(items: tuple, legacy: bool) -> Tuple[str, int, int]:
    """Read the key, element size and element count of a storage reference.

    Args:
        items (tuple): The reference after ``'storage'``: ``(type, key,
            location, numel)``, and ``view_metadata`` in the legacy format.
        legacy (bool): Whether the file is in the legacy format.

    Returns:
        tuple: ``(key, element_size, numel)``.

    Raises:
        UnsafeCheckpointError: The reference is not one torch.save writes.
    """
    if len(items) != (5 if legacy else 4):
        _refuse(f'it holds a storage reference of {len(items) + 1} items; '
                f'torch.save writes {6 if legacy else 5}')
    storage_type, key, _, numel = items[:4]
    name = global_name(storage_type)
    size = _ELEMENT_SIZES.get(name)
    if size is None and name == _UNTYPED and not legacy:
        size = 1
    if size is None:
        _refuse(f'it holds a storage of type {name or _show(storage_type)}, '
                'which is not one of torch\'s storage types')
    if not (isinstance(key, str) or type(key) is int) or \
            (legacy and not isinstance(key, str)):
        _refuse(f'it holds a storage whose key is {_show(key)}, not a '
                'short string as torch.save writes')
    if type(numel) is not int or numel < 0:
        _refuse(f'storage {_show(key)} declares {_show(numel)} elements, '
                'not a count')
    return str(key), size, numel


def _check_zip(file: IO[bytes]) -> None:
    """Check a zip checkpoint's layout, pickle and storages.

    Args:
        file (file-like): At the archive's first byte.

    Raises:
        CheckpointFormatError: The file is damaged.
        UnsafeCheckpointError: A bound is broken (see the module docstring).
    """
    layout: ZipLayout = read_zip_layout(file)
    pickle = layout.record('data.pkl')
    used: Set[str] = set()

    def storage(items: tuple) -> None:
        key, size, numel = _storage_fields(items, legacy=False)
        record = layout.record(f'data/{key}')
        if record is None:
            _refuse(f'its pickle uses storage {key!r}, but the archive has '
                    f'no member data/{key}')
        if numel * size != record.size:
            _refuse(f'storage {key!r} declares {numel:,} elements of {size} '
                    f'bytes ({numel * size:,} bytes), but its record '
                    f'{record.name} holds {record.size:,} bytes')
        used.add(record.name.lower())

    scan = scan_pickle(FileWindow(file, pickle.data_start,
                                  pickle.data_start + pickle.size,
                                  f'member {pickle.name}'), on_storage=storage)
    extra = len(layout.members) - 1 - len(used)
    # an incomplete scan stopped where torch's unpickler refuses the pickle
    if scan.complete and extra > limits.MAX_EXTRA_MEMBERS:
        _refuse(f'it holds {len(layout.members):,} members: its pickle, the '
                f'{len(used):,} storage records it uses and {extra:,} more, '
                f'where torch.save writes five more (at most '
                f'{limits.MAX_EXTRA_MEMBERS} are allowed, '
                'mmkd.checkpoint.limits.MAX_EXTRA_MEMBERS)')


def _check_legacy_data(file: IO[bytes], position: int, end: int,
                       declared: Dict[str, Tuple[int, int]],
                       keys: Tuple[Any, ...]) -> None:
    """Check a legacy checkpoint's storage data against its declarations.

    Args:
        file (file-like): The checkpoint.
        position (int): Where the data starts (after the fifth pickle).
        end (int): The end of the file.
        declared (dict): Key -> ``(element size, numel)`` from the object
            pickle (the first declaration of each key: torch allocates it).
        keys (tuple): The storage key list.

    Raises:
        UnsafeCheckpointError: A declared storage has no data, a count
            disagrees, or the data runs past the end of the file.
    """
    listed = set()
    for key in keys:
        if not isinstance(key, str) or key not in declared:
            _refuse(f'its storage list names {_show(key)}, which its pickle '
                    'does not declare')
        size, numel = declared[key]
        file.seek(position)
        header = file.read(8)
        count = int.from_bytes(header, 'little', signed=True) \
            if len(header) == 8 else None
        if count != numel:
            found = 'nothing' if count is None else f'{count:,} elements'
            _refuse(f'storage {key!r} declares {numel:,} elements, but the '
                    f'file holds {found} for it at offset {position:,}')
        position += 8 + numel * size
        if position > end:
            _refuse(f'storage {key!r} declares {numel * size:,} bytes that '
                    f'run past the end of the file ({end:,} bytes): torch '
                    'would allocate them before reading any')
        listed.add(key)
    for key in declared.keys() - listed:
        size, numel = declared[key]
        _refuse(f'its pickle declares storage {key!r} ({numel * size:,} '
                'bytes, which torch allocates while unpickling), but the '
                'file holds no data for it')


def _check_legacy(file: IO[bytes]) -> None:
    """Check a legacy checkpoint's pickles and storages.

    Args:
        file (file-like): At the file's first byte.

    Raises:
        CheckpointFormatError: The file is damaged.
        UnsafeCheckpointError: A bound is broken (see the module docstring).
    """
    start = file.tell()
    end = file.seek(0, 2)
    window = FileWindow(file, start, end, 'the checkpoint')
    declared: Dict[str, Tuple[int, int]] = {}
    seen: Set[str] = set()

    def storage(items: tuple) -> None:
        key, size, numel = _storage_fields(items, legacy=True)
        if key not in declared:
            if len(declared) >= limits.MAX_MEMBERS:
                _refuse('its pickle declares more than the '
                        f'{limits.MAX_MEMBERS:,} storages a checkpoint may '
                        'have (mmkd.checkpoint.limits.MAX_MEMBERS)')
            declared[key] = (size, numel)

    for _ in range(3):  # magic number, protocol version, system info
        if not scan_pickle(window, seen=seen).complete:
            return  # torch's unpickler refuses it there
    if not scan_pickle(window, storage, seen=seen).complete:
        return
    keys = scan_pickle(window, keep_lists=True, seen=seen)
    if not keys.complete:
        return
    items = list_items(keys.top)
    if items is None or not all(map(is_text, items)):
        _refuse('its storage key list (the fifth pickle) is not a list of '
                'strings as torch.save writes it')
    _check_legacy_data(file, window.tell(), end, declared, items)


def check_checkpoint(file: IO[bytes]) -> None:
    """Refuse a checkpoint whose loading would cost more than its contents,
    before anything in it is inflated, allocated or unpickled.

    Args:
        file (file-like): Open in binary mode and seekable, at the start of
            a zip or legacy torch file; its position is restored.

    Raises:
        CheckpointFormatError: The file is damaged or truncated.
        UnsafeCheckpointError: The file breaks a bound: see the module
            docstring and :mod:`.archive`, :mod:`.pickle_scan`.
    """
    start = file.tell()
    try:
        is_zip = file.read(4) == b'PK\x03\x04'  # as torch tells them apart
        file.seek(start)
        if is_zip:
            _check_zip(file)
        else:
            _check_legacy(file)
    finally:
        file.seek(start)
