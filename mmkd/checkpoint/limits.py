"""The bounds the kernel enforces on the process that unpickles a checkpoint,
and the bounds on what it may hand back (see ``docs/checkpoint_safety.md``).

Each is read at call time, so a test (or a user who trusts a very large
file) may change one with ``monkeypatch.setattr`` or an assignment.
"""

#: Memory the loader process may allocate besides what it holds after
#: importing torch: ``MEMORY_PER_BYTE`` × the file's size +
#: ``MEMORY_BASE`` (``RLIMIT_DATA``). ``torch.load`` holds each storage once
#: (1 × the size) and the pickle's Python objects.
MEMORY_PER_BYTE = 2
MEMORY_BASE = 512 << 20

#: CPU seconds the loader process may use (``RLIMIT_CPU``): ``CPU_BASE`` +
#: ``CPU_PER_GIB`` per GiB of file. ``torch.load`` reads a GiB in well under
#: 2 s of CPU.
CPU_BASE = 20.0
CPU_PER_GIB = 10.0

#: Wall-clock seconds, as a multiple of the CPU limit plus a constant (for a
#: loader waiting on a slow disk, or sleeping).
WALL_FACTOR = 2.0
WALL_BASE = 30.0

#: Bytes the loader may write back, per channel (``RLIMIT_FSIZE``): the
#: file's size + ``OUTPUT_BASE`` (storages are written as they are in the
#: file; the plain data is shorter than the pickle it comes from).
OUTPUT_BASE = 64 << 20

#: Objects a deep copy of the result may visit (every occurrence of a shared
#: object counted): the file's size in bytes + ``NODES_BASE``. A DAG of
#: tuples that a deep copy would unfold exceeds it.
NODES_BASE = 1_000_000

#: Zip members besides the pickle, the storage records and torch's metadata
#: records (``torch.save`` writes none).
MAX_EXTRA_MEMBERS = 64

#: Containers inside containers (dicts, lists, tuples, sets, attributes).
#: State dicts and mmengine's training checkpoints are nested fewer than 10
#: levels; a deeper one would exhaust Python's stack in a later walk.
MAX_NESTING = 100

#: Bytes all tensors of the result may view, per byte of their storages, +
#: ``VIEW_BASE`` (tied weights view a storage twice; a stride-0 view of one
#: element claims as many bytes as it likes).
VIEWS_PER_BYTE = 8
VIEW_BASE = 64 << 20

#: Keys of one dict or set that may share a hash value with another key
#: (inserting keys that share one costs quadratic time).
HASH_COLLISIONS = 16
