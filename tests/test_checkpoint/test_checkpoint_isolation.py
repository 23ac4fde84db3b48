"""The loader process and its limits: each crafted file of issue 36's table
ends in a clear refusal within the bounds (the limits made small here so
that each test takes a few seconds), the loader has no network, and
legitimate files load bit-exactly."""
import io
import os
import pickle
import socket
import struct
import tarfile
import time
import zipfile

import numpy as np
import pytest
import torch

from mmkd.checkpoint import (CheckpointFormatError, UnsafeCheckpointError,
                             limits, safe_torch_load)
from mmkd.testing.crafted_checkpoints import refusal_deadline


class Calls:
    """Unpickling this calls ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.fixture(autouse=True)
def small_limits(monkeypatch):
    monkeypatch.setattr(limits, 'MEMORY_BASE', 64 << 20)
    monkeypatch.setattr(limits, 'CPU_BASE', 2.0)


def save(tmp_path, obj, name='ckpt.pth', legacy=False):
    path = tmp_path / name
    torch.save(obj, str(path), _use_new_zipfile_serialization=not legacy)
    return str(path)


def refused(path, match, error=UnsafeCheckpointError):
    start = time.perf_counter()
    with pytest.raises(error, match=match) as info:
        safe_torch_load(path, what='teacher checkpoint')
    assert time.perf_counter() - start < refusal_deadline(path)
    assert 'teacher checkpoint' in str(info.value)
    return str(info.value)


MEMORY = 'needed more memory than the limit of 6[4-6] MiB'


def test_storage_keys_differing_only_in_case_read_one_record(tmp_path):
    """torch finds members case-insensitively but caches storages by the
    exact key: 128 keys, one 1 MiB record, 128 MiB allocated."""

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, str) and obj.startswith('key:'):
                return ('storage', torch.FloatStorage, obj[4:], 'cpu',
                        1 << 18)
            return None

    keys = [''.join(c.upper() if i >> b & 1 else c
                    for b, c in enumerate('abcdefg')) for i in range(128)]
    views = [Calls(torch._utils._rebuild_tensor_v2, f'key:{k}', 0,
                   (1 << 18, ), (1, ), False, {}) for k in keys]
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(views)
    path = tmp_path / 'case.pth'
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('archive/data.pkl', buf.getvalue())
        archive.writestr('archive/data/abcdefg', bytes(4 << 18))
        archive.writestr('archive/version', '3\n')
    assert path.stat().st_size < 2 << 20
    refused(str(path), MEMORY)


def test_stride_0_view_copied_to_another_dtype(tmp_path):
    """A 1-element storage viewed 2**27 times, converted to float64 by a
    rebuild: 1 GiB from a file of about 1 KB."""
    view = torch.zeros(1).expand(1 << 27)
    rebuild = torch._utils._rebuild_device_tensor_from_cpu_tensor
    path = save(tmp_path, {'x': Calls(rebuild, view, torch.float64, 'cpu',
                                      False)})
    refused(path, MEMORY)


def test_stride_0_view_handed_back_is_refused(tmp_path):
    """Not copied in the loader, but claiming 4 MB of a 4-byte storage: a
    copy in the training process would allocate that."""
    path = save(tmp_path, {'x': torch.zeros(1).expand(1 << 20)})
    refused(path, 'claims 4,194,304 bytes of a 4-byte storage')


def test_sparse_indices_as_stride_0_view_converted(tmp_path):
    indices = torch.zeros(1, dtype=torch.int32).expand(1, 1 << 27)
    values = torch.zeros(1).expand(1 << 27)
    path = save(tmp_path, {'x': Calls(
        torch._utils._rebuild_sparse_tensor, torch.sparse_coo,
        (indices, values, (4, )))})
    refused(path, f'{MEMORY}|claims|not valid')


def test_sparse_index_out_of_bounds_is_refused(tmp_path):
    """torch 2.13 loads it unchecked; ``to_dense()`` then segfaults."""
    bad = torch.sparse_coo_tensor(torch.tensor([[1 << 40]]),
                                  torch.tensor([1.]), (4, ),
                                  check_invariants=False)
    path = save(tmp_path, {'x': bad})
    refused(path, r'torch.sparse_coo tensor of size \[4\] that is not valid')


@pytest.mark.parametrize('n,match', [
    (2000, 'keys of one dict or set share hash values'),
    (40000, 'CPU-time limit of 2 s'),
], ids=['refused-when-built', 'cpu-limit-in-loader'])
def test_dict_of_ints_with_one_hash(tmp_path, n, match):
    """k * (2**61 - 1) all hash to 0: inserting them is quadratic."""
    path = save(tmp_path, {k * (2**61 - 1): 0 for k in range(1, n + 1)}
                if n <= 2000 else {'x': 0})
    if n > 2000:  # build the dict in the pickle without hashing it here
        body = b''.join(b'\x8a\x0a' + (k * (2**61 - 1)).to_bytes(10, 'little')
                        + b'K\x00' for k in range(1, n + 1))
        from test_checkpoint_bounds import with_pickle
        path = with_pickle(tmp_path, b'\x80\x02}(' + body + b'u.')
    refused(path, match)


def test_bytearray_with_a_long_codec_alias(tmp_path):
    alias = 'latin_1' + '_' * 41
    path = save(tmp_path, {'x': Calls(bytearray, 'x' * 1000, alias)})
    refused(path, r'bytearray\(...\) with something other than text')


def test_legacy_file_that_is_also_a_tar_with_a_long_pax_header(tmp_path):
    """torch tries tarfile first on a legacy file (CVE-2024-6232: its PAX
    parsing was quadratic); here it runs in the loader, within its
    limits."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo('\x80\x02' + 'x' * 60)
        info.pax_headers = {'comment': ' 1' * 60000}
        info.size = 0
        t.addfile(info)
    path = tmp_path / 'tar.pth'
    path.write_bytes(buf.getvalue())
    start = time.perf_counter()
    with pytest.raises((UnsafeCheckpointError, CheckpointFormatError)):
        safe_torch_load(str(path))
    assert time.perf_counter() - start < refusal_deadline(str(path))


