"""What loading a checkpoint may cost: files whose layout, declared sizes,
calls or nesting would make a loader allocate far more than they hold are
refused before anything is inflated or allocated, with the reason found;
ordinary checkpoints load exactly as torch loads them."""
import io
import json
import os.path as osp
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest
import torch
from torch import nn

from mmkd.checkpoint import (CheckpointFormatError, UnsafeCheckpointError,
                             limits, safe_torch_load)
from mmkd.testing.crafted_checkpoints import write_zip_bomb

_LOCAL = struct.Struct('<4s5H3L2H')
_CENTRAL = struct.Struct('<4s6H3L5H2L')
_EOCD = struct.Struct('<4s4H2LH')
_CHUNK = 1 << 20


def saved(obj, legacy=False):
    """The bytes ``torch.save`` writes for ``obj``."""
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def members_of(data):
    """``[(name, bytes)]`` of a zip checkpoint, in directory order."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(i.filename, archive.read(i.filename))
                for i in archive.infolist()]


def write_zip(path, members, aliases=(), sizes=None, zip64=False):
    """Write a zip of stored ``members`` (``[(name, bytes)]``) by hand.

    ``aliases`` (``[(name, target)]``) add central directory entries for the
    bytes of an earlier member (overlapping members); ``sizes`` (``{name:
    bytes}``) declare other sizes than the data's; ``zip64`` moves every
    entry's sizes and offset to a zip64 extra field, as writers do for
    files over 4 GB.
    """
    sizes = sizes or {}
    out, entries, where = bytearray(), [], {}
    for name, data in members:
        raw, crc = name.encode(), zlib.crc32(data)
        size = sizes.get(name, len(data))
        where[name] = (len(out), crc, size)
        out += _LOCAL.pack(b'PK\x03\x04', 20, 0, 0, 0, 0, crc, size, size,
                           len(raw), 0) + raw + data
        entries.append((raw, ) + where[name])
    entries += [(name.encode(), ) + where[target] for name, target in aliases]
    directory = len(out)
    for raw, offset, crc, size in entries:
        extra = b''
        if zip64:
            extra = struct.pack('<2H3Q', 1, 24, size, size, offset)
            size = offset = 0xFFFFFFFF
        out += _CENTRAL.pack(b'PK\x01\x02', 20, 20, 0, 0, 0, 0, crc, size,
                             size, len(raw), len(extra), 0, 0, 0, 0,
                             offset) + raw + extra
    out += _EOCD.pack(b'PK\x05\x06', 0, 0, len(entries), len(entries),
                      len(out) - directory, directory, 0)
    path.write_bytes(bytes(out))
    return str(path)


def with_pickle(tmp_path, pickle_bytes, name='crafted.pth'):
    """A real zip checkpoint whose ``data.pkl`` is ``pickle_bytes``."""
    members = [(n, pickle_bytes if n.endswith('data.pkl') else d)
               for n, d in members_of(saved({'x': 1}))]
    return write_zip(tmp_path / name, members)


def assert_same(got, want):
    """``got`` equals ``want``: tensors in dtype, shape and every element."""
    if isinstance(want, torch.Tensor):
        assert type(got) is type(want) and got.dtype == want.dtype
        assert got.shape == want.shape and torch.equal(got, want)
    elif isinstance(want, np.ndarray):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for key in want:
            assert_same(got[key], want[key])
    elif isinstance(want, (list, tuple)):
        assert type(got) is type(want) and len(got) == len(want)
        for a, b in zip(got, want):
            assert_same(a, b)
    else:
        assert type(got) is type(want) and got == want


def training_checkpoint():
    """A model's weights, an Adam state after one step, numpy values and
    tensors of every common dtype, views included."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    base = torch.arange(10.)
    return model, {
        'state_dict': model.state_dict(),
        'optimizer': optimizer.state_dict(),
        'meta': {'epoch': 3, 'seed': np.int64(7), 'arr': np.arange(3.)},
        'extra': {
            'half': torch.randn(5).half(), 'bf16': torch.randn(5).bfloat16(),
            'bool': torch.tensor([True, False]),
            'int8': torch.arange(4).char(),
            'complex': torch.randn(3, dtype=torch.complex64),
            'empty': torch.zeros(0, 3), 'base': base, 'view': base[2:5],
            'strided': torch.randn(4, 6).t(), 'scalar': torch.tensor(2.5),
            'bytes': b'\x00\xffab', 'bytearray': bytearray(b'\x00\xff'),
        },
    }


