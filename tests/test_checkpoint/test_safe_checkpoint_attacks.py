"""Checkpoints an attacker crafts: files that pass a naive allow-list (plain
strings, dicts, tensors, numpy values) but carry code, pointers, paths or
slow codecs. Each is refused (or made harmless) by mmkd's loading."""
import os.path as osp
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from mmkd.checkpoint import (CheckpointFormatError,
                                        UnsafeCheckpointError,
                                        safe_torch_load,
                                        sanitize_runner_state)


class ObjectArrayFromBytes:
    """``np.ndarray((1,), 'O', raw_bytes)``: an object array whose element is
    a pointer read from the attacker's bytes."""

    def __reduce__(self):
        return (np.ndarray, ((1,), 'O', b'\x41' * 8))


class Encodes:
    """``_codecs.encode(text, codec)``: how protocol-2 pickles store bytes."""

    def __init__(self, text, codec):
        self.text, self.codec = text, codec

    def __reduce__(self):
        import _codecs
        return (_codecs.encode, (self.text, self.codec))


def save(tmp_path, obj, name='ckpt.pth'):
    path = str(tmp_path / name)
    torch.save(obj, path)
    return path


def test_object_array_from_raw_bytes_is_refused_without_crashing(tmp_path):
    """The pickle passes a global allow-list that admits numpy.ndarray; the
    loader must refuse it, not dereference the bytes (exit 139). Run in a
    child process so that a crash fails this test instead of the suite."""
    path = save(tmp_path, {'meta': {'x': ObjectArrayFromBytes()}})
    code = textwrap.dedent(f"""
        from mmkd.checkpoint import (UnsafeCheckpointError,
                                                safe_torch_load)
        try:
            safe_torch_load({path!r})
        except UnsafeCheckpointError as e:
            print('REFUSED', e)
    """)
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'REFUSED' in proc.stdout and 'numpy.ndarray' in proc.stdout


@pytest.mark.parametrize('array', [
    np.array([1, None], dtype=object),
    np.zeros(2, dtype=[('a', 'f4'), ('b', 'O')]),
    np.array(['text']),
    np.zeros(2, dtype='V8'),
], ids=['object', 'structured-with-object', 'unicode', 'void'])
def test_non_numeric_numpy_arrays_are_refused(tmp_path, array):
    path = save(tmp_path, {'x': array})
    with pytest.raises(UnsafeCheckpointError, match='numpy'):
        safe_torch_load(path)


def test_numeric_numpy_values_round_trip_exactly(tmp_path):
    values = {
        'f8': np.arange(6.).reshape(2, 3),
        'fortran': np.asfortranarray(np.arange(12).reshape(3, 4)),
        'big_endian': np.arange(5, dtype='>i4'),
        'bool': np.array([True, False, True]),
        'empty': np.zeros((0, 3), dtype=np.float32),
        'zero_dim': np.array(7, dtype=np.uint8),
        'complex': np.array([1 + 2j], dtype=np.complex64),
        'scalars': [np.float64(0.1), np.int64(-3), np.float16(2.5),
                    np.bool_(True)],
        'in_tuple': (np.float32(1.5), 'x'),
    }
    loaded = safe_torch_load(save(tmp_path, values))
    for key in ('f8', 'fortran', 'big_endian', 'bool', 'empty', 'zero_dim',
                'complex'):
        assert loaded[key].dtype == values[key].dtype, key
        np.testing.assert_array_equal(loaded[key], values[key])
        assert isinstance(loaded[key], np.ndarray) and \
            type(loaded[key]) is np.ndarray
    assert loaded['fortran'].flags.f_contiguous
    for got, want in zip(loaded['scalars'], values['scalars']):
        assert type(got) is type(want) and got == want
    assert loaded['in_tuple'] == (np.float32(1.5), 'x')
    assert type(loaded['in_tuple'][0]) is np.float32


def test_array_data_of_the_wrong_length_is_refused(tmp_path):
    array = np.arange(4, dtype=np.int64)

    class ShortData:

        def __reduce__(self):
            rebuild, args, state = array.__reduce__()
            state = state[:4] + (state[4][:-8], )
            return rebuild, args, state

    with pytest.raises(UnsafeCheckpointError, match='does not match'):
        safe_torch_load(save(tmp_path, {'x': ShortData()}))


@pytest.mark.parametrize('codec', ['punycode', 'PUNYCODE', 'idna'])
def test_quadratic_codecs_are_refused_before_unpickling(tmp_path, codec):
    """punycode decoding time grows with the square of its input (a 37 KB
    checkpoint took 25 s): refused from a scan of the pickle."""
    path = save(tmp_path, {'x': Encodes('\u00e9a' * 200, codec)})
    with pytest.raises(UnsafeCheckpointError, match='codec'):
        safe_torch_load(path)