def _tuple_dag(levels):
    """``(T, T)`` nested ``levels`` times (one tuple per level, shared)."""
    body = b'K\x01\x85' + b'q\x00h\x00\x86' * levels
    return b'\x80\x02}X\x0c\x00\x00\x00runtime_info' + body + b's.'


def test_a_tuple_dag_a_deep_copy_would_unfold(tmp_path):
    """386 bytes in message_hub.runtime_info cost mmengine's resume 6.7 s
    of deepcopy at depth 22, doubling per level."""
    from test_checkpoint_bounds import with_pickle
    path = with_pickle(tmp_path, _tuple_dag(22))
    refused(path, 'a deep copy of it would visit more than')
    small = safe_torch_load(with_pickle(tmp_path, _tuple_dag(3), 's.pth'))
    value = small['runtime_info']
    assert value[0] is value[1]  # sharing kept


def test_many_distinct_short_strings(tmp_path, monkeypatch):
    """8 MB of them cost the scanner 13 s (torch.load: 1.5 s); the loader's
    memory limit bounds them."""
    monkeypatch.setattr(limits, 'MEMORY_BASE', 8 << 20)
    path = save(tmp_path, [f'{i:x}' for i in range(300_000)])
    refused(path, 'needed more memory than the limit of 16 MiB')


def test_the_loader_has_no_network():
    from mmkd.checkpoint.loader import confine
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            assert confine(64 << 20, 5, 1 << 20) == []
            try:
                socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                code = 1
            except PermissionError:
                code = 0
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_memory_is_bounded_as_data_not_address_space():
    """RLIMIT_DATA, relative to what the loader holds: a CUDA build's huge
    untouched mappings do not count; RLIMIT_AS stays as it was."""
    import resource
    from mmkd.checkpoint.loader import confine
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        confine(32 << 20, 5, 1 << 20)
        data = resource.getrlimit(resource.RLIMIT_DATA)[0]
        address = resource.getrlimit(resource.RLIMIT_AS)[0]
        os.write(w, struct.pack('<qq', data, address))
        os._exit(0)
    os.waitpid(pid, 0)
    data, address = struct.unpack('<qq', os.read(r, 16))
    assert 32 << 20 < data < 8 << 30
    assert address == resource.getrlimit(resource.RLIMIT_AS)[0]