@pytest.mark.parametrize('legacy', [False, True], ids=['zip', 'legacy'])
def test_ordinary_checkpoint_loads_exactly_as_torch_loads_it(tmp_path, legacy):
    model, checkpoint = training_checkpoint()
    path = tmp_path / 'ckpt.pth'
    path.write_bytes(saved(checkpoint, legacy))
    loaded = safe_torch_load(str(path))
    # the file is ours: torch's unrestricted load is the reference
    assert_same(loaded, torch.load(str(path), weights_only=False))
    extra = loaded['extra']
    assert extra['view'].untyped_storage().data_ptr() == \
        extra['base'].untyped_storage().data_ptr()
    fresh = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    fresh.load_state_dict(loaded['state_dict'], strict=True)
    for (name, a), b in zip(fresh.state_dict().items(),
                            model.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize('legacy', [False, True], ids=['zip', 'legacy'])
def test_checkpoint_with_many_tensors_loads(tmp_path, legacy):
    """The member bounds are relative to the storages the pickle uses:
    thousands of tensors are fine."""
    tensors = {f'layer{i}.weight': torch.full((2, ), float(i))
               for i in range(3000)}
    path = tmp_path / 'many.pth'
    path.write_bytes(saved(tensors, legacy))
    assert_same(safe_torch_load(str(path)), tensors)


def test_zip64_entries_load(tmp_path):
    """Sizes and offsets escaped to zip64 fields (checkpoints over 4 GB) are
    read as torch reads them."""
    tensors = {'a': torch.arange(6.), 'b': torch.ones(2, 3, dtype=torch.int64)}
    path = write_zip(tmp_path / 'zip64.pth', members_of(saved(tensors)),
                     zip64=True)
    assert_same(torch.load(path, weights_only=True), tensors)
    assert_same(safe_torch_load(path), tensors)


def test_torchscript_archive_is_named_as_such(tmp_path):
    path = str(tmp_path / 'scripted.pt')
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), path)
    with pytest.raises(CheckpointFormatError, match='TorchScript archive'):
        safe_torch_load(path)