def test_bytes_call_is_limited_to_empty_bytes(tmp_path):
    """``bytes(n)`` would allocate n bytes: a memory bomb in a few bytes."""

    class BigBytes:

        def __reduce__(self):
            return (bytes, (10**12, ))

    with pytest.raises(UnsafeCheckpointError, match='bytes'):
        safe_torch_load(save(tmp_path, {'x': BigBytes()}))


def test_latin1_bytes_still_load(tmp_path):
    # protocol-2 pickles store every bytes object this way
    loaded = safe_torch_load(save(tmp_path, {'b': b'\x00\xffabc'}))
    assert loaded['b'] == b'\x00\xffabc'


def test_refusal_says_never_to_switch_the_check_off(tmp_path):

    class Opens:

        def __reduce__(self):
            return (open, (str(tmp_path / 'ran'), 'w'))

    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(save(tmp_path, {'x': Opens()}),
                        what='teacher checkpoint (model.teacher_checkpoint)')
    message = str(info.value)
    assert 'model.teacher_checkpoint' in message
    assert 'Do not load it with torch.load(weights_only=False)' in message
    assert 'will likely succeed' not in message
    assert 'add_safe_globals' not in message
    assert not osp.exists(tmp_path / 'ran')


@pytest.mark.parametrize('content,match', [
    (b'', 'is empty'),
    (b'<!DOCTYPE html><html><body>Sign in</body></html>', 'HTML page'),
    (bytes(range(7, 256)) * 4, 'not a PyTorch file'),
], ids=['empty', 'html', 'random'])
def test_files_that_are_not_checkpoints_say_what_they_are(
        tmp_path, content, match):
    path = tmp_path / 'teacher.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointFormatError, match=match) as info:
        safe_torch_load(str(path), what='model.teacher_checkpoint')
    assert 'model.teacher_checkpoint' in str(info.value)
    assert 'run code' not in str(info.value)


def test_truncated_checkpoint_is_reported_as_damaged(tmp_path):
    whole = save(tmp_path, {'w': torch.zeros(100)})
    data = open(whole, 'rb').read()
    path = tmp_path / 'cut.pth'
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointFormatError, match='truncated or damaged'):
        safe_torch_load(str(path), what='model.student_checkpoint')


def test_missing_file_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match='model.student_checkpoint'):
        safe_torch_load(str(tmp_path / 'nope.pth'),
                        what='model.student_checkpoint')


def test_legacy_format_checkpoints_load(tmp_path):
    path = str(tmp_path / 'legacy.pth')
    torch.save({'w': torch.arange(3.), 'meta': {'it': np.int64(4)}}, path,
               _use_new_zipfile_serialization=False)
    loaded = safe_torch_load(path)
    assert torch.equal(loaded['w'], torch.arange(3.))
    assert loaded['meta']['it'] == 4


def test_sanitize_runner_state(tmp_path):
    folder = tmp_path / 'run'
    folder.mkdir()
    source = str(folder / 'iter_4.pth')
    checkpoint = {
        'meta': {'config': "import os\nos.remove('x')", 'iter': 4},
        'message_hub': {'runtime_info': {
            'best_ckpt': str(tmp_path / 'elsewhere' / 'best.pth'),
            # beside the checkpoint, but not a best checkpoint
            'best_ckpt_aAcc': str(folder / 'pretrained_student.pth'),
            'best_ckpt_mIoU': str(folder / 'best_mIoU_iter_2.pth'),
            'last_ckpt': str(tmp_path),  # a folder: mmengine would rmtree
            'keep_ckpt_ids': ['../x', 3],
            'iter': 4,
        }},
    }
    sanitize_runner_state(checkpoint, source)
    info = checkpoint['message_hub']['runtime_info']
    assert 'config' not in checkpoint['meta']
    assert checkpoint['meta']['iter'] == 4
    assert 'best_ckpt' not in info and 'last_ckpt' not in info
    assert 'best_ckpt_aAcc' not in info
    assert info['best_ckpt_mIoU'] == str(folder / 'best_mIoU_iter_2.pth')
    assert 'keep_ckpt_ids' not in info and info['iter'] == 4
    # a download has no folder of its own: no path is kept
    checkpoint['message_hub']['runtime_info']['keep_ckpt_ids'] = [1, 2]
    sanitize_runner_state(checkpoint, None)
    assert 'best_ckpt_mIoU' not in info and info['keep_ckpt_ids'] == [1, 2]


def test_every_mmengine_scheme_goes_through_mmkd():
    import mmkd  # noqa: F401
    from mmengine.runner.checkpoint import CheckpointLoader
    assert CheckpointLoader._schemes
    for prefix, loader in CheckpointLoader._schemes.items():
        assert loader.__module__.startswith('mmkd.'), (prefix, loader)


def test_pavi_is_refused_with_advice():
    from mmengine.runner.checkpoint import CheckpointLoader
    with pytest.raises(UnsafeCheckpointError, match='local path'):
        CheckpointLoader.load_checkpoint('pavi://some/model')

