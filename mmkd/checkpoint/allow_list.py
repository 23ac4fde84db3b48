"""The globals a checkpoint may name in the loader besides torch's own,
and two of torch's narrowed (``docs/checkpoint_safety.md``)."""
import pickle
from typing import Any, Dict, List, NoReturn

#: How pickle protocol 2 names latin-1, the one codec it writes bytes with.
_LATIN1 = frozenset({'latin1', 'latin-1', 'iso8859-1', 'iso-8859-1'})


def _refuse(call: str, allowed: str) -> NoReturn:
    raise pickle.UnpicklingError(f'{call:.120} is not allowed while loading '
                                 f'a checkpoint (only {allowed} is).')


class Call:
    """A call the loader records, not makes: ``kind``, arguments, state."""

    kind = ''

    def __new__(cls, *args: Any) -> 'Call':  # called, or unpickled (NEWOBJ)
        if args and cls.kind == 'HistoryBuffer':  # torch.save writes none
            _refuse('HistoryBuffer(...) with arguments', 'its state')
        self = super().__new__(cls)
        self.args, self.state = list(args), None
        return self

    def __setstate__(self, state: Any) -> None:
        self.state = state


#: kind -> its stand-in class
CALLS: Dict[str, type] = {kind: type(kind, (Call, ), {'kind': kind}) for kind
                          in ('ndarray', 'dtype', 'reconstruct', 'scalar',
                              'HistoryBuffer', 'statistic')}


def _getattr(obj: Any, name: Any) -> Call:
    if obj is not CALLS['HistoryBuffer'] or not isinstance(name, str):
        _refuse(f'getattr({obj!r:.60}, {name!r:.60})',
                'a HistoryBuffer statistics method')
    return CALLS['statistic'](name)


def _bytes(*args: Any) -> bytes:
    if args:  # bytes(n) would allocate n bytes
        _refuse(f'bytes{args!r:.60}', 'bytes()')
    return b''


def _latin1_encode(text: Any, codec: Any = 'utf-8',
                   errors: Any = 'strict') -> bytes:
    # other codecs (punycode) cost quadratic time; any module may add one
    if type(text) is not str or codec not in _LATIN1 or errors != 'strict':
        _refuse(f'_codecs.encode(..., {codec!r:.60})', 'the latin1 codec')
    return text.encode('latin-1')


def _bytearray(*args: Any) -> bytearray:
    if not args or (len(args) == 1 and type(args[0]) is bytes):
        return bytearray(*args)
    if len(args) != 2 or type(args[0]) is not str or args[1] not in _LATIN1:
        _refuse(f'bytearray(...) with something other than text or bytes '
                f'({args!r:.60})', 'bytearray of bytes or latin-1 text')
    return bytearray(args[0], 'latin-1')


def restrict_torch_globals() -> None:
    """Narrow two of torch's weights-only globals in its cached table."""
    from torch._weights_only_unpickler import _get_allowed_globals
    table = _get_allowed_globals()
    table['_codecs.encode'] = _latin1_encode
    table['builtins.bytearray'] = _bytearray


def safe_globals() -> List[Any]:
    """The allow-list passed to ``torch.serialization.safe_globals``."""
    pairs = [(CALLS['ndarray'], 'numpy.ndarray'),
             (CALLS['dtype'], 'numpy.dtype'),
             (CALLS['HistoryBuffer'],
              'mmengine.logging.history_buffer.HistoryBuffer'),
             (_getattr, 'builtins.getattr'), (_bytes, 'builtins.bytes')]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        pairs += [(CALLS['reconstruct'], f'{module}._reconstruct'),
                  (CALLS['scalar'], f'{module}.scalar')]
    return pairs