def test_a_3mb_file_that_inflates_to_3gb_is_refused_before_inflating(
        tmp_path):
    """The attack: a torch.save file whose data.pkl is deflate-compressed and
    padded with zeros after STOP. mmkd's loader used to take 39 s and
    4.55 GB on it before a bare MemoryError. Measured in a child process:
    its peak memory may grow by less than 100 MB."""
    path = tmp_path / 'bomb.pth'
    write_zip_bomb(path, 3 << 30)
    assert osp.getsize(path) < 4 << 20
    with zipfile.ZipFile(path) as archive:  # a valid zip: it does inflate
        assert archive.getinfo('archive/data.pkl').file_size == 3 << 30
    code = (
        'import json, resource, sys, time, tracemalloc\n'
        'from mmkd.checkpoint import UnsafeCheckpointError, safe_torch_load\n'
        'peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n'
        'before = peak()\n'
        'tracemalloc.start()\n'
        'start = time.perf_counter()\n'
        'try:\n'
        '    safe_torch_load(sys.argv[1])\n'
        '    message = None\n'
        'except UnsafeCheckpointError as e:\n'
        '    message = str(e)\n'
        'seconds = time.perf_counter() - start\n'
        'traced = tracemalloc.get_traced_memory()[1]\n'
        'print(json.dumps(dict(message=message, seconds=seconds,\n'
        '                      traced=traced, rss_kb=peak() - before)))\n')
    proc = subprocess.run([sys.executable, '-c', code, str(path)],
                          check=False, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    message = result['message']
    assert message is not None, 'the bomb was not refused'
    assert "'archive/data.pkl' is compressed (deflate" in message
    assert 'Nothing in the file has been run' in message
    assert result['rss_kb'] < 100 * 1024, result
    assert result['traced'] < 100 << 20, result


def test_any_compressed_member_is_refused(tmp_path):
    path = tmp_path / 'rezipped.pth'
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
        for name, data in members_of(saved({'w': torch.zeros(1000)})):
            archive.writestr(name, data)
    with pytest.raises(UnsafeCheckpointError,
                       match=r'is compressed \(deflate') as info:
        safe_torch_load(str(path), what='model.teacher_checkpoint')
    assert 'model.teacher_checkpoint' in str(info.value)
    assert 'allow-list' not in str(info.value)


def test_overlapping_members_are_refused(tmp_path):
    """Two storage records on the same bytes: torch reads (and allocates)
    them twice; N of them would cost N times the file."""
    members = members_of(saved({'a': torch.arange(64.),
                                'b': torch.zeros(64)}))
    kept = [(n, d) for n, d in members if not n.endswith('data/1')]
    path = write_zip(tmp_path / 'overlap.pth', kept,
                     aliases=[('archive/data/1', 'archive/data/0')])
    loaded = torch.load(path, weights_only=True)  # torch takes it...
    assert torch.equal(loaded['b'], torch.arange(64.))
    with pytest.raises(UnsafeCheckpointError, match='overlap') as info:
        safe_torch_load(path)  # ...mmkd does not
    assert "'archive/data/0' and 'archive/data/1'" in str(info.value)


@pytest.mark.parametrize('excess,match', [
    (0xFFFF0000, 'past the end of the members'),
    (-50, 'past the end of the members'),
], ids=['larger-than-file', 'past-the-members'])
def test_member_larger_than_the_file_is_refused(tmp_path, excess, match):
    """A storage record declaring more bytes than the file (or than there
    are before the central directory): torch allocates what is declared."""
    members = members_of(saved({'w': torch.zeros(16)}))
    size = osp.getsize(write_zip(tmp_path / 'big.pth', members))
    declared = size + excess
    path = write_zip(tmp_path / 'big.pth', members,
                     sizes={'archive/data/0': declared})
    with pytest.raises(UnsafeCheckpointError, match=match) as info:
        safe_torch_load(path)
    assert f'declares {declared:,} bytes' in str(info.value)


def test_more_members_than_a_checkpoint_has_are_refused(tmp_path):
    members = members_of(saved({'w': torch.zeros(4)}))
    junk = [(f'archive/junk/{i}', b'x') for i in range(100)]
    path = write_zip(tmp_path / 'junk.pth', members + junk)
    with pytest.raises(UnsafeCheckpointError,
                       match='at most 64 are allowed') as info:
        safe_torch_load(path)
    assert 'it holds 100 members that torch.save does not write' in \
        str(info.value)


def test_the_limit_on_members_torch_does_not_write_is_a_setting(
        tmp_path, monkeypatch):
    members = members_of(saved({f'w{i}': torch.zeros(1) for i in range(10)}))
    junk = [(f'archive/junk/{i}', b'x') for i in range(10)]
    path = write_zip(tmp_path / 'ten.pth', members + junk)
    safe_torch_load(path)
    monkeypatch.setattr(limits, 'MAX_EXTRA_MEMBERS', 8)
    with pytest.raises(UnsafeCheckpointError,
                       match='10 members that torch.save does not write .*'
                       'at most 8 are allowed'):
        safe_torch_load(path)


def _pid_numel(pickle_bytes, key, numel):
    """``pickle_bytes`` with the element count of storage ``key`` (written
    by torch.save as BININT1) set to ``numel`` (a BININT)."""
    ref = b'X' + struct.pack('<I', len(key)) + key.encode()
    at = pickle_bytes.index(ref)
    at = pickle_bytes.index(b'K', at + len(ref) + 2)  # after location
    assert pickle_bytes[at + 2:at + 3] in (b't', b'N')  # N: legacy view
    return pickle_bytes[:at] + b'J' + struct.pack('<i', numel) + \
        pickle_bytes[at + 2:]


def test_storage_declaring_more_bytes_than_its_record_is_refused(tmp_path):
    members = members_of(saved({'w': torch.arange(10.)}))
    members = [(n, _pid_numel(d, '0', 1 << 30) if n.endswith('data.pkl')
                else d) for n, d in members]
    path = write_zip(tmp_path / 'liar.pth', members)
    # torch checks the record's size in the loader process
    with pytest.raises(CheckpointFormatError) as info:
        safe_torch_load(path)
    assert ('record size (40 bytes) does not match expected size '
            '(4294967296 bytes') in str(info.value)


def test_record_shorter_than_its_storage_is_refused(tmp_path):
    members = [(n, d[:12] if n.endswith('data/0') else d)
               for n, d in members_of(saved({'w': torch.arange(10.)}))]
    path = write_zip(tmp_path / 'short.pth', members)
    with pytest.raises(CheckpointFormatError,
                       match=r'record size \(12 bytes\) does not match '
                       r'expected size \(40 bytes'):
        safe_torch_load(path)


def _legacy_parts(data):
    """The five pickles of a legacy checkpoint and its storage data."""
    import pickletools
    stream, parts = io.BytesIO(data), []
    for _ in range(5):
        start = stream.tell()
        for _ in pickletools.genops(stream):
            pass
        parts.append(data[start:stream.tell()])
    return parts, data[stream.tell():]


def test_legacy_storage_declaring_more_than_its_data_is_refused(tmp_path):
    """The legacy loader allocates every storage while unpickling, before it
    reads any data: a few bytes could declare gigabytes."""
    parts, storages = _legacy_parts(saved({'w': torch.arange(3.)}, True))
    key = parts[4][parts[4].index(b'X') + 5:].split(b'q')[0].decode()
    parts[3] = _pid_numel(parts[3], key, 1 << 28)
    path = tmp_path / 'legacy_liar.pth'
    path.write_bytes(b''.join(parts) + storages)
    with pytest.raises(UnsafeCheckpointError,
                       match='needed more memory than the limit of 512 MiB'):
        safe_torch_load(str(path))


def test_legacy_storage_without_data_is_refused(tmp_path):
    parts, _ = _legacy_parts(saved({'w': torch.arange(3.)}, True))
    path = tmp_path / 'legacy_nodata.pth'
    path.write_bytes(b''.join(parts[:4]) + b'\x80\x02].')
    with pytest.raises(UnsafeCheckpointError,
                       match='holds no data for it'):
        safe_torch_load(str(path))


def _nested(depth):
    value = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_deep_nesting_is_reported_as_nesting(tmp_path):
    """A list nested 200,000 deep was refused as 'Python objects outside
    the allow-list'; the scan now refuses it, as what it is, before
    unpickling."""
    depth = 200_000
    path = with_pickle(tmp_path, b'\x80\x02' + b']' * depth +
                       b'a' * (depth - 1) + b'.')
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(path)
    assert 'nested deeper than 100 levels' in str(info.value)
    assert 'allow-list' not in str(info.value)


def test_nesting_linked_through_the_memo_is_reported_as_nesting(tmp_path):
    """Lists created flat, then put inside one another through the memo:
    only the loaded object shows the depth, and walking it says so."""
    n = 150
    pickle_bytes = b'\x80\x02('
    for i in range(n):
        pickle_bytes += b']r' + struct.pack('<I', i)
    pickle_bytes += b't]('  # the lists in a tuple; a list to hold leftovers
    for i in range(n - 1):  # lists[i].append(lists[i + 1])
        pickle_bytes += b'j' + struct.pack('<I', i) + b'j' + \
            struct.pack('<I', i + 1) + b'a'
    pickle_bytes += b'e\x86.'
    path = with_pickle(tmp_path, pickle_bytes)
    with pytest.raises(UnsafeCheckpointError,
                       match='nested deeper than 100 levels'):
        safe_torch_load(path)


def test_nesting_up_to_the_limit_loads(tmp_path):
    path = tmp_path / 'deep.pth'
    path.write_bytes(saved(_nested(limits.MAX_NESTING)))
    assert_same(safe_torch_load(str(path)), _nested(limits.MAX_NESTING))
    path.write_bytes(saved(_nested(limits.MAX_NESTING + 1)))
    with pytest.raises(UnsafeCheckpointError,
                       match='nested deeper than 100 levels'):
        safe_torch_load(str(path))


class Calls:
    """Unpickling this calls ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize('call,match', [
    (Calls(bytearray, 1 << 30),
     r'bytearray\(...\) with something other than text'),
    (Calls(torch.FloatTensor, 1 << 28),
     'needed more memory than the limit of 512 MiB'),
    (Calls(torch._tensor._rebuild_from_type_v2, bytearray, torch.Tensor,
           (1 << 30, ), {}), r'bytearray\(...\)'),
], ids=['bytearray', 'FloatTensor', 'rebuild_from_type'])
def test_calls_that_allocate_a_size_the_pickle_chooses_are_refused(
        tmp_path, call, match):
    """torch's weights-only unpickler allows these: bytearray(2**30) took
    1 GB from a 40-byte pickle."""
    path = tmp_path / 'alloc.pth'
    path.write_bytes(saved({'x': call}))
    with pytest.raises(UnsafeCheckpointError, match=match):
        safe_torch_load(str(path))


@pytest.mark.parametrize('pickle_bytes,match', [
    (b'\x80\x02h\x05.', 'KeyError: 5'),
    (b'\x80\x02a.', 'IndexError'),
    (b'\x80\x02X\x10\x00\x00\x00ab', 'EOFError'),
], ids=['memo', 'stack', 'truncated'])
def test_damaged_pickle_is_reported_as_damaged(tmp_path, pickle_bytes,
                                              match):
    """torch raises a bare KeyError, IndexError or struct.error on these."""
    with pytest.raises(CheckpointFormatError, match=match) as info:
        safe_torch_load(with_pickle(tmp_path, pickle_bytes))
    assert 'truncated or damaged' in str(info.value)