def test_legitimate_tensors_load_bit_exactly(tmp_path):
    torch.manual_seed(0)
    obj = {
        'f8': torch.randn(5).to(torch.float8_e4m3fn),
        'f8b': torch.randn(5).to(torch.float8_e5m2),
        'u16': torch.tensor([1, 2, 65535], dtype=torch.uint16),
        'u64': torch.tensor([2**64 - 1, 3], dtype=torch.uint64),
        'c128': torch.randn(3, dtype=torch.complex128),
        'bool': torch.tensor([True, False]),
        'csr': torch.randn(3, 4).relu().to_sparse_csr(),
        'coo': torch.randn(3, 4).relu().to_sparse(),
        'param': torch.nn.Parameter(torch.randn(2)),
    }
    loaded = safe_torch_load(save(tmp_path, obj))
    for key, value in obj.items():
        got = loaded[key]
        assert type(got) is type(value) and got.dtype == value.dtype
        if value.layout != torch.strided:
            assert torch.equal(got.to_dense(), value.to_dense())
        else:
            assert torch.equal(got.view(torch.uint8),
                               value.detach().view(torch.uint8))


def test_legacy_file_of_current_torch_keeps_shared_views(tmp_path):
    """Current torch writes legacy files' storages as UntypedStorage."""
    base = torch.arange(10.)
    obj = {'a': base, 'b': base[2:5]}
    loaded = safe_torch_load(save(tmp_path, obj, legacy=True))
    assert loaded['b'].untyped_storage().data_ptr() == \
        loaded['a'].untyped_storage().data_ptr()
    assert torch.equal(loaded['b'], base[2:5])


def test_numpy_values_anywhere_keep_their_byte_order(tmp_path):
    t = torch.zeros(2)
    t.note = np.array([1, 2], dtype='>i4')
    obj = {np.int64(3): 'key', 'big': np.arange(3, dtype='>f8'),
           'scalar': np.float32(1.5), 'dtype': np.dtype('<u2'), 't': t}
    loaded = safe_torch_load(save(tmp_path, obj))
    assert loaded[np.int64(3)] == 'key'
    assert type(next(iter(loaded))) is np.int64
    assert loaded['big'].dtype == np.dtype('>f8')
    np.testing.assert_array_equal(loaded['big'], [0., 1., 2.])
    assert loaded['t'].note.dtype == np.dtype('>i4')
    assert loaded['scalar'] == np.float32(1.5)
    assert loaded['dtype'] == np.dtype('<u2')


def test_map_location_gets_the_saved_location(tmp_path):
    seen = []

    def where(storage, location):
        seen.append(location)
        return storage

    path = save(tmp_path, {'w': torch.ones(2)})
    assert torch.equal(safe_torch_load(path, map_location=where)['w'],
                       torch.ones(2))
    assert seen == ['cpu']


def test_counters_and_ordered_dicts_come_back_as_saved(tmp_path):
    """torch's weights-only unpickler allows ``collections.Counter`` (an
    mmengine Runner checkpoint can hold one); it comes back a Counter with
    its counts, beside an OrderedDict and a dict."""
    import collections
    obj = dict(counts=collections.Counter(disc=3, ring=1),
               state=collections.OrderedDict(w=torch.ones(2)),
               plain={'a': 1})
    loaded = safe_torch_load(save(tmp_path, obj))
    assert type(loaded['counts']) is collections.Counter
    assert loaded['counts'] == collections.Counter(disc=3, ring=1)
    assert type(loaded['state']) is collections.OrderedDict
    assert torch.equal(loaded['state']['w'], torch.ones(2))
    assert type(loaded['plain']) is dict and loaded['plain'] == {'a': 1}


def test_an_interrupted_load_leaves_no_reply_for_the_next(tmp_path,
                                                          monkeypatch):
    """A load interrupted while it waits for the loader (Ctrl-C, a timeout)
    leaves its reply unread: the next loads get their own, not that one."""
    from mmkd.checkpoint import loader
    slow = save(tmp_path, {f'w{i}': torch.full((2, ), float(i))
                           for i in range(3000)}, 'slow.pth')
    fast = save(tmp_path, {'w': torch.ones(3)}, 'fast.pth')
    receive, calls = loader._receive, []

    def interrupted(*args):
        calls.append(args)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return receive(*args)

    monkeypatch.setattr(loader, '_receive', interrupted)
    with pytest.raises(KeyboardInterrupt):
        safe_torch_load(slow)
    for _ in range(2):
        assert torch.equal(safe_torch_load(fast)['w'], torch.ones(3))
