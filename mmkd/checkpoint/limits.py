"""The loader's limits and the bounds on its result, read at each load:
raise one for a large file you trust (``docs/checkpoint_safety.md``)."""

#: ``RLIMIT_DATA`` on top of what the loader holds after importing torch:
#: MEMORY_PER_BYTE × the file's size + MEMORY_BASE.
MEMORY_PER_BYTE, MEMORY_BASE = 2, 512 << 20
#: ``RLIMIT_CPU``: CPU_BASE + CPU_PER_GIB per GiB of file, seconds.
CPU_BASE, CPU_PER_GIB = 20.0, 10.0
#: Wall-clock seconds: WALL_FACTOR × the CPU limit + WALL_BASE.
WALL_FACTOR, WALL_BASE = 2.0, 30.0
#: ``RLIMIT_FSIZE`` on each result channel: the file's size + OUTPUT_BASE.
OUTPUT_BASE = 64 << 20
#: Objects a deep copy of the result may visit: file size + NODES_BASE.
NODES_BASE = 1_000_000
#: Zip members besides those ``torch.save`` writes.
MAX_EXTRA_MEMBERS = 64
#: Containers inside containers (checkpoints nest fewer than 10).
MAX_NESTING = 100
#: Bytes all tensors may view: VIEWS_PER_BYTE × storage bytes + VIEW_BASE.
VIEWS_PER_BYTE, VIEW_BASE = 8, 64 << 20
#: Keys of one dict or set that may share a hash value with another key.
HASH_COLLISIONS = 16


def budget(size: int) -> dict:
    """The limits for a file of ``size`` bytes, as the loader gets them."""
    cpu, memory = CPU_BASE + CPU_PER_GIB * size / (1 << 30), int(
        MEMORY_PER_BYTE * size + MEMORY_BASE)
    return dict(memory=memory, cpu=max(1, int(cpu)),
                output=int(size + OUTPUT_BASE),
                wall=WALL_FACTOR * cpu + WALL_BASE, max_nesting=MAX_NESTING,
                max_extra_members=MAX_EXTRA_MEMBERS,
                memory_text=f'{memory / (1 << 20):,.0f} MiB = '
                f'{MEMORY_PER_BYTE} × the file size {size / (1 << 20):,.1f} '
                f'MiB + {MEMORY_BASE >> 20} MiB')
