"""The bounds a checkpoint must keep before anything in it is inflated,
allocated or unpickled (see ``docs/checkpoint_safety.md``).

Each is far above what ``torch.save`` writes for a real model and is read at
call time, so a test may lower one with ``monkeypatch.setattr``.
"""

#: Members a zip checkpoint may hold, and storages a legacy one may declare.
#: ``torch.save`` writes one record per storage and five small metadata
#: records; 1,000,000 storages is far beyond any model (a ResNet-50 training
#: checkpoint with its Adam state holds about 1,000). mmkd's own bookkeeping
#: of the central directory costs about 200 bytes per member.
MAX_MEMBERS = 1_000_000

#: Members besides the pickle and the storage records its pickle uses (torch
#: writes five: ``.format_version``, ``.storage_alignment``, ``byteorder``,
#: ``version`` and ``.data/serialization_id``).
MAX_EXTRA_MEMBERS = 64

#: Bytes in a member's name (torch names them ``<archive>/data/<key>``, the
#: archive named after the saved file).
MAX_NAME_BYTES = 4096

#: Containers inside containers (dicts, lists, tuples, sets, objects'
#: attributes). State dicts and mmengine's training checkpoints are nested
#: fewer than 10 levels; walking a deeper one would exhaust Python's stack.
MAX_NESTING = 100

#: Elements the calls of a pickle may copy, iterate or hash per byte of the
#: pickle (:class:`~mmkd.checkpoint.pickle_calls.CopyBudget`). ``torch.save``
#: touches what it writes at most twice (numpy data: ``_codecs.encode`` makes
#: bytes of the text, then the array's ``BUILD`` takes them), so a real
#: training checkpoint stays below 2 (an mmengine checkpoint of 1,200
#: iterations: 1.7 before its storages and the slack are counted).
COPIES_PER_BYTE = 4

#: Elements they may touch besides (:data:`COPIES_PER_BYTE` per byte and one
#: per element of the storages referenced): 65,536, a few MB of Python
#: objects at most, room for a pattern the count overestimates.
COPY_SLACK = 1 << 16
