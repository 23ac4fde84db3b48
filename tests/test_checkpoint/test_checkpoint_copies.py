"""What the calls in a checkpoint's pickle may copy: torch's weights-only
unpickler calls allow-listed globals (``set``, ``OrderedDict``,
``_codecs.encode``, ...) with any arguments, so a small file that repeats a
copying call on one shared value, or iterates a tensor viewed as far more
rows than its storage holds, takes a loader's memory. The loader
process's memory and CPU limits stop each (made small here), the bounds on
its result refuse what a deep copy would unfold, and ordinary checkpoints
are far inside them."""
import collections
import io
import time

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from mmkd.checkpoint import UnsafeCheckpointError, limits, safe_torch_load
from mmkd.testing.crafted_checkpoints import refusal_deadline


class Calls:
    """Unpickling this calls ``func(*args)`` (and, with ``state``, sets
    it: BUILD)."""

    def __init__(self, func, *args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        if self.state is None:
            return self.func, self.args
        return self.func, self.args, self.state


def save(tmp_path, obj, name='ckpt.pth'):
    path = tmp_path / name
    torch.save(obj, str(path))
    return str(path)


@pytest.fixture(autouse=True)
def small_limits(monkeypatch):
    """Limits small enough that each attack is stopped in a few seconds."""
    monkeypatch.setattr(limits, 'MEMORY_BASE', 64 << 20)
    monkeypatch.setattr(limits, 'CPU_BASE', 2.0)


#: How the loader process's limits, or the bounds on its result, refuse.
BOUNDED = 'memory than the limit|CPU-time limit|a deep copy of it would visit'


def refused_by_the_scan(path, match=BOUNDED):
    """``path`` is refused within the bounds, and within the loader's
    wall-clock limit."""
    start = time.perf_counter()
    with pytest.raises(UnsafeCheckpointError, match=match):
        safe_torch_load(path)
    assert time.perf_counter() - start < refusal_deadline(path)


def test_a_copying_call_repeated_on_one_shared_value_is_refused(tmp_path):
    """set() 50 times on one memoized list of 100,000 ints: 0.37 MB of file
    that took 207 MB to load. Refused by the scan, which holds < 1 MB."""
    shared = list(range(100_000))
    path = save(tmp_path, [Calls(set, shared) for _ in range(50)])
    refused_by_the_scan(path)


def test_building_many_objects_from_one_shared_state_is_refused(tmp_path):
    """BUILD copies the state into the object: 200 OrderedDicts taking one
    dict of 100,000 entries as their attributes."""
    state = {f'k{i}': i for i in range(100_000)}
    path = save(tmp_path, [Calls(collections.OrderedDict, state=state)
                           for _ in range(200)])
    refused_by_the_scan(path)


def test_encoding_one_shared_string_again_and_again_is_refused(tmp_path):
    import _codecs
    text = 'x' * 1_000_000
    path = save(tmp_path, [Calls(_codecs.encode, text, 'latin1')
                           for _ in range(200)])
    refused_by_the_scan(path)


@pytest.mark.parametrize('codec', ['utf-32', 'unicode_escape', 'rot13'])
def test_encode_takes_only_latin1(tmp_path, codec):
    import _codecs
    path = save(tmp_path, {'b': Calls(_codecs.encode, 'abc', codec)})
    with pytest.raises(UnsafeCheckpointError, match=f"codec is|'{codec}'"):
        safe_torch_load(path)


@pytest.mark.parametrize('func', [set, collections.Counter, torch.Size])
def test_iterating_a_tensor_is_refused(tmp_path, func):
    """A 1-element storage viewed as 1,000,000 rows (stride 0): set() of it
    took 660 MB from a 1.5 KB file."""
    view = torch.zeros(1).expand(1_000_000)
    path = save(tmp_path, {'x': Calls(func, view)})
    refused_by_the_scan(path)


def test_a_device_copy_is_charged_the_elements_of_its_view(tmp_path):
    """_rebuild_device_tensor_from_cpu_tensor copies its tensor (another
    dtype): a real tensor loads converted; a 1-element storage viewed as
    10,000,000 elements is refused before it is materialised."""
    rebuild = torch._utils._rebuild_device_tensor_from_cpu_tensor
    real = save(tmp_path, {'x': Calls(rebuild, torch.arange(5.),
                                      torch.float64, 'cpu', False)}, 'r.pth')
    loaded = safe_torch_load(real)['x']
    assert loaded.dtype == torch.float64
    assert torch.equal(loaded, torch.arange(5., dtype=torch.float64))
    view = torch.zeros(1).expand(10_000_000)
    bomb = save(tmp_path, {'x': Calls(rebuild, view, torch.float64, 'cpu',
                                      False)}, 'b.pth')
    refused_by_the_scan(bomb)


def test_history_buffer_is_built_only_from_its_state(tmp_path):
    """HistoryBuffer(log, count) goes through np.array, which copies nested
    lists element by element; torch.save writes HistoryBuffer() + state,
    which loads."""
    shared = list(range(1000))
    path = save(tmp_path, {'h': Calls(HistoryBuffer, [shared] * 1000,
                                      [shared] * 1000)}, 'h.pth')
    with pytest.raises(UnsafeCheckpointError, match='HistoryBuffer'):
        safe_torch_load(path)
    hub = MessageHub.get_instance('test_checkpoint_copies')
    for value in (1.0, 2.0, 4.0):
        hub.update_scalar('train/loss', value)
    ok = save(tmp_path, {'message_hub': hub.state_dict()}, 'ok.pth')
    buffer = safe_torch_load(ok)['message_hub']['log_scalars']['train/loss']
    np.testing.assert_array_equal(buffer.data[0], [1.0, 2.0, 4.0])


def test_call_arguments_that_are_not_a_tuple_cost_nothing(tmp_path):
    """func(*args) also takes a list; pickle never writes one. The scanner
    refused it; torch's unpickler makes the call (set() here), within the
    loader process's limits like any other."""
    from test_checkpoint_bounds import with_pickle
    pickle_bytes = b'\x80\x02cbuiltins\nset\n]R.'
    assert safe_torch_load(with_pickle(tmp_path, pickle_bytes)) == set()


def test_ordinary_copies_are_far_inside_the_budget(tmp_path, monkeypatch):
    """torch.save's own copies (bytes, sets, OrderedDicts, numpy values,
    tensors) load without slack."""
    obj = {'state_dict': collections.OrderedDict(
        (f'layer{i}.weight', torch.randn(3, 2)) for i in range(50)),
        'set': set(range(500)), 'bytes': [bytes([i]) * 40 for i in range(50)],
        'arrays': [np.arange(i, dtype=np.float32) for i in range(50)],
        'sizes': [torch.Size([i, 2]) for i in range(50)]}
    buf = io.BytesIO()
    torch.save(obj, buf)
    path = tmp_path / 'ordinary.pth'
    path.write_bytes(buf.getvalue())
    loaded = safe_torch_load(str(path))
    assert loaded['set'] == obj['set'] and loaded['bytes'] == obj['bytes']
    assert loaded['sizes'] == obj['sizes']
    for key, value in obj['state_dict'].items():
        assert torch.equal(loaded['state_dict'][key], value)
    for got, want in zip(loaded['arrays'], obj['arrays']):
        np.testing.assert_array_equal(got, want)


def _doubling_tuple_key(levels):
    """``{T: 1}`` where ``T`` = ``(T', T')`` nested ``levels`` times: a few
    bytes of pickle per level, 2**levels items visited to hash the key."""
    body = b'K\x01\x85'  # (1,)
    body += b'q\x00h\x00\x86' * levels  # memoize T, fetch it again: (T, T)
    return b'\x80\x02}' + body + b'K\x01s.'


def test_a_dict_key_of_shared_tuples_is_refused_before_it_is_hashed(
        tmp_path):
    """Python does not cache tuple hashes: with 60 levels the key takes
    2**60 steps (22 levels already took 0.24 s); refused from the scan."""
    from test_checkpoint_bounds import with_pickle
    path = with_pickle(tmp_path, _doubling_tuple_key(60))
    refused_by_the_scan(path)
    small = with_pickle(tmp_path, _doubling_tuple_key(3), 'small.pth')
    (key, value), = safe_torch_load(small).items()
    assert value == 1 and key[0] is key[1] and len(str(key)) > 20


def test_tuple_keys_of_ordinary_dicts_load(tmp_path, monkeypatch):
    obj = {(1, 2): 'a', ('x', (3, 4)): 'b', (): 'c'}
    assert safe_torch_load(save(tmp_path, obj)) == obj


def test_a_shared_torch_size_as_the_key_of_many_dicts_is_refused(tmp_path):
    """torch.Size does not cache its hash either: one Size of 100,000 dims
    as the key of 50 dicts is hashed 50 times."""
    size = torch.Size(range(100_000))
    path = save(tmp_path, [{size: i} for i in range(50)])
    refused_by_the_scan(path)


def test_a_long_training_run_checkpoint_loads_without_slack(tmp_path,
                                                            monkeypatch):
    """mmengine's message hub keeps every logged scalar of the run as numpy
    arrays, which protocol 2 writes as text that encode() turns into bytes
    and the array's BUILD copies again: two touches per byte of data. A
    checkpoint of 3,000 iterations of five scalars loads without slack
    (this pattern refused the demo's 1,200-iteration checkpoints while the
    budget was one element per byte)."""
    hub = MessageHub.get_instance('test_long_run')
    rng = np.random.default_rng(0)
    for _ in range(3000):
        for name in ('loss', 'loss_cls', 'loss_bbox', 'lr', 'time'):
            hub.update_scalar(f'train/{name}', float(rng.random()))
    model = torch.nn.Linear(8, 4)
    path = save(tmp_path, {'state_dict': model.state_dict(),
                           'message_hub': hub.state_dict()})
    loaded = safe_torch_load(path)['message_hub']['log_scalars']
    np.testing.assert_array_equal(
        loaded['train/loss'].data[0],
        hub.state_dict()['log_scalars']['train/loss'].data[0])
